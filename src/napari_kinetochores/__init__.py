"""napari-kinetochores: 3D kinetochore detection in fluorescence time-lapse movies.

The package is a library of plain functions on numpy arrays (``io``,
``simulate``, ``targets``, ``nn``, ``peaks``, ``matching``) with two thin front
ends: the ``kinetochores`` command and the napari widgets. Heavy dependencies
(torch, dask, napari) are imported only inside the functions that need them.
"""

from __future__ import annotations

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("napari-kinetochores")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

DEFAULT_VOXEL_SIZE_UM: tuple[float, float, float] = (0.30, 0.13, 0.13)
"""Default voxel size (z, y, x) in µm, used with a warning when none is known."""

__all__ = ["DEFAULT_VOXEL_SIZE_UM", "__version__"]
