"""Detection of many movies (or one large movie) on a Dask cluster.

- :mod:`.run`: the client side: :func:`run_batch` (``kinetochores batch``),
  :func:`detect_on_cluster` (one movie, for front ends), the manifest and
  the per-frame part files.
- :mod:`.worker`: the worker side: each task calls the one frame loop's
  :func:`~napari_kinetochores.detection.detect_frame` with the worker's
  cached detector.

Dask is imported by these functions only, never by ``import napari_kinetochores``.
"""

from __future__ import annotations

from napari_kinetochores.batch.run import (
    DEFAULT_MAX_FRAME_VOXELS,
    MANIFEST_NAME,
    MOVIE_SUFFIXES,
    PARTS_DIR,
    BatchResult,
    assemble_movie,
    create_map_store,
    detect_on_cluster,
    expand_inputs,
    file_sha256,
    library_versions,
    movie_stem,
    read_part,
    run_batch,
)

__all__ = [
    "DEFAULT_MAX_FRAME_VOXELS",
    "MANIFEST_NAME",
    "MOVIE_SUFFIXES",
    "PARTS_DIR",
    "BatchResult",
    "assemble_movie",
    "create_map_store",
    "detect_on_cluster",
    "expand_inputs",
    "file_sha256",
    "library_versions",
    "movie_stem",
    "read_part",
    "run_batch",
]
