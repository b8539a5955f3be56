"""Detection of kinetochores in a movie: options, the one frame loop, and tiling.

- :mod:`.options`: :class:`DetectionOptions`, shared by the CLI, the widgets and batch.
- :mod:`.pipeline`: :func:`iter_detections` / :func:`detect_movie` (the one loop)
  and :func:`detect_frame` (one frame, tiled when too large).
- :mod:`.tiling`: reading a frame too large for memory in tiles with halos.

The backends (classical, unet, stardist) are picked by name in
:mod:`napari_kinetochores.backends`.
"""

from __future__ import annotations

from napari_kinetochores.backends import METHODS
from napari_kinetochores.detection.options import DetectionOptions, frame_range
from napari_kinetochores.detection.pipeline import (
    detect_frame,
    detect_movie,
    iter_detections,
    points_table,
    prepare_detector,
)

__all__ = [
    "METHODS",
    "DetectionOptions",
    "detect_frame",
    "detect_movie",
    "frame_range",
    "iter_detections",
    "points_table",
    "prepare_detector",
]
