"""OME-Zarr and plain zarr: read into a :class:`~.volumes.RawVolume` (lazily), write TCZYX.

Reads OME-Zarr images (NGFF 0.4 on zarr format 2, NGFF 0.5 under ``"ome"`` on
format 3, and older NGFF without ``axes``), plain zarr arrays (with the
``axes`` and ``voxel_size_um`` attributes that :func:`write_zarr` writes, or
none), and groups holding one array. The zarr library is imported inside the
functions (absolute ``import zarr``, which this module's name does not shadow).
"""

from __future__ import annotations

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
    um_per_unit,
    validate_voxel_size,
)

__all__ = ["list_zarr_arrays", "read_raw_zarr", "write_zarr"]

_NGFF_AXIS = {"t": "T", "time": "T", "c": "C", "channel": "C", "z": "Z", "y": "Y", "x": "X"}


# --------------------------------------------------------------------------- read


def read_raw_zarr(path: Path, *, dataset: str | None = None, axes: str | None = None) -> RawVolume:
    """Read a zarr store (OME-Zarr image, plain array, or group holding arrays) lazily.

    Parameters
    ----------
    path
        ``.zarr`` folder.
    dataset
        The array to read within a group, or the resolution level of an
        OME-Zarr (default: the first level, or the group's only array).
    axes
        Unused (the axes come from the metadata or the caller's override);
        accepted like every reader's.

    Returns
    -------
    RawVolume
        Dask data; axes, voxel size and channel names from the metadata.

    Raises
    ------
    InputError
        Not a zarr store, invalid OME-Zarr metadata, no such array, or a
        group with several arrays and no ``dataset``.
    """
    import zarr

    node = _open_zarr(path)
    if isinstance(node, zarr.Array):
        return _plain_zarr(node, path)

    attrs = dict(node.attrs)
    meta = attrs["ome"] if isinstance(attrs.get("ome"), dict) else attrs
    multiscales = meta.get("multiscales")
    if multiscales:
        return _ome_zarr(node, meta, multiscales, path, dataset)
    return _plain_zarr(_group_array(node, dataset, path), path)


def list_zarr_arrays(path: Path) -> list[str]:
    """Names of the arrays in a zarr group (an OME-Zarr's levels); empty for a plain array.

    Raises
    ------
    InputError
        Not a readable zarr store.
    """
    import zarr

    node = _open_zarr(path)
    if isinstance(node, zarr.Array):
        return []
    return _zarr_array_names(node)


def _open_zarr(path: Path) -> Any:
    import zarr

    try:
        return zarr.open(str(path), mode="r")
    except Exception as err:
        raise InputError(f"not a readable zarr store: {type(err).__name__}: {err}", path) from err


def _zarr_array_names(group: Any) -> list[str]:
    return sorted(name for name, _ in group.arrays())


def _group_array(group: Any, dataset: str | None, path: Path) -> Any:
    """The array ``dataset`` of a (non-OME) group, or its only array."""
    import zarr

    if dataset is not None:
        try:
            array = group[dataset]
        except KeyError:
            raise InputError(
                f"no array {dataset!r} in the zarr group; it holds: {_zarr_array_names(group)}",
                path,
            ) from None
        if not isinstance(array, zarr.Array):
            raise InputError(f"{dataset!r} is a zarr group, not an array", path)
        return array
    names = _zarr_array_names(group)
    if len(names) == 1:
        return group[names[0]]
    if not names:
        raise InputError("the zarr group holds no array", path)
    raise InputError(
        f"the zarr group holds several arrays {names}; choose one with dataset= (--dataset)",
        path,
    )


def _plain_zarr(array: Any, path: Path) -> RawVolume:
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
    return RawVolume(data=da.from_zarr(array), axes=axes, voxel=voxel)


def _ome_zarr(
    node: Any, meta: dict, multiscales: list, path: Path, dataset: str | None
) -> RawVolume:
    import dask.array as da

    ms, entry, array, names, units = _ngff_level(node, multiscales, path, dataset)
    letters = _ngff_letters(names, path)
    transforms = list(entry.get("coordinateTransformations", [])) + list(
        ms.get("coordinateTransformations", []) or []
    )
    return RawVolume(
        data=da.from_zarr(array),
        axes="".join(letters),
        voxel=_ngff_voxel_size(letters, units, transforms),
        channel_names=_omero_channel_names(meta),
    )


def _ngff_level(
    node: Any, multiscales: list, path: Path, dataset: str | None
) -> tuple[dict, dict, Any, list[str], list[Any]]:
    """The first multiscale, the chosen level's entry and array, and the axis names and units."""
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
    return ms, entry, array, names, units


def _ngff_letters(names: list[str], path: Path) -> list[str]:
    """TCZYX letters for NGFF axis names."""
    letters = []
    for name in names:
        letter = _NGFF_AXIS.get(str(name).lower())
        if letter is None:
            raise InputError(
                f"OME-Zarr axis {name!r} is not one of t, c, z, y, x; give axes= to override", path
            )
        letters.append(letter)
    return letters


def _ngff_voxel_size(letters: list[str], units: list[Any], transforms: list) -> dict[str, float]:
    """Voxel size {axis: µm} from the scale transforms and axis units (none if neither is set)."""
    scale = [1.0] * len(letters)
    for tr in transforms:
        if tr.get("type") == "scale" and len(tr.get("scale", [])) == len(scale):
            scale = [a * float(b) for a, b in zip(scale, tr["scale"], strict=True)]
    voxel: dict[str, float] = {}
    spatial = [i for i, c in enumerate(letters) if c in "ZYX"]
    has_units = any(units[i] for i in spatial)
    if has_units or any(scale[i] != 1.0 for i in spatial):
        for i in spatial:
            factor = um_per_unit(units[i] or "micrometer")
            if factor is not None:
                voxel[letters[i]] = scale[i] * factor
    return voxel


def _omero_channel_names(meta: dict) -> list[str] | None:
    omero = meta.get("omero")
    if isinstance(omero, dict) and isinstance(omero.get("channels"), list):
        labels = [c.get("label") for c in omero["channels"] if isinstance(c, dict)]
        if labels and all(labels):
            return [str(s) for s in labels]
    return None


# --------------------------------------------------------------------------- write


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
    path = Path(path)
    voxel = validate_voxel_size(voxel_size_um, path)
    data = check_tczyx_array(data_tczyx)
    shape = tuple(int(s) for s in data.shape)
    if zarr_format not in (2, 3):
        raise InputError(f"zarr_format must be 2 or 3, got {zarr_format!r}", path)
    chunk_shape = _chunk_shape(chunks, shape, path)
    dtype = np.dtype(data.dtype)

    if ome:
        attrs = _ngff_attrs(path, voxel, channel_names, shape[1], zarr_format)
    else:
        attrs = {"axes": TCZYX, "voxel_size_um": list(voxel)}

    with atomic_output(path, ".zarr") as tmp:
        array = _empty_store(tmp, shape, dtype, chunk_shape, zarr_format, ome=ome, attrs=attrs)
        for t in range(shape[0]):
            array[t] = np.asarray(data[t])
    return path


def _empty_store(
    path: Path,
    shape: tuple[int, ...],
    dtype: np.dtype,
    chunks: tuple[int, ...],
    zarr_format: int,
    *,
    ome: bool,
    attrs: dict[str, Any],
) -> Any:
    """A new zarr array at ``path`` with ``attrs``; for OME, level ``"0"`` of a group holding them."""
    import zarr

    if ome:
        group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
        array = group.create_array("0", shape=shape, dtype=dtype, chunks=chunks)
        group.attrs.update(attrs)
        return array
    array = zarr.create_array(
        store=str(path), shape=shape, dtype=dtype, chunks=chunks, zarr_format=zarr_format
    )
    array.attrs.update(attrs)
    return array


def _chunk_shape(chunks: Sequence[int] | None, shape: tuple[int, ...], path: Path) -> tuple:
    """Chunk shape (1, C, Z, Y, X): the one given (T forced to 1) or ``(1, 1, ≤64, ≤256, ≤256)``."""
    if chunks is None:
        _t, _c, z, y, x = shape
        return (1, 1, max(1, min(z, 64)), max(1, min(y, 256)), max(1, min(x, 256)))
    chunk_shape = tuple(int(c) for c in chunks)
    if len(chunk_shape) != 5 or any(c < 1 for c in chunk_shape):
        raise InputError(f"chunks must be 5 positive integers (T, C, Z, Y, X), got {chunks}", path)
    return (1, *chunk_shape[1:])


def _ngff_attrs(
    path: Path,
    voxel_size_um: tuple[float, float, float],
    channel_names: Sequence[str] | None,
    n_channels: int,
    zarr_format: int,
) -> dict[str, Any]:
    """Group attributes of a one-level OME-Zarr image: NGFF 0.4 (format 2) or 0.5 (format 3)."""
    space = {"type": "space", "unit": "micrometer"}
    multiscale = {
        "name": path.name,
        "axes": [
            {"name": "t", "type": "time"},
            {"name": "c", "type": "channel"},
            *({"name": axis, **space} for axis in "zyx"),
        ],
        "datasets": [
            {
                "path": "0",
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, 1.0, *voxel_size_um]}
                ],
            }
        ],
    }
    omero = _omero(channel_names, n_channels, path)
    if zarr_format == 2:
        attrs: dict[str, Any] = {"multiscales": [{"version": "0.4", **multiscale}]}
        if omero:
            attrs["omero"] = omero
        return attrs
    ome_meta: dict[str, Any] = {"version": "0.5", "multiscales": [multiscale]}
    if omero:
        ome_meta["omero"] = omero
    return {"ome": ome_meta}


def _omero(channel_names: Sequence[str] | None, n_channels: int, path: Path) -> dict | None:
    """OMERO channel labels, or None without names."""
    if channel_names is None:
        return None
    names = [str(n) for n in channel_names]
    if len(names) != n_channels:
        raise InputError(f"{len(names)} channel names given for {n_channels} channels", path)
    return {"channels": [{"label": n, "active": True} for n in names]}
