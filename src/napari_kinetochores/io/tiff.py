"""TIFF, ImageJ hyperstack and OME-TIFF: read into a :class:`~.volumes.RawVolume`, write TCZYX.

The voxel size is read from OME ``PhysicalSize{X,Y,Z}`` (with units), from
the ImageJ ``spacing``/``unit`` and X/YResolution, or from the resolution tags
of a plain TIFF in centimetres. Files larger than :data:`TIFF_LAZY_BYTES` are
read lazily (tifffile ``aszarr`` + dask). A truncated or corrupt file raises
:class:`~napari_kinetochores.errors.InputError`. tifffile is imported inside
the functions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.io.atomic import atomic_output
from napari_kinetochores.io.volumes import (
    TCZYX,
    RawVolume,
    check_tczyx_array,
    default_channel_names,
    um_per_unit,
    validate_voxel_size,
)

__all__ = ["TIFF_LAZY_BYTES", "read_raw_tiff", "write_tiff"]

#: TIFF files larger than this (bytes) are read lazily (tifffile ``aszarr`` + dask).
TIFF_LAZY_BYTES = 1 << 30

_TIFF_CORRUPT = re.compile(
    r"corrupt|invalid (page|value) offset|truncat|TiffFileError|failed to read", re.IGNORECASE
)


class _LogCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# --------------------------------------------------------------------------- read


def read_raw_tiff(path: Path, *, dataset: str | None = None, axes: str | None = None) -> RawVolume:
    """Read the first series of a TIFF file with its axes, voxel size and channel names.

    Parameters
    ----------
    path
        ``.tif``/``.tiff``/``.ome.tif`` file.
    dataset, axes
        Unused (a TIFF holds one series here); accepted like every reader's.

    Returns
    -------
    RawVolume
        numpy data, or dask data (with the open store as ``handle``) for
        files larger than :data:`TIFF_LAZY_BYTES`.

    Raises
    ------
    InputError
        No image, or a corrupt or truncated file.
    """
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
            voxel, names = _tiff_metadata(tif)
            lazy = size > TIFF_LAZY_BYTES
            data = None if lazy else series.asarray()
        bad = [m for m in catcher.messages if _TIFF_CORRUPT.search(m)]
        if bad:
            raise InputError(f"corrupt or truncated TIFF: {bad[0]}", path)
        handle = None
        if lazy:
            data, handle = _open_lazy(path)
    except InputError:
        raise
    except Exception as err:  # tifffile raises TiffFileError, ValueError, OSError, ...
        raise InputError(
            f"cannot read the TIFF file (corrupt or truncated?): {type(err).__name__}: {err}",
            path,
        ) from err
    finally:
        logger.removeHandler(catcher)
    return RawVolume(data=data, axes=file_axes, voxel=voxel, channel_names=names, handle=handle)


def _open_lazy(path: Path) -> tuple[Any, Any]:
    """A dask array over the first series of ``path``, and the store to close."""
    import dask.array as da
    import tifffile
    import zarr

    handle = tifffile.imread(path, aszarr=True, series=0, level=0)
    return da.from_zarr(zarr.open(handle, mode="r")), handle


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


def _tiff_metadata(tif: Any) -> tuple[dict[str, float], list[str] | None]:
    """Voxel size {axis: µm} and channel names from OME or ImageJ metadata."""
    voxel: dict[str, float] = {}
    names: list[str] | None = None
    page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
    if tif.is_ome and tif.ome_metadata:
        voxel, names = _ome_xml_metadata(tif.ome_metadata)
    elif tif.is_imagej:
        ij = tif.imagej_metadata or {}
        factor = um_per_unit(ij.get("unit"))
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
        factor = um_per_unit(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if factor is None:
            continue
        try:
            voxel[axis] = float(value) * factor
        except ValueError:
            continue
    channels = [el for el in pixels if el.tag.rsplit("}", 1)[-1] == "Channel"]
    names = [el.get("Name") for el in channels]
    return voxel, (names if names and all(names) else None)  # type: ignore[return-value]


# --------------------------------------------------------------------------- write


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
    path = Path(path)
    voxel = validate_voxel_size(voxel_size_um, path)
    arr = np.asarray(check_tczyx_array(data_tczyx))
    n_c = arr.shape[1]
    names = list(channel_names) if channel_names is not None else default_channel_names(n_c)
    if len(names) != n_c:
        raise InputError(f"{len(names)} channel names given for {n_c} channels", path)
    bigtiff = arr.nbytes > 2**32 - 2**25

    with atomic_output(path, ".tif") as tmp:
        if ome:
            _write_ome_tiff(tmp, arr, voxel, names, bigtiff)
        else:
            _write_imagej_tiff(tmp, arr, voxel, names, bigtiff)
    return path


def _write_ome_tiff(
    path: Path,
    arr: np.ndarray,
    voxel_size_um: tuple[float, float, float],
    names: list[str],
    bigtiff: bool,
) -> None:
    """Write ``arr`` (T, C, Z, Y, X) as OME-TIFF with ``PhysicalSize{X,Y,Z}`` in µm."""
    import tifffile

    vz, vy, vx = voxel_size_um
    tifffile.imwrite(
        path,
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


def _write_imagej_tiff(
    path: Path,
    arr: np.ndarray,
    voxel_size_um: tuple[float, float, float],
    names: list[str],
    bigtiff: bool,
) -> None:
    """Write ``arr`` (T, C, Z, Y, X) as an ImageJ hyperstack (TZCYX) in a type ImageJ reads."""
    import tifffile

    vz, vy, vx = voxel_size_um
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype.char not in "BHhf":
        arr = arr.astype(np.float32)
    n_t, n_c, n_z = arr.shape[:3]
    labels = [names[c] for _t in range(n_t) for _z in range(n_z) for c in range(n_c)]
    tifffile.imwrite(
        path,
        arr.transpose(0, 2, 1, 3, 4),
        imagej=True,
        ome=False,
        bigtiff=bigtiff,
        photometric="minisblack",
        resolution=(1.0 / vx, 1.0 / vy),
        metadata={"axes": "TZCYX", "spacing": vz, "unit": "um", "Labels": labels},
    )
