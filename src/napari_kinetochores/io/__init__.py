"""Input and output: image volumes (TCZYX + voxel size) and point tables (CSV).

Volumes are read by :func:`read_volume` from TIFF/OME-TIFF, OME-Zarr or plain
zarr, HDF5 and npy, and written by :func:`write_tiff` and :func:`write_zarr`.
:mod:`.volumes` holds the :class:`Volume`, the reader chosen by suffix and what
the formats share; each format has its module (:mod:`.tiff`, :mod:`.zarr`,
:mod:`.hdf5`, :mod:`.npy`).
Point tables follow the package schema (``t, z, y, x, z_um, y_um, x_um``, then
optional columns) and are read by :func:`read_points` (which also takes napari,
Arivis and ``x_px, y_px, z_px`` tables) and written by :func:`write_points`.

Only numpy and pandas are imported here; tifffile, zarr, h5py and dask are
imported by the functions that need them.
"""

from __future__ import annotations

from napari_kinetochores.io.points import (
    INT_COLUMNS,
    OPTIONAL_COLUMNS,
    POINT_COLUMNS,
    UM_COLUMNS,
    points_frame,
    read_points,
    write_csv,
    write_points,
)
from napari_kinetochores.io.tiff import write_tiff
from napari_kinetochores.io.volumes import (
    Volume,
    default_channel_names,
    list_datasets,
    read_volume,
    to_tczyx,
    validate_voxel_size,
    volume_from_array,
)
from napari_kinetochores.io.zarr import write_zarr

__all__ = [
    "INT_COLUMNS",
    "OPTIONAL_COLUMNS",
    "POINT_COLUMNS",
    "UM_COLUMNS",
    "Volume",
    "default_channel_names",
    "list_datasets",
    "points_frame",
    "read_points",
    "read_volume",
    "to_tczyx",
    "validate_voxel_size",
    "volume_from_array",
    "write_csv",
    "write_points",
    "write_tiff",
    "write_zarr",
]
