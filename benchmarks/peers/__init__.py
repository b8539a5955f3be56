"""The peer benchmark (``make bench-peers``): run as ``python -m benchmarks.peers.run_peers``
from the repository root, in ``.venv-peers``.
"""
