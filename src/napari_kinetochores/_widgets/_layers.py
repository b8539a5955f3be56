"""Conversions between napari layers and the library's objects (no Qt here).

The library speaks TCZYX volumes with a voxel size and point tables in voxels
(:mod:`napari_kinetochores.io`). napari layers hold (T)ZYX arrays with a
``scale`` of (1, z, y, x) µm. These helpers convert one into the other and
raise :class:`~napari_kinetochores.errors.InputError` (shown to the user as a
notification) for anything that does not fit: a 2D image, a wrong layer type,
mismatched scales.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_kinetochores._napari.io import names_reference, table_to_layer_data
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import POINT_COLUMNS, UM_COLUMNS, points_frame, volume_from_array

#: Key of the plugin's entry in a layer's ``metadata``.
META_KEY = "napari_kinetochores"
#: Relative tolerance when comparing layer scales.
SCALE_RTOL = 1e-4


def layer_kind(layer: Any) -> str:
    """The kind of a layer in lower case ("points", "image", …; "nothing" for None)."""
    # __class__ (not type()) sees through napari's PublicOnlyProxy around plugin layers
    return layer.__class__.__name__.lower() if layer is not None else "nothing"


def require_layer(layer: Any, kind: str, role: str) -> Any:
    """Check that ``layer`` is a napari layer of ``kind`` ("image" or "points").

    Raises
    ------
    InputError
        No layer, or a layer of another type, with a message naming ``role``.
    """
    if layer is None:
        raise InputError(f"choose a {kind} layer for {role}")
    if layer_kind(layer) != kind:
        raise InputError(
            f"{role}: layer {layer.name!r} is a {layer_kind(layer)} layer; a {kind} layer is needed"
        )
    return layer


def image_voxel_size(layer: Any) -> tuple[float, float, float]:
    """Voxel size (z, y, x) in µm of an image layer: the last three entries of its scale.

    Raises
    ------
    InputError
        Not an image layer, an image with fewer than 3 dimensions, RGB data,
        or a non-positive scale.
    """
    require_layer(layer, "image", "the image")
    if getattr(layer, "rgb", False):
        raise InputError(f"image {layer.name!r} is an RGB image; a 3D fluorescence stack is needed")
    if layer.ndim < 3:
        raise InputError(
            f"image {layer.name!r} is {layer.ndim}D (shape {tuple(layer.data.shape)}); "
            "a 3D (Z, Y, X) or 3D+t (T, Z, Y, X) stack is needed"
        )
    if layer.ndim > 4:
        raise InputError(
            f"image {layer.name!r} has {layer.ndim} dimensions (shape {tuple(layer.data.shape)}); "
            "open one layer per channel, each (T, Z, Y, X)"
        )
    scale = tuple(float(s) for s in layer.scale[-3:])
    if not all(np.isfinite(s) and s > 0 for s in scale):
        raise InputError(f"image {layer.name!r} has an invalid scale {scale}")
    return scale  # type: ignore[return-value]


def n_frames(layer: Any) -> int:
    """Number of time points of an image or points layer (1 for 3D data)."""
    if layer_kind(layer) == "image":
        return int(layer.data.shape[0]) if layer.ndim == 4 else 1
    if len(layer.data) == 0 or layer.ndim < 4:
        return 1
    return int(np.max(np.round(layer.data[:, 0]))) + 1


def check_same_scale(a: Any, b: Any) -> None:
    """Raise if two layers' spatial scales or translations differ (points would be misplaced)."""
    sa, sb = np.asarray(a.scale[-3:], float), np.asarray(b.scale[-3:], float)
    ta, tb = np.asarray(a.translate[-3:], float), np.asarray(b.translate[-3:], float)
    if not np.allclose(sa, sb, rtol=SCALE_RTOL, atol=0):
        raise InputError(
            f"layers {a.name!r} and {b.name!r} have different scales (z, y, x): "
            f"{tuple(round(float(v), 6) for v in sa)} and {tuple(round(float(v), 6) for v in sb)}. "
            "Give both the image's voxel size as scale (Layer > Transform, or the Load movie widget)"
        )
    if not np.allclose(ta, tb, atol=1e-6 * float(np.max(sa))):
        raise InputError(
            f"layers {a.name!r} and {b.name!r} have different translations: "
            f"{tuple(ta)} and {tuple(tb)}"
        )


def layers_to_volume(image: Any, second: Any = None, voxel_size_um: Any = None):
    """A :class:`~napari_kinetochores.io.Volume` holding image layers as channels.

    Parameters
    ----------
    image
        The kinetochore (EGFP) image layer, (Z, Y, X) or (T, Z, Y, X); channel 0.
    second
        Optional second marker (mCherry) layer of the same shape; channel 1.
    voxel_size_um
        Voxel size (z, y, x) µm; default: the image layer's scale.

    Returns
    -------
    Volume
        Data (T, C, Z, Y, X) as a lazy dask stack of the layers' arrays (no copy).
    """
    import dask.array as da

    voxel = image_voxel_size(image) if voxel_size_um is None else tuple(voxel_size_um)
    layers = [image]
    if second is not None:
        image_voxel_size(second)
        if tuple(second.data.shape) != tuple(image.data.shape):
            raise InputError(
                f"image {second.name!r} has shape {tuple(second.data.shape)} but "
                f"{image.name!r} has {tuple(image.data.shape)}; the channels must match"
            )
        check_same_scale(image, second)
        layers.append(second)
    arrays = []
    for layer in layers:
        data = layer.data
        if not hasattr(data, "chunks"):
            data = da.from_array(data, chunks=(1,) * (data.ndim - 3) + tuple(data.shape[-3:]))
        arrays.append(data if layer.ndim == 4 else data[None])
    stacked = da.stack(arrays, axis=1)
    return volume_from_array(stacked, voxel, [layer.name for layer in layers], source_path(image))


def source_path(layer: Any) -> Path | None:
    """The file a layer came from (plugin metadata, else napari's ``source.path``)."""
    meta = (layer.metadata or {}).get(META_KEY, {}) if layer is not None else {}
    path = meta.get("path") if isinstance(meta, dict) else None
    if path is None and layer is not None:
        path = getattr(getattr(layer, "source", None), "path", None)
    return Path(path) if path else None


def points_to_table(layer: Any, voxel_size_um: Any = None) -> pd.DataFrame:
    """The points of a Points layer as a table in the package schema.

    Coordinates are the layer's data coordinates (voxels when the layer has
    the image's scale); the features become columns.

    Parameters
    ----------
    layer
        A napari Points layer with 3 (z, y, x) or 4 (t, z, y, x) dimensions.
    voxel_size_um
        For the ``*_um`` columns; default: the layer's scale.
    """
    require_layer(layer, "points", "the points")
    if layer.ndim not in (3, 4):
        raise InputError(
            f"points layer {layer.name!r} has {layer.ndim} dimensions; "
            "(Z, Y, X) or (T, Z, Y, X) points are needed"
        )
    voxel = tuple(float(s) for s in layer.scale[-3:]) if voxel_size_um is None else voxel_size_um
    coords = np.asarray(layer.data, dtype=float).reshape(-1, layer.ndim)
    features = layer.features
    skip = set(POINT_COLUMNS) | set(UM_COLUMNS)
    extra = {c: features[c].to_numpy() for c in features.columns if c not in skip}
    return points_frame(coords, voxel, **extra)


def set_points(layer: Any, table: pd.DataFrame) -> None:
    """Replace all points and features of a Points layer by a table."""
    data, features = table_to_layer_data(table)
    if layer.ndim == 3:
        data = data[:, 1:]
    layer.data = data
    layer.features = features
    layer.refresh()


# --------------------------------------------------------------------------- default choices


def layer_role(layer: Any) -> str:
    """What a points layer holds: "detections", "reference", "matches" or "" (unknown).

    From the plugin's metadata (the reader, Detect and Evaluate set it), else
    from the name (``ground truth``, ``*_gt``, ``reference``… are references;
    ``detections…`` are detections).
    """
    meta = (layer.metadata or {}).get(META_KEY, {})
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if kind in ("detections", "reference", "matches"):
        return kind
    if names_reference(layer.name):
        return "reference"
    return "detections" if layer.name.lower().startswith("detections") else ""


def default_layer(layers: Any, kind: str, role: str, exclude: Any = None) -> Any:
    """The layer a new widget should pick for ``role`` (None when nothing fits).

    Parameters
    ----------
    layers
        The viewer's layers, oldest first.
    kind
        "points" or "image".
    role
        "prediction": the newest detections layer (else the newest points
        layer that is no reference); "reference": the newest reference layer
        (else the newest other points layer that is not ``exclude``);
        "image": the first image layer (the kinetochore channel opens first).
    exclude
        A layer the choice must not be (the other side of a comparison).

    Examples
    --------
    >>> class Points:
    ...     def __init__(self, name): self.name, self.metadata = name, {}
    >>> layers = [Points("ground truth"), Points("detections"), Points("clicks")]
    >>> default_layer(layers, "points", "prediction").name
    'detections'
    >>> default_layer(layers, "points", "reference").name
    'ground truth'
    """
    candidates = [
        layer
        for layer in reversed(list(layers))
        if layer_kind(layer) == kind and layer is not exclude
    ]
    if role == "image":
        return candidates[-1] if candidates else None
    roles = {id(layer): layer_role(layer) for layer in candidates}
    if role == "prediction":
        order = ("detections", "")
    elif role == "reference":
        order = ("reference", "")
    else:
        raise ValueError(f"unknown role {role!r}")
    for wanted in order:
        for layer in candidates:
            if roles[id(layer)] == wanted:
                return layer
    return None
