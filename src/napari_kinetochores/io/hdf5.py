"""HDF5 datasets: read into a :class:`~.volumes.RawVolume` lazily (one frame per chunk).

The axes come from ilastik/vigra ``axistags`` where present; an ilastik
``exported_data`` dataset without them is read as ZYXC (4D) or TZYXC (5D). The
voxel size comes from the dataset's ``element_size_um`` attribute: three
values (z, y, x), or one per axis. h5py and dask are imported inside the
functions.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.io.volumes import RawVolume

__all__ = ["list_hdf5_datasets", "read_raw_hdf5"]


def read_raw_hdf5(path: Path, *, dataset: str | None = None, axes: str | None = None) -> RawVolume:
    """Open one dataset of an HDF5 file as a lazy array, chunked one frame per chunk along T.

    Parameters
    ----------
    path
        ``.h5``/``.hdf5`` file.
    dataset
        Dataset path; optional when the file holds exactly one.
    axes
        The caller's axes for the stored array, if given; they place the T
        axis for chunking (the metadata's axes otherwise).

    Returns
    -------
    RawVolume
        Dask data with the open file as ``handle``; axes from ilastik
        metadata; the voxel size from ``element_size_um`` (read once the
        axes are known).

    Raises
    ------
    InputError
        Not an HDF5 file, no dataset, no such dataset, or several datasets
        and no ``dataset``.
    """
    import dask.array as da
    import h5py

    try:
        handle = h5py.File(path, "r")
    except Exception as err:
        raise _cannot_open(err, path) from err
    try:
        dset = handle[_dataset_key(_dataset_names(handle), dataset, path)]
        meta_axes = _ilastik_axes(dset)
        chunks = _frame_chunks(dset.ndim, axes or meta_axes)
        data = da.from_array(dset, chunks=chunks, lock=True)
        element_size = dset.attrs.get("element_size_um")
    except BaseException:
        handle.close()
        raise
    voxel_by_axes = functools.partial(_element_size_by_axes, element_size)
    return RawVolume(data=data, axes=meta_axes, handle=handle, voxel_by_axes=voxel_by_axes)


def list_hdf5_datasets(path: Path) -> list[str]:
    """Paths of all datasets in an HDF5 file.

    Raises
    ------
    InputError
        Not a readable HDF5 file.
    """
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return _dataset_names(handle)
    except Exception as err:
        raise _cannot_open(err, path) from err


def _cannot_open(err: Exception, path: Path) -> InputError:
    return InputError(
        f"cannot open the HDF5 file (corrupt or not HDF5?): {type(err).__name__}: {err}", path
    )


def _dataset_names(handle: Any) -> list[str]:
    import h5py

    names: list[str] = []
    handle.visititems(
        lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
    )
    return names


def _dataset_key(names: list[str], dataset: str | None, path: Path) -> str:
    """The dataset to read: ``dataset`` (checked), or the file's only one."""
    if dataset is None:
        if len(names) == 1:
            dataset = names[0]
        elif not names:
            raise InputError("the HDF5 file holds no dataset", path)
        else:
            raise InputError(
                f"the HDF5 file holds several datasets {names}; choose one with "
                "dataset= (--dataset)",
                path,
            )
    key = dataset.strip("/")
    if key not in names:
        raise InputError(f"no dataset {dataset!r} in the HDF5 file; it holds: {names}", path)
    return key


def _frame_chunks(ndim: int, axes: str | None) -> tuple[int, ...]:
    """Dask chunks: 1 along T (when the axes place it, or axis 0 of a 5D array without axes)."""
    t_index = None
    if axes and "T" in axes and len(axes) == ndim:
        t_index = axes.index("T")
    elif axes is None and ndim == 5:
        t_index = 0
    return tuple(1 if i == t_index else -1 for i in range(ndim))


def _element_size_by_axes(element_size: Any, file_axes: str) -> dict[str, float]:
    """Voxel size {axis: µm} from ``element_size_um``: 3 values (z, y, x) or one per axis."""
    if element_size is None:
        return {}
    try:
        values = [float(v) for v in np.ravel(element_size)]
    except (TypeError, ValueError):
        return {}
    if len(values) == 3:
        return dict(zip("ZYX", values, strict=True))
    if len(values) == len(file_axes):
        return {c: v for c, v in zip(file_axes, values, strict=True) if c in "ZYX"}
    return {}


def _ilastik_axes(dset: Any) -> str | None:
    """Axes of an HDF5 dataset from ilastik/vigra ``axistags``, or ilastik defaults."""
    tags = dset.attrs.get("axistags")
    if tags is not None:
        try:
            if isinstance(tags, bytes):
                tags = tags.decode()
            keys = [a["key"] for a in json.loads(tags)["axes"]]
            if len(keys) == dset.ndim:
                return "".join(str(k).upper() for k in keys)
        except (ValueError, KeyError, TypeError):
            pass
    if dset.name.rsplit("/", 1)[-1] == "exported_data":
        return {4: "ZYXC", 5: "TZYXC", 3: "ZYX"}.get(dset.ndim)
    return None
