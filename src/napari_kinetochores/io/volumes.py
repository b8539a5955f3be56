"""Read and write image volumes, normalised to TCZYX, with their voxel size.

Every reader returns a :class:`Volume` whose ``data`` has the axes
(T, C, Z, Y, X): a 3D stack is T=1, C=1. The voxel size is (z, y, x) in µm.
It comes from the file's metadata where present, from the caller
(``voxel_size_um=``) when given, and otherwise from
:data:`napari_kinetochores.DEFAULT_VOXEL_SIZE_UM` with a warning.

Supported formats (chosen by suffix):

=====================  =====================================================
``.tif``, ``.tiff``    TIFF, ImageJ hyperstack (tifffile); voxel size from
                       the ImageJ ``spacing``/``unit`` and X/YResolution.
``.ome.tif(f)``        OME-TIFF; voxel size from ``PhysicalSize{X,Y,Z}``.
``.zarr`` (folder)     OME-Zarr (NGFF 0.4 on zarr v2, NGFF 0.5 on zarr v3),
                       a plain zarr array, or a group holding one array. Lazy.
``.h5``, ``.hdf5``     HDF5 dataset (``dataset=``); ilastik ``exported_data``
                       defaults to ZYXC / TZYXC. Lazy.
``.npy``               NumPy array, memory-mapped.
=====================  =====================================================

Heavy libraries (tifffile, zarr, h5py, dask) are imported inside the
functions that use them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_kinetochores import DEFAULT_VOXEL_SIZE_UM
from napari_kinetochores.errors import InputError

__all__ = [
    "Volume",
    "default_channel_names",
    "list_datasets",
    "read_volume",
    "to_tczyx",
    "validate_voxel_size",
    "volume_from_array",
    "write_tiff",
    "write_zarr",
]

TCZYX = "TCZYX"

#: TIFF files larger than this (bytes) are read lazily (tifffile ``aszarr`` + dask).
TIFF_LAZY_BYTES = 1 << 30

_UM_PER_UNIT = {
    "um": 1.0,
    "µm": 1.0,  # micro sign U+00B5
    "μm": 1.0,  # greek mu U+03BC
    "\\u00b5m": 1.0,  # ImageJ writes the micro sign escaped
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "micrometers": 1.0,
    "micrometres": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "nanometre": 1e-3,
    "nanometers": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
    "millimetre": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "metre": 1e6,
    "å": 1e-4,
    "angstrom": 1e-4,
}


def _um_factor(unit: Any) -> float | None:
    """µm per ``unit``, or None when the unit is unknown (e.g. 'pixel')."""
    if unit is None:
        return None
    return _UM_PER_UNIT.get(str(unit).strip().lower())


def default_channel_names(n: int) -> list[str]:
    """Default channel names by index: ``["EGFP", "mCherry", "ch2", ...]``.

    Examples
    --------
    >>> default_channel_names(3)
    ['EGFP', 'mCherry', 'ch2']
    """
    base = ["EGFP", "mCherry"]
    return [base[i] if i < len(base) else f"ch{i}" for i in range(n)]


# --------------------------------------------------------------------------- Volume


@dataclass
class Volume:
    """An image volume with axes TCZYX and its voxel size.

    Attributes
    ----------
    data
        Array of shape (T, C, Z, Y, X). A numpy array (or memory map) for
        TIFF and npy files; a lazy dask array for zarr and HDF5 files, chunked
        one frame per chunk along T (at least).
    voxel_size_um
        Voxel size (z, y, x) in µm.
    voxel_size_source
        ``"metadata"`` (read from the file), ``"user"`` (given by the caller)
        or ``"default"`` (:data:`~napari_kinetochores.DEFAULT_VOXEL_SIZE_UM`).
    axes
        Axes of the array as stored in the file (e.g. ``"TZCYX"``), after any
        override by the caller.
    path
        The file read, or None for an in-memory volume.
    channel_names
        One name per channel; by default ``["EGFP", "mCherry", "ch2", ...]``.

    Examples
    --------
    >>> vol = Volume(np.zeros((2, 1, 5, 8, 8), np.uint16), (0.3, 0.13, 0.13),
    ...              "user", "TCZYX", None, ["EGFP"])
    >>> vol.shape, vol.n_frames, vol.frame(1, channel=0).shape
    ((2, 1, 5, 8, 8), 2, (5, 8, 8))
    """

    data: Any
    voxel_size_um: tuple[float, float, float]
    voxel_size_source: str
    axes: str
    path: Path | None
    channel_names: list[str] = field(default_factory=list)
    _handle: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.channel_names:
            self.channel_names = default_channel_names(self.n_channels)

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """Shape (T, C, Z, Y, X)."""
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def n_frames(self) -> int:
        """Number of time points T."""
        return int(self.data.shape[0])

    @property
    def n_channels(self) -> int:
        """Number of channels C."""
        return int(self.data.shape[1])

    @property
    def dtype(self) -> np.dtype:
        """Data type of the stored values."""
        return np.dtype(self.data.dtype)

    @property
    def is_lazy(self) -> bool:
        """True when ``data`` is a dask array (read on demand)."""
        return hasattr(self.data, "compute") and hasattr(self.data, "chunks")

    def frame(self, t: int, channel: int | None = None) -> np.ndarray:
        """Read one time point as float32.

        Only that frame is read from disk for lazy (dask) and memory-mapped data.

        Parameters
        ----------
        t
            Time index (negative counts from the end).
        channel
            Channel index, or None for all channels.

        Returns
        -------
        numpy.ndarray
            float32 array (C, Z, Y, X), or (Z, Y, X) when ``channel`` is given.
        """
        n = self.n_frames
        if not -n <= t < n:
            raise IndexError(f"frame {t} out of range for {n} time points")
        if channel is not None:
            c = self.n_channels
            if not -c <= channel < c:
                raise IndexError(f"channel {channel} out of range for {c} channels")
            block = self.data[t, channel]
        else:
            block = self.data[t]
        if hasattr(block, "compute"):
            block = block.compute()
        return np.asarray(block, dtype=np.float32)

    def close(self) -> None:
        """Close the underlying file (HDF5 file, lazy TIFF store), if any."""
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()
            except Exception:  # pragma: no cover - closing is best effort
                pass

    def __enter__(self) -> Volume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- helpers


def validate_voxel_size(
    voxel_size_um: Sequence[float] | Any, source: str | Path | None = None
) -> tuple[float, float, float]:
    """Check a voxel size and return it as three floats (z, y, x) in µm.

    Parameters
    ----------
    voxel_size_um
        Three numbers (z, y, x) in µm, each finite and > 0.
    source
        File or argument the value came from; named in the error message.

    Returns
    -------
    tuple of float
        (z, y, x) in µm.

    Raises
    ------
    InputError
        If it is not three finite numbers > 0.

    Examples
    --------
    >>> validate_voxel_size([0.3, 0.13, 0.13])
    (0.3, 0.13, 0.13)
    """
    try:
        if isinstance(voxel_size_um, str | bytes):
            raise TypeError
        values = tuple(float(v) for v in voxel_size_um)
    except (TypeError, ValueError):
        raise InputError(
            f"voxel size must be 3 numbers (z, y, x) in µm, got {voxel_size_um!r}", source
        ) from None
    if len(values) != 3:
        raise InputError(
            f"voxel size must be 3 numbers (z, y, x) in µm, got {len(values)}: {values}", source
        )
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise InputError(f"voxel size must be finite and > 0 µm, got (z, y, x) = {values}", source)
    return values  # type: ignore[return-value]


def to_tczyx(array: Any, axes: str, *, path: str | Path | None = None) -> Any:
    """Reorder an array to TCZYX, inserting singleton axes where missing.

    Works for numpy and dask arrays and returns a view (no copy) of the same
    kind.

    Parameters
    ----------
    array
        Array with ``len(axes)`` dimensions.
    axes
        One letter per dimension, from ``T, C, Z, Y, X`` (case-insensitive);
        ``S`` (samples, e.g. RGB) counts as ``C``. Z, Y and X are required.
    path
        File the array came from; named in error messages.

    Returns
    -------
    array
        Array of shape (T, C, Z, Y, X).

    Raises
    ------
    InputError
        Unknown or repeated letters, ambiguous letters (``Q``, ``I``: tifffile's
        "unknown" axes), a length that differs from ``array.ndim``, or a missing
        Z, Y or X.

    Examples
    --------
    >>> to_tczyx(np.zeros((5, 2, 16, 16)), "ZCYX").shape
    (1, 2, 5, 16, 16)
    """
    if not isinstance(axes, str) or not axes:
        raise InputError(f"axes must be a string of letters such as 'TZCYX', got {axes!r}", path)
    letters = axes.strip().upper()
    shape = tuple(int(s) for s in array.shape)
    ambiguous = sorted(set(letters) & {"Q", "I"})
    if ambiguous:
        raise InputError(
            f"the axes {axes!r} of the array (shape {shape}) are ambiguous "
            f"({', '.join(ambiguous)} = unknown axis); give the axes explicitly, "
            "e.g. axes='TZCYX' (--axes TZCYX on the command line)",
            path,
        )
    letters = letters.replace("S", "C")
    unknown = sorted({c for c in letters if c not in TCZYX})
    if unknown:
        raise InputError(
            f"unknown axis letter(s) {', '.join(unknown)} in axes {axes!r}; "
            "use T, C, Z, Y, X (S counts as C)",
            path,
        )
    repeated = sorted({c for c in letters if letters.count(c) > 1})
    if repeated:
        raise InputError(
            f"axis letter(s) {', '.join(repeated)} repeated in axes {axes!r} (S counts as C)", path
        )
    if len(letters) != len(shape):
        raise InputError(
            f"axes {axes!r} have {len(letters)} letters but the array has {len(shape)} "
            f"dimensions (shape {shape})",
            path,
        )
    missing = [c for c in "ZYX" if c not in letters]
    if missing:
        raise InputError(
            f"axes {axes!r} lack {', '.join(missing)}: a 3D volume needs Z, Y and X "
            f"(array shape {shape})",
            path,
        )
    order = [letters.index(c) for c in TCZYX if c in letters]
    out = array.transpose(order)
    index = tuple(slice(None) if c in letters else None for c in TCZYX)
    return out[index]


def _guess_axes(ndim: int, shape: tuple, path: Path) -> str:
    """Axes for an array without axis metadata: 3 -> ZYX, 5 -> TCZYX."""
    if ndim == 3:
        return "ZYX"
    if ndim == 5:
        return TCZYX
    raise InputError(
        f"{ndim}-D array (shape {shape}) has no axis metadata and its axes are "
        "ambiguous; give them, e.g. axes='TZYX' or 'CZYX' (--axes on the command line)",
        path,
    )


def _check_ndim(shape: tuple, path: Path) -> None:
    if not 3 <= len(shape) <= 5:
        raise InputError(
            f"the image has {len(shape)} dimension(s) (shape {shape}); expected a 3D to 5D "
            "volume (ZYX, with optional T and C)",
            path,
        )


@dataclass
class _Raw:
    """What a format reader found, before normalisation."""

    data: Any
    axes: str | None  # from metadata, None when unknown
    voxel: dict[str, float] = field(default_factory=dict)  # keys among "Z", "Y", "X"
    channel_names: list[str] | None = None
    handle: Any = None
    voxel_by_axes: Any = None  # callable(axes) -> dict, when the voxel size needs the axes


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".tif", ".tiff")):
        return "tiff"
    if name.endswith(".zarr") or (
        path.is_dir() and any((path / m).exists() for m in (".zgroup", ".zarray", "zarr.json"))
    ):
        return "zarr"
    if name.endswith((".h5", ".hdf5", ".hdf")):
        return "hdf5"
    if name.endswith(".npy"):
        return "npy"
    raise InputError(
        f"unsupported file type {path.suffix or '(no suffix)'!r}; "
        "use .tif/.tiff, .ome.tif, .zarr, .h5/.hdf5 or .npy",
        path,
    )


# --------------------------------------------------------------------------- read


def read_volume(
    path: str | Path,
    *,
    axes: str | None = None,
    voxel_size_um: Sequence[float] | None = None,
    dataset: str | None = None,
) -> Volume:
    """Read an image volume and normalise it to TCZYX.

    Parameters
    ----------
    path
        ``.tif``/``.tiff``/``.ome.tif``, ``.zarr`` folder, ``.h5``/``.hdf5``
        or ``.npy`` file.
    axes
        Axes of the stored array (e.g. ``"TZCYX"``), overriding the file's
        metadata. Needed for 4D arrays without axis metadata.
    voxel_size_um
        Voxel size (z, y, x) in µm, overriding the file's metadata.
    dataset
        HDF5 dataset (or zarr array within a group) to read. Optional when the
        file holds exactly one.

    Returns
    -------
    Volume
        ``data`` of shape (T, C, Z, Y, X); lazy (dask) for zarr, HDF5 and
        TIFF files larger than :data:`TIFF_LAZY_BYTES`.

    Raises
    ------
    InputError
        Missing file, unsupported suffix, corrupt or truncated file, wrong
        number of dimensions, unknown or ambiguous axes, empty or NaN-only
        volume, invalid voxel size. The message names the file.

    Warns
    -----
    UserWarning
        When the voxel size is neither in the metadata nor given, and the
        default (0.30, 0.13, 0.13) µm is used.

    Examples
    --------
    >>> vol = read_volume("movie.tif")  # doctest: +SKIP
    >>> vol.shape, vol.voxel_size_um  # doctest: +SKIP
    ((18, 2, 61, 1000, 1000), (0.3, 0.13, 0.13))
    >>> stack = vol.frame(0, channel=0)  # (Z, Y, X) float32  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    kind = _format_of(path)
    user_voxel = None if voxel_size_um is None else validate_voxel_size(voxel_size_um, path)
    if axes is not None and (not isinstance(axes, str) or not axes.strip()):
        raise InputError(f"axes must be a string of letters such as 'TZCYX', got {axes!r}", path)
    user_axes = None if axes is None else axes.strip().upper()

    reader = {"tiff": _read_tiff, "zarr": _read_zarr, "hdf5": _read_hdf5, "npy": _read_npy}[kind]
    raw = reader(path, dataset=dataset, axes=user_axes)
    try:
        return _finish(raw, path, user_axes, user_voxel)
    except BaseException:
        if raw.handle is not None:
            raw.handle.close()
        raise


def volume_from_array(
    data_tczyx: Any,
    voxel_size_um: Sequence[float],
    channel_names: Sequence[str] | None = None,
    path: str | Path | None = None,
) -> Volume:
    """Wrap an in-memory (or lazy) TCZYX array as a :class:`Volume`.

    Used by front ends that already hold the pixels (e.g. napari image
    layers) to call the same pipeline as :func:`read_volume` callers. No data
    are copied or read.

    Parameters
    ----------
    data_tczyx
        Array (T, C, Z, Y, X): numpy, dask or any array with ``shape``,
        ``dtype`` and numpy-style indexing.
    voxel_size_um
        Voxel size (z, y, x) in µm.
    channel_names
        One name per channel (default ``["EGFP", "mCherry", ...]``).
    path
        The file the pixels came from, if any (named in error messages).

    Returns
    -------
    Volume
        With ``voxel_size_source="user"`` and ``axes="TCZYX"``.

    Raises
    ------
    InputError
        Not 5 dimensions, an empty array, an invalid voxel size, or a wrong
        number of channel names.

    Examples
    --------
    >>> vol = volume_from_array(np.zeros((1, 2, 4, 8, 8)), (0.3, 0.13, 0.13))
    >>> vol.n_channels, vol.channel_names
    (2, ['EGFP', 'mCherry'])
    """
    shape = tuple(int(s) for s in getattr(data_tczyx, "shape", ()))
    if len(shape) != 5:
        raise InputError(f"expected a 5-D (T, C, Z, Y, X) array, got shape {shape}", path)
    if any(s == 0 for s in shape):
        raise InputError(f"the volume is empty (TCZYX shape {shape})", path)
    voxel = validate_voxel_size(voxel_size_um, path)
    names = list(channel_names) if channel_names is not None else []
    if names and len(names) != shape[1]:
        raise InputError(f"{len(names)} channel names given for {shape[1]} channels", path)
    return Volume(
        data=data_tczyx,
        voxel_size_um=voxel,
        voxel_size_source="user",
        axes=TCZYX,
        path=None if path is None else Path(path),
        channel_names=names,
    )


def list_datasets(path: str | Path) -> list[str]:
    """Names of the arrays in an HDF5 file or a zarr group (for a dataset chooser).

    Parameters
    ----------
    path
        ``.h5``/``.hdf5`` file or ``.zarr`` folder. Other formats hold one
        image and give an empty list.

    Returns
    -------
    list of str
        HDF5 dataset paths, or the array names of a zarr group (for an
        OME-Zarr, its resolution levels). Empty for a plain zarr array.

    Raises
    ------
    InputError
        Missing or unreadable file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    kind = _format_of(path)
    if kind == "hdf5":
        import h5py

        names: list[str] = []
        try:
            with h5py.File(path, "r") as handle:
                handle.visititems(
                    lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
                )
        except Exception as err:
            raise InputError(
                f"cannot open the HDF5 file (corrupt or not HDF5?): {type(err).__name__}: {err}",
                path,
            ) from err
        return names
    if kind == "zarr":
        import zarr

        try:
            node = zarr.open(str(path), mode="r")
        except Exception as err:
            raise InputError(
                f"not a readable zarr store: {type(err).__name__}: {err}", path
            ) from err
        if isinstance(node, zarr.Array):
            return []
        return _zarr_array_names(node)
    return []


def _finish(
    raw: _Raw, path: Path, user_axes: str | None, user_voxel: tuple[float, float, float] | None
) -> Volume:
    data = raw.data
    shape = tuple(int(s) for s in data.shape)
    _check_ndim(shape, path)
    if user_axes is not None:
        file_axes = user_axes
    else:
        file_axes = raw.axes
        if file_axes is None or set(file_axes) & {"Q", "I"}:
            file_axes = _guess_axes(len(shape), shape, path)
    data = to_tczyx(data, file_axes, path=path)

    if hasattr(data, "chunks") and hasattr(data, "rechunk"):
        if any(c > 1 for c in data.chunks[0]):
            data = data.rechunk({0: 1})

    dtype = np.dtype(data.dtype)
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise InputError(f"unsupported data type {dtype} (expected numbers)", path)
    if any(s == 0 for s in data.shape):
        raise InputError(f"the volume is empty (TCZYX shape {tuple(data.shape)})", path)
    if np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating):
        first = data[0]
        if hasattr(first, "compute"):
            first = first.compute()
        if np.isnan(np.asarray(first)).all():
            raise InputError("the volume is all NaN (checked on the first time point)", path)

    if user_voxel is not None:
        voxel, source = user_voxel, "user"
    else:
        found = dict(raw.voxel)
        if not found and raw.voxel_by_axes is not None:
            found = raw.voxel_by_axes(file_axes)
        if found:
            missing = [c for c in "ZYX" if c not in found]
            values = [found.get(c, d) for c, d in zip("ZYX", DEFAULT_VOXEL_SIZE_UM, strict=True)]
            try:
                voxel = validate_voxel_size(values, path)
            except InputError as err:
                raise InputError(
                    f"invalid voxel size in the file's metadata: {err.problem}; "
                    "give voxel_size_um= (--voxel-size) to override",
                    path,
                ) from None
            source = "metadata"
            if missing:
                warnings.warn(
                    f"{path}: the metadata gives no voxel size along "
                    f"{', '.join(m.lower() for m in missing)}; using the default for it. "
                    f"Voxel size (z, y, x) = {voxel} µm. Pass voxel_size_um= to override.",
                    UserWarning,
                    stacklevel=3,
                )
        else:
            voxel, source = tuple(DEFAULT_VOXEL_SIZE_UM), "default"
            warnings.warn(
                f"{path}: no voxel size in the file's metadata; using the default "
                f"(z, y, x) = {voxel} µm. Pass voxel_size_um= (--voxel-size) to override.",
                UserWarning,
                stacklevel=3,
            )

    n_channels = int(data.shape[1])
    names = raw.channel_names
    if not names or len(names) != n_channels:
        names = default_channel_names(n_channels)
    return Volume(
        data=data,
        voxel_size_um=voxel,  # type: ignore[arg-type]
        voxel_size_source=source,
        axes=file_axes,
        path=path,
        channel_names=list(names),
        _handle=raw.handle,
    )


# ---- TIFF

_TIFF_CORRUPT = re.compile(
    r"corrupt|invalid (page|value) offset|truncat|TiffFileError|failed to read", re.IGNORECASE
)


class _LogCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _read_tiff(path: Path, *, dataset: str | None = None, axes: str | None = None) -> _Raw:
    import tifffile

    logger = logging.getLogger("tifffile")
    catcher = _LogCatcher()
    logger.addHandler(catcher)
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise InputError("the TIFF file holds no image", path)
            series = tif.series[0]
            file_axes = series.axes
            size = path.stat().st_size
            _check_tiff_extent(series, size, path)
            voxel, names = _tiff_metadata(tif, series)
            lazy = size > TIFF_LAZY_BYTES
            data = None if lazy else series.asarray()
        bad = [m for m in catcher.messages if _TIFF_CORRUPT.search(m)]
        if bad:
            raise InputError(f"corrupt or truncated TIFF: {bad[0]}", path)
        handle = None
        if lazy:
            import dask.array as da
            import zarr

            handle = tifffile.imread(path, aszarr=True, series=0, level=0)
            data = da.from_zarr(zarr.open(handle, mode="r"))
    except InputError:
        raise
    except Exception as err:  # tifffile raises TiffFileError, ValueError, OSError, ...
        raise InputError(
            f"cannot read the TIFF file (corrupt or truncated?): {type(err).__name__}: {err}",
            path,
        ) from err
    finally:
        logger.removeHandler(catcher)
    return _Raw(data=data, axes=file_axes, voxel=voxel, channel_names=names, handle=handle)


def _check_tiff_extent(series: Any, size: int, path: Path) -> None:
    """Raise if any image data lies beyond the end of the file (truncation)."""
    offset = getattr(series, "dataoffset", None)
    if offset is not None and offset + series.nbytes > size:
        raise InputError(
            f"corrupt or truncated TIFF: image data ends at byte {offset + series.nbytes} "
            f"but the file has {size} bytes",
            path,
        )
    for page in series.pages:
        if page is None:
            raise InputError("corrupt or truncated TIFF: a page is missing", path)
        offsets = getattr(page, "dataoffsets", ()) or ()
        counts = getattr(page, "databytecounts", ()) or ()
        for offset, count in zip(offsets, counts, strict=False):
            if count and offset + count > size:
                raise InputError(
                    f"corrupt or truncated TIFF: image data ends at byte {offset + count} "
                    f"but the file has {size} bytes",
                    path,
                )


def _tiff_metadata(tif: Any, series: Any) -> tuple[dict[str, float], list[str] | None]:
    """Voxel size {axis: µm} and channel names from OME or ImageJ metadata."""
    voxel: dict[str, float] = {}
    names: list[str] | None = None
    page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
    if tif.is_ome and tif.ome_metadata:
        voxel, names = _ome_xml_metadata(tif.ome_metadata)
    elif tif.is_imagej:
        ij = tif.imagej_metadata or {}
        factor = _um_factor(ij.get("unit"))
        if factor is not None:
            voxel.update(_tiff_resolution(page, factor))
            spacing = ij.get("spacing")
            if spacing is not None:
                voxel["Z"] = float(spacing) * factor
        names = _imagej_channel_names(ij)
    else:
        unit_tag = page.tags.get("ResolutionUnit")
        if unit_tag is not None and int(unit_tag.value) == 3:  # centimetre
            voxel.update(_tiff_resolution(page, 1e4))
    return voxel, names


def _tiff_resolution(page: Any, factor: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for tag, axis in (("XResolution", "X"), ("YResolution", "Y")):
        t = page.tags.get(tag)
        if t is None:
            continue
        value = t.value
        num, den = value if isinstance(value, tuple) else (value, 1)
        if num:
            out[axis] = float(den) / float(num) * factor
    return out


def _imagej_channel_names(ij: dict) -> list[str] | None:
    labels = ij.get("Labels")
    n = int(ij.get("channels", 1) or 1)
    if not labels or n < 1 or len(labels) < n or len(labels) % n:
        return None
    labels = [str(s) for s in labels]
    if all(labels[k] == labels[k % n] for k in range(len(labels))):
        return labels[:n]
    return None


def _ome_xml_metadata(xml: str) -> tuple[dict[str, float], list[str] | None]:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}, None
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return {}, None
    voxel: dict[str, float] = {}
    for axis in "XYZ":
        value = pixels.get(f"PhysicalSize{axis}")
        if value is None:
            continue
        factor = _um_factor(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if factor is None:
            continue
        try:
            voxel[axis] = float(value) * factor
        except ValueError:
            continue
    channels = [el for el in pixels if el.tag.rsplit("}", 1)[-1] == "Channel"]
    names = [el.get("Name") for el in channels]
    return voxel, (names if names and all(names) else None)  # type: ignore[return-value]


# ---- zarr

_NGFF_AXIS = {"t": "T", "time": "T", "c": "C", "channel": "C", "z": "Z", "y": "Y", "x": "X"}


def _read_zarr(path: Path, *, dataset: str | None = None, axes: str | None = None) -> _Raw:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as err:
        raise InputError(f"not a readable zarr store: {type(err).__name__}: {err}", path) from err

    if isinstance(node, zarr.Array):
        return _plain_zarr(node, path)

    attrs = dict(node.attrs)
    meta = attrs["ome"] if isinstance(attrs.get("ome"), dict) else attrs
    multiscales = meta.get("multiscales")
    if multiscales:
        return _ome_zarr(node, meta, multiscales, path, dataset)

    if dataset is not None:
        try:
            array = node[dataset]
        except KeyError:
            raise InputError(
                f"no array {dataset!r} in the zarr group; it holds: {_zarr_array_names(node)}",
                path,
            ) from None
        if not isinstance(array, zarr.Array):
            raise InputError(f"{dataset!r} is a zarr group, not an array", path)
        return _plain_zarr(array, path)
    names = _zarr_array_names(node)
    if len(names) == 1:
        return _plain_zarr(node[names[0]], path)
    if not names:
        raise InputError("the zarr group holds no array", path)
    raise InputError(
        f"the zarr group holds several arrays {names}; choose one with dataset= (--dataset)",
        path,
    )


def _zarr_array_names(group: Any) -> list[str]:
    return sorted(name for name, _ in group.arrays())


def _plain_zarr(array: Any, path: Path) -> _Raw:
    import dask.array as da

    attrs = dict(array.attrs)
    axes = attrs.get("axes") if isinstance(attrs.get("axes"), str) else None
    voxel: dict[str, float] = {}
    vs = attrs.get("voxel_size_um")
    if isinstance(vs, list | tuple) and len(vs) == 3:
        try:
            voxel = {a: float(v) for a, v in zip("ZYX", vs, strict=True)}
        except (TypeError, ValueError):
            voxel = {}
    return _Raw(data=da.from_zarr(array), axes=axes, voxel=voxel)


def _ome_zarr(node: Any, meta: dict, multiscales: list, path: Path, dataset: str | None) -> _Raw:
    import dask.array as da

    try:
        ms = multiscales[0]
        datasets = ms["datasets"]
        # NGFF < 0.3 had no "axes" and meant (t, c, z, y, x), trailing ones for fewer dims
        ndim = len(node[datasets[0]["path"]].shape)
        axes_meta = ms.get("axes") or ["t", "c", "z", "y", "x"][5 - ndim :]
        names = [a["name"] if isinstance(a, dict) else str(a) for a in axes_meta]
        units = [a.get("unit") if isinstance(a, dict) else None for a in axes_meta]
        entry = datasets[0]
        if dataset is not None:
            matches = [d for d in datasets if d["path"] == dataset]
            if not matches:
                raise InputError(
                    f"no level {dataset!r} in the OME-Zarr; levels: {[d['path'] for d in datasets]}",
                    path,
                )
            entry = matches[0]
        array = node[entry["path"]]
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"invalid OME-Zarr multiscales metadata: {err!r}", path) from err

    letters = []
    for name in names:
        letter = _NGFF_AXIS.get(str(name).lower())
        if letter is None:
            raise InputError(
                f"OME-Zarr axis {name!r} is not one of t, c, z, y, x; give axes= to override", path
            )
        letters.append(letter)
    file_axes = "".join(letters)

    scale = [1.0] * len(names)
    for tr in list(entry.get("coordinateTransformations", [])) + list(
        ms.get("coordinateTransformations", []) or []
    ):
        if tr.get("type") == "scale" and len(tr.get("scale", [])) == len(scale):
            scale = [a * float(b) for a, b in zip(scale, tr["scale"], strict=True)]
    voxel: dict[str, float] = {}
    spatial = [i for i, c in enumerate(letters) if c in "ZYX"]
    has_units = any(units[i] for i in spatial)
    if has_units or any(scale[i] != 1.0 for i in spatial):
        for i in spatial:
            factor = _um_factor(units[i] or "micrometer")
            if factor is not None:
                voxel[letters[i]] = scale[i] * factor

    channel_names = None
    omero = meta.get("omero")
    if isinstance(omero, dict) and isinstance(omero.get("channels"), list):
        labels = [c.get("label") for c in omero["channels"] if isinstance(c, dict)]
        if labels and all(labels):
            channel_names = [str(s) for s in labels]
    return _Raw(data=da.from_zarr(array), axes=file_axes, voxel=voxel, channel_names=channel_names)


# ---- HDF5


def _read_hdf5(path: Path, *, dataset: str | None = None, axes: str | None = None) -> _Raw:
    import dask.array as da
    import h5py

    try:
        handle = h5py.File(path, "r")
    except Exception as err:
        raise InputError(
            f"cannot open the HDF5 file (corrupt or not HDF5?): {type(err).__name__}: {err}", path
        ) from err
    try:
        names: list[str] = []
        handle.visititems(
            lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
        )
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
        dset = handle[key]
        meta_axes = _ilastik_axes(dset)
        ndim = dset.ndim
        t_index = None
        axes_for_chunks = axes or meta_axes
        if axes_for_chunks and "T" in axes_for_chunks and len(axes_for_chunks) == ndim:
            t_index = axes_for_chunks.index("T")
        elif axes_for_chunks is None and ndim == 5:
            t_index = 0
        chunks = tuple(1 if i == t_index else -1 for i in range(ndim))
        data = da.from_array(dset, chunks=chunks, lock=True)

        element_size = dset.attrs.get("element_size_um")

        def voxel_by_axes(file_axes: str) -> dict[str, float]:
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

    except BaseException:
        handle.close()
        raise
    return _Raw(data=data, axes=meta_axes, handle=handle, voxel_by_axes=voxel_by_axes)


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


# ---- npy


def _read_npy(path: Path, *, dataset: str | None = None, axes: str | None = None) -> _Raw:
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:
        raise InputError(
            f"cannot read the .npy file (corrupt or truncated?): {type(err).__name__}: {err}", path
        ) from err
    if not isinstance(data, np.ndarray):
        raise InputError("the .npy file does not hold a single array", path)
    return _Raw(data=data, axes=None)


# --------------------------------------------------------------------------- write


def _as_tczyx_array(data: Any) -> Any:
    if getattr(data, "ndim", None) != 5:
        raise InputError(
            f"data must be a 5-D TCZYX array, got shape {tuple(getattr(data, 'shape', ()))}"
        )
    return data


def _temp_path(path: Path, suffix: str = ".tmp") -> Path:
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}{suffix}"


def write_tiff(
    path: str | Path,
    data_tczyx: Any,
    voxel_size_um: Sequence[float],
    *,
    channel_names: Sequence[str] | None = None,
    ome: bool = False,
) -> Path:
    """Write a TCZYX array as an ImageJ hyperstack or an OME-TIFF.

    The file is written to a temporary file in the same folder and then
    renamed, so an existing file is never left half-written.

    Parameters
    ----------
    path
        Output file (``.tif``; ``.ome.tif`` for OME-TIFF by convention).
    data_tczyx
        Array (T, C, Z, Y, X), numpy or dask (computed in memory). For ImageJ,
        data types other than uint8, uint16, int16 and float32 are stored as
        float32 (bool as uint8).
    voxel_size_um
        Voxel size (z, y, x) in µm.
    channel_names
        One name per channel (default ``["EGFP", "mCherry", ...]``). Stored as
        OME ``Channel/@Name``, or as ImageJ slice labels.
    ome
        False: ImageJ hyperstack (axes TZCYX, ``spacing`` = z, resolution =
        1/x, 1/y, unit ``um``). True: OME-TIFF with ``PhysicalSize{X,Y,Z}``.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> write_tiff("movie.tif", np.zeros((2, 1, 5, 16, 16), np.uint16),
    ...            (0.3, 0.13, 0.13))  # doctest: +SKIP
    """
    import tifffile

    path = Path(path)
    vz, vy, vx = validate_voxel_size(voxel_size_um, path)
    arr = np.asarray(_as_tczyx_array(data_tczyx))
    n_t, n_c, n_z = arr.shape[:3]
    names = list(channel_names) if channel_names is not None else default_channel_names(n_c)
    if len(names) != n_c:
        raise InputError(f"{len(names)} channel names given for {n_c} channels", path)
    bigtiff = arr.nbytes > 2**32 - 2**25

    tmp = _temp_path(path, ".tif")
    try:
        if ome:
            tifffile.imwrite(
                tmp,
                arr,
                ome=True,
                bigtiff=bigtiff,
                photometric="minisblack",
                metadata={
                    "axes": TCZYX,
                    "PhysicalSizeZ": vz,
                    "PhysicalSizeZUnit": "µm",
                    "PhysicalSizeY": vy,
                    "PhysicalSizeYUnit": "µm",
                    "PhysicalSizeX": vx,
                    "PhysicalSizeXUnit": "µm",
                    "Channel": {"Name": names},
                },
            )
        else:
            if arr.dtype == np.bool_:
                arr = arr.astype(np.uint8)
            elif arr.dtype.char not in "BHhf":
                arr = arr.astype(np.float32)
            labels = [names[c] for _t in range(n_t) for _z in range(n_z) for c in range(n_c)]
            tifffile.imwrite(
                tmp,
                arr.transpose(0, 2, 1, 3, 4),
                imagej=True,
                ome=False,
                bigtiff=bigtiff,
                photometric="minisblack",
                resolution=(1.0 / vx, 1.0 / vy),
                metadata={"axes": "TZCYX", "spacing": vz, "unit": "um", "Labels": labels},
            )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _default_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    _t, _c, z, y, x = shape
    return (1, 1, max(1, min(z, 64)), max(1, min(y, 256)), max(1, min(x, 256)))


def write_zarr(
    path: str | Path,
    data_tczyx: Any,
    voxel_size_um: Sequence[float],
    *,
    ome: bool = True,
    chunks: Sequence[int] | None = None,
    channel_names: Sequence[str] | None = None,
    zarr_format: int = 2,
) -> Path:
    """Write a TCZYX array as OME-Zarr (or a plain zarr array).

    The store is written to a temporary folder beside ``path`` and then moved
    into place; an existing store at ``path`` is replaced.

    Parameters
    ----------
    path
        Output folder, e.g. ``movie.ome.zarr``.
    data_tczyx
        Array (T, C, Z, Y, X), numpy or dask; written one frame at a time.
    voxel_size_um
        Voxel size (z, y, x) in µm.
    ome
        True: OME-Zarr image, one resolution level ``"0"``, axes t, c, z, y, x
        (space units ``micrometer``) and a scale transform ``[1, 1, z, y, x]``.
        NGFF 0.4 on zarr format 2, NGFF 0.5 (under ``"ome"``) on format 3.
        False: a plain zarr array with attributes ``axes = "TCZYX"`` and
        ``voxel_size_um = [z, y, x]`` (read back by :func:`read_volume`).
    chunks
        Chunk shape (T, C, Z, Y, X); default ``(1, 1, ≤64, ≤256, ≤256)``. The T
        chunk is always 1 (one frame per chunk).
    channel_names
        Optional names, written as OMERO channel labels (OME-Zarr only).
    zarr_format
        2 (default, widest support) or 3.

    Returns
    -------
    Path
        The store written.

    Examples
    --------
    >>> write_zarr("movie.ome.zarr", np.zeros((2, 1, 5, 16, 16), np.uint16),
    ...            (0.3, 0.13, 0.13))  # doctest: +SKIP
    """
    import zarr

    path = Path(path)
    vz, vy, vx = validate_voxel_size(voxel_size_um, path)
    data = _as_tczyx_array(data_tczyx)
    shape = tuple(int(s) for s in data.shape)
    if zarr_format not in (2, 3):
        raise InputError(f"zarr_format must be 2 or 3, got {zarr_format!r}", path)
    chunk_shape = tuple(int(c) for c in chunks) if chunks is not None else _default_chunks(shape)
    if len(chunk_shape) != 5 or any(c < 1 for c in chunk_shape):
        raise InputError(f"chunks must be 5 positive integers (T, C, Z, Y, X), got {chunks}", path)
    chunk_shape = (1, *chunk_shape[1:])
    dtype = np.dtype(data.dtype)

    tmp = _temp_path(path, ".zarr")
    try:
        if ome:
            group = zarr.open_group(str(tmp), mode="w", zarr_format=zarr_format)
            array = group.create_array("0", shape=shape, dtype=dtype, chunks=chunk_shape)
            axes_meta = [
                {"name": "t", "type": "time"},
                {"name": "c", "type": "channel"},
                {"name": "z", "type": "space", "unit": "micrometer"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ]
            multiscale = {
                "name": path.name,
                "axes": axes_meta,
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1.0, 1.0, vz, vy, vx]}
                        ],
                    }
                ],
            }
            omero = None
            if channel_names is not None:
                names = [str(n) for n in channel_names]
                if len(names) != shape[1]:
                    raise InputError(
                        f"{len(names)} channel names given for {shape[1]} channels", path
                    )
                omero = {"channels": [{"label": n, "active": True} for n in names]}
            if zarr_format == 2:
                attrs: dict[str, Any] = {"multiscales": [{"version": "0.4", **multiscale}]}
                if omero:
                    attrs["omero"] = omero
            else:
                ome_meta: dict[str, Any] = {"version": "0.5", "multiscales": [multiscale]}
                if omero:
                    ome_meta["omero"] = omero
                attrs = {"ome": ome_meta}
            group.attrs.update(attrs)
        else:
            array = zarr.create_array(
                store=str(tmp),
                shape=shape,
                dtype=dtype,
                chunks=chunk_shape,
                zarr_format=zarr_format,
            )
            array.attrs.update({"axes": TCZYX, "voxel_size_um": [vz, vy, vx]})
        for t in range(shape[0]):
            array[t] = np.asarray(data[t])
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst``, replacing whatever is at ``dst``."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = _temp_path(dst, ".old")
    os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(old, dst)
        raise
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)
