"""Benchmarks of napari-kinetochores, run as modules from the repository root.

``python -m benchmarks.run_all`` (``make bench``) runs every step; shared pieces
(held-out conditions and movies, scoring, threshold sweeps, formatting) are in
:mod:`benchmarks.common`. See docs/benchmarks.md.
"""
