"""NumPy ``.npy`` files: one array, memory-mapped, into a :class:`~.volumes.RawVolume`.

A ``.npy`` file has no axis or voxel-size metadata: 3D arrays are read as
ZYX, 5D as TCZYX, and 4D arrays need the caller's ``axes``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.io.volumes import RawVolume

__all__ = ["read_raw_npy"]


def read_raw_npy(path: Path, *, dataset: str | None = None, axes: str | None = None) -> RawVolume:
    """Memory-map the array of a ``.npy`` file (no pickles).

    Parameters
    ----------
    path
        ``.npy`` file.
    dataset, axes
        Unused (no metadata); accepted like every reader's.

    Returns
    -------
    RawVolume
        A read-only memory map, with no axes or voxel size.

    Raises
    ------
    InputError
        A corrupt or truncated file, or one that does not hold a single array.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "stack.npy"
    ...     np.save(path, np.zeros((4, 8, 8), np.uint16))
    ...     raw = read_raw_npy(path)
    ...     print(raw.data.shape, raw.axes)
    ...     del raw  # close the memory map before the folder goes
    (4, 8, 8) None
    """
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:
        raise InputError(
            f"cannot read the .npy file (corrupt or truncated?): {type(err).__name__}: {err}", path
        ) from err
    if not isinstance(data, np.ndarray):
        raise InputError("the .npy file does not hold a single array", path)
    return RawVolume(data=data, axes=None)
