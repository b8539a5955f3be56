"""Image volumes normalised to TCZYX with their voxel size: the core that all formats share.

Every reader returns a :class:`Volume` whose ``data`` has the axes
(T, C, Z, Y, X): a 3D stack is T=1, C=1. The voxel size is (z, y, x) in µm.
It comes from the file's metadata where present, from the caller
(``voxel_size_um=``) when given, and otherwise from
:data:`napari_kinetochores.DEFAULT_VOXEL_SIZE_UM` with a warning.

:func:`read_volume` picks the format by suffix; each format has its module,
which reads what the file holds into a :class:`RawVolume` (array, axes and
voxel size as stored) and writes it:

=====================  ====================================  =============
suffix                 format                                module
=====================  ====================================  =============
``.tif``, ``.tiff``    TIFF, ImageJ hyperstack; voxel size   :mod:`.tiff`
                       from the ImageJ ``spacing``/``unit``
                       and X/YResolution
``.ome.tif(f)``        OME-TIFF; voxel size from             :mod:`.tiff`
                       ``PhysicalSize{X,Y,Z}``
``.zarr`` (folder)     OME-Zarr (NGFF 0.4 on zarr v2, NGFF   :mod:`.zarr`
                       0.5 on zarr v3), a plain zarr array,
                       or a group holding one array. Lazy.
``.h5``, ``.hdf5``     HDF5 dataset (``dataset=``); ilastik  :mod:`.hdf5`
                       ``exported_data`` defaults to ZYXC /
                       TZYXC. Lazy.
``.npy``               NumPy array, memory-mapped.           :mod:`.npy`
=====================  ====================================  =============

This module holds what they share: :class:`Volume`, :class:`RawVolume`, axis
reordering (:func:`to_tczyx`), voxel-size checks and units. The writers write through
:func:`napari_kinetochores.io.atomic.atomic_output`. Heavy libraries (tifffile, zarr, h5py,
dask) are imported inside the functions that use them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_kinetochores import DEFAULT_VOXEL_SIZE_UM
from napari_kinetochores.errors import InputError

__all__ = [
    "MAX_CHANNELS",
    "MIN_IMAGE_SIDE",
    "TCZYX",
    "VOXEL_SIZE_RANGE_UM",
    "RawVolume",
    "Volume",
    "check_tczyx_array",
    "default_channel_names",
    "list_datasets",
    "read_volume",
    "to_tczyx",
    "um_per_unit",
    "validate_voxel_size",
    "volume_from_array",
]

TCZYX = "TCZYX"

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


def um_per_unit(unit: Any) -> float | None:
    """Micrometres per ``unit`` (a length unit as metadata spell it), or None if unknown.

    Examples
    --------
    >>> um_per_unit("nm"), um_per_unit(" Micron "), um_per_unit("pixel")
    (0.001, 1.0, None)
    """
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


VOXEL_SIZE_RANGE_UM = (0.001, 100.0)
"""Physical range of a voxel's side (µm), inclusive: 1 nm (beyond any light microscope's
sampling) to 100 µm (beyond any z step of cell imaging). Outside it a value is a unit or
typing mistake (e.g. nm given as µm) that would make every distance wrong."""


def validate_voxel_size(
    voxel_size_um: Sequence[float] | Any, source: str | Path | None = None
) -> tuple[float, float, float]:
    """Check a voxel size and return it as three floats (z, y, x) in µm.

    The one check of a voxel size, wherever it enters: the readers' metadata,
    the caller's ``voxel_size_um=`` (``--voxel-size``), checkpoints' info.

    Parameters
    ----------
    voxel_size_um
        Three numbers (z, y, x) in µm, each within :data:`VOXEL_SIZE_RANGE_UM`
        (0.001 to 100 µm).
    source
        File or argument the value came from; named in the error message.

    Returns
    -------
    tuple of float
        (z, y, x) in µm.

    Raises
    ------
    InputError
        If it is not three finite numbers within the range.

    Examples
    --------
    >>> validate_voxel_size([0.3, 0.13, 0.13])
    (0.3, 0.13, 0.13)
    >>> validate_voxel_size([1e-300, 0.13, 0.13], "--voxel-size")
    Traceback (most recent call last):
    ...
    napari_kinetochores.errors.InputError: --voxel-size: voxel size must be between 0.001 and 100 µm along each axis, got (z, y, x) = (1e-300, 0.13, 0.13)
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
    low, high = VOXEL_SIZE_RANGE_UM
    if not all(low <= v <= high for v in values):
        raise InputError(
            f"voxel size must be between {low:g} and {high:g} µm along each axis, "
            f"got (z, y, x) = {values}",
            source,
        )
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
    letters = _axis_letters(axes, array, path)
    order = [letters.index(c) for c in TCZYX if c in letters]
    out = array.transpose(order)
    index = tuple(slice(None) if c in letters else None for c in TCZYX)
    return out[index]


def _axis_letters(axes: Any, array: Any, path: str | Path | None) -> str:
    """``axes`` checked against ``array``, in upper case with S as C (see :func:`to_tczyx`)."""
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
    return letters


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


#: A kinetochore movie has a few channels (EGFP, mCherry, maybe one more);
#: more than this suggests that T or Z was taken for C.
MAX_CHANNELS = 8
#: An image narrower than this (pixels along Y or X) cannot hold a spot.
MIN_IMAGE_SIDE = 4


_AXES_ORIGIN = {
    "given": "given",
    "metadata": "from the file's metadata",
    "guessed": "guessed: the file has no axis metadata",
}


def _check_axes_sense(
    shape_tczyx: tuple[int, ...], axes: str, path: str | Path | None, origin: str = "metadata"
) -> None:
    """Refuse or warn about a TCZYX shape that suggests wrong axes metadata.

    The rules, on the shape (T, C, Z, Y, X) after reordering:

    * InputError: more than :data:`MAX_CHANNELS` channels while Y or X is
      below :data:`MIN_IMAGE_SIDE` (e.g. 64 channels of 2 × 2 images): a
      spatial axis was taken for C.
    * InputError: more time points or channels than voxels in one image
      (T or C > Z·Y·X): the axes are mixed up.
    * UserWarning: more than :data:`MAX_CHANNELS` channels.
    * UserWarning: Y or X below :data:`MIN_IMAGE_SIDE` pixels.

    Parameters
    ----------
    shape_tczyx
        The shape (T, C, Z, Y, X).
    axes
        The axes the array was read with (e.g. ``"TZCYX"``).
    path
        The file, named in the message.
    origin
        Where the axes came from: ``"given"`` (by the caller), ``"metadata"``
        or ``"guessed"`` (no metadata; from the number of dimensions).

    Examples
    --------
    >>> _check_axes_sense((10, 2, 40, 512, 512), "TZCYX", "movie.tif")  # fine: no output
    >>> _check_axes_sense((1, 64, 3, 2, 2), "ZCYX", "odd.tif")
    Traceback (most recent call last):
    ...
    napari_kinetochores.errors.InputError: odd.tif: the axes 'ZCYX' (from the file's metadata) give 64 channels of 2 × 2 pixels (TCZYX shape (1, 64, 3, 2, 2)), which is no movie; give the right axes, e.g. axes='TZCYX' (--axes on the command line)
    """
    t, c, z, y, x = shape_tczyx
    what = f"the axes {axes!r} ({_AXES_ORIGIN[origin]}) give"
    advice = "give the right axes, e.g. axes='TZCYX' (--axes on the command line)"
    if c > MAX_CHANNELS and min(y, x) < MIN_IMAGE_SIDE:
        problem = f"{c} channels of {y} × {x} pixels"
    elif max(t, c) > z * y * x:
        n, name = (t, "time points") if t >= c else (c, "channels")
        problem = f"{n} {name} of {z} × {y} × {x} = {z * y * x} voxels"
    else:
        problem = None
    if problem is not None:
        raise InputError(
            f"{what} {problem} (TCZYX shape {tuple(shape_tczyx)}), which is no movie; {advice}",
            path,
        )
    odd = []
    if c > MAX_CHANNELS:
        odd.append(f"{c} channels (more than {MAX_CHANNELS})")
    if min(y, x) < MIN_IMAGE_SIDE:
        odd.append(f"images of {y} × {x} pixels (too small to hold a spot)")
    if odd:
        warnings.warn(
            f"{path}: {what} {' and '.join(odd)} (TCZYX shape {tuple(shape_tczyx)}); "
            f"check the axes; if they are wrong, {advice}",
            UserWarning,
            stacklevel=4,  # the caller of read_volume
        )


def _check_ndim(shape: tuple, path: Path) -> None:
    if not 3 <= len(shape) <= 5:
        raise InputError(
            f"the image has {len(shape)} dimension(s) (shape {shape}); expected a 3D to 5D "
            "volume (ZYX, with optional T and C)",
            path,
        )


# --------------------------------------------------------------------------- read


@dataclass
class RawVolume:
    """What a format's reader found in a file, before :func:`read_volume` normalises it.

    Attributes
    ----------
    data
        The array as stored (numpy, memory map or dask), 3 to 5 dimensions
        (checked by :func:`read_volume`).
    axes
        One letter per dimension from the file's metadata (e.g. ``"TZCYX"``),
        or None when the file does not say.
    voxel
        Voxel size in µm by axis letter (keys among ``"Z"``, ``"Y"``,
        ``"X"``), as far as the metadata give it.
    channel_names
        Channel names from the metadata, or None.
    handle
        An open file or store that the :class:`Volume` must close, or None.
    voxel_by_axes
        For formats whose voxel size depends on the axes finally used (HDF5
        ``element_size_um``): called with those axes, returns ``voxel``.
    """

    data: Any
    axes: str | None
    voxel: dict[str, float] = field(default_factory=dict)
    channel_names: list[str] | None = None
    handle: Any = None
    voxel_by_axes: Callable[[str], dict[str, float]] | None = None


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


def _raw_reader(kind: str) -> Callable[..., RawVolume]:
    """The reader of format ``kind`` (as :func:`_format_of` names it)."""
    # The format modules build on this one (RawVolume, units), so they are
    # imported here rather than at the top, where they would import each other.
    from napari_kinetochores.io import hdf5, npy, tiff
    from napari_kinetochores.io import zarr as zarr_io

    readers = {
        "tiff": tiff.read_raw_tiff,
        "zarr": zarr_io.read_raw_zarr,
        "hdf5": hdf5.read_raw_hdf5,
        "npy": npy.read_raw_npy,
    }
    return readers[kind]


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
        TIFF files larger than :data:`~napari_kinetochores.io.tiff.TIFF_LAZY_BYTES`.

    Raises
    ------
    InputError
        Missing file, unsupported suffix, corrupt or truncated file, wrong
        number of dimensions, unknown or ambiguous axes, axes that make no
        movie (more than 8 channels of images under 4 pixels wide, or more
        frames or channels than voxels per image), empty or NaN-only volume,
        invalid voxel size. The message names the file (and the axes).

    Warns
    -----
    UserWarning
        When the voxel size is neither in the metadata nor given, and the
        default (0.30, 0.13, 0.13) µm is used; when the axes give more than 8
        channels or images under 4 pixels along Y or X.

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

    raw = _raw_reader(kind)(path, dataset=dataset, axes=user_axes)
    try:
        return _finish(raw, path, user_axes, user_voxel)
    except BaseException:
        if raw.handle is not None:
            raw.handle.close()
        raise


def _finish(
    raw: RawVolume,
    path: Path,
    user_axes: str | None,
    user_voxel: tuple[float, float, float] | None,
) -> Volume:
    """Normalise what a reader found into a checked :class:`Volume`."""
    data, file_axes, origin = _tczyx_data(raw, path, user_axes)
    _check_axes_sense(tuple(int(s) for s in data.shape), file_axes, path, origin)
    _check_values(data, path)
    if user_voxel is not None:
        voxel, source = user_voxel, "user"
    else:
        voxel, source = _metadata_voxel_size(raw, file_axes, path)
    n_channels = int(data.shape[1])
    names = raw.channel_names
    if not names or len(names) != n_channels:
        names = default_channel_names(n_channels)
    return Volume(
        data=data,
        voxel_size_um=voxel,
        voxel_size_source=source,
        axes=file_axes,
        path=path,
        channel_names=list(names),
        _handle=raw.handle,
    )


def _tczyx_data(raw: RawVolume, path: Path, user_axes: str | None) -> tuple[Any, str, str]:
    """The data as TCZYX (dask: one frame per chunk), the axes it was read with and
    where they came from (``"given"``, ``"metadata"`` or ``"guessed"``)."""
    shape = tuple(int(s) for s in raw.data.shape)
    _check_ndim(shape, path)
    if user_axes is not None:
        file_axes, origin = user_axes, "given"
    elif raw.axes is None or set(raw.axes) & {"Q", "I"}:  # no axis metadata
        file_axes, origin = _guess_axes(len(shape), shape, path), "guessed"
    else:
        file_axes, origin = raw.axes, "metadata"
    data = to_tczyx(raw.data, file_axes, path=path)
    if hasattr(data, "chunks") and hasattr(data, "rechunk"):
        if any(c > 1 for c in data.chunks[0]):
            data = data.rechunk({0: 1})
    return data, file_axes, origin


def _check_values(data: Any, path: Path) -> None:
    """Raise unless the TCZYX data are numbers, non-empty, and not all NaN at t = 0."""
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


def _metadata_voxel_size(
    raw: RawVolume, file_axes: str, path: Path
) -> tuple[tuple[float, float, float], str]:
    """Voxel size (z, y, x) in µm and its source, from the metadata or the default.

    Warns (at the caller of :func:`read_volume`, hence ``stacklevel=4``) when
    the default fills in some or all axes.
    """
    found = dict(raw.voxel)
    if not found and raw.voxel_by_axes is not None:
        found = raw.voxel_by_axes(file_axes)
    if not found:
        voxel = tuple(DEFAULT_VOXEL_SIZE_UM)
        warnings.warn(
            f"{path}: no voxel size in the file's metadata; using the default "
            f"(z, y, x) = {voxel} µm. Pass voxel_size_um= (--voxel-size) to override.",
            UserWarning,
            stacklevel=4,
        )
        return voxel, "default"  # type: ignore[return-value]
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
    if missing:
        warnings.warn(
            f"{path}: the metadata gives no voxel size along "
            f"{', '.join(m.lower() for m in missing)}; using the default for it. "
            f"Voxel size (z, y, x) = {voxel} µm. Pass voxel_size_um= to override.",
            UserWarning,
            stacklevel=4,
        )
    return voxel, "metadata"


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
        from napari_kinetochores.io.hdf5 import list_hdf5_datasets

        return list_hdf5_datasets(path)
    if kind == "zarr":
        from napari_kinetochores.io.zarr import list_zarr_arrays

        return list_zarr_arrays(path)
    return []


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


# --------------------------------------------------------------------------- write


def check_tczyx_array(data: Any) -> Any:
    """Return ``data`` if it has 5 dimensions (T, C, Z, Y, X); raise InputError otherwise.

    Examples
    --------
    >>> check_tczyx_array(np.zeros((1, 1, 2, 3, 3))).shape
    (1, 1, 2, 3, 3)
    """
    if getattr(data, "ndim", None) != 5:
        raise InputError(
            f"data must be a 5-D TCZYX array, got shape {tuple(getattr(data, 'shape', ()))}"
        )
    return data
