"""Self-describing checkpoints and the bundled models.

A checkpoint is one file holding the weights and everything needed to use
them (architecture, input channels and temporal window, normalisation, the
voxel size it was trained at, target type, default peak threshold and minimum
distance). It contains only tensors, numbers, strings, lists and dicts, so it
loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.nn.model import ModelConfig, build_model

FORMAT = "napari-kinetochores-checkpoint"
FORMAT_VERSION = 1
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL_NAME = "default"

# Bounds checked before a checkpoint's network is built (a 1.4 kB file can ask for
# terabytes). The width and depth are bounded together by the parameter count.
MAX_PARAMETERS = 50_000_000
#: Inclusive bounds of the integer ``model_config`` fields (None: no upper bound).
MODEL_BOUNDS: dict[str, tuple[int, int | None]] = {
    "f_maps": (1, None),
    "num_levels": (1, 8),
    "num_groups": (1, 1024),
    "temporal_window": (1, 15),
}
MAX_CHANNELS = 16  # entries of image_channels / detected_channels
MAX_CHANNEL_INDEX = 63
MAX_POOL = 8  # pooling kernel size along one axis
LAYER_LETTERS = "bgrlecdD"  # pytorch-3dunet's layers: norms, activations, conv, dropout
MAX_LENGTH_UM = 50.0  # spot sizes and distances in µm (a whole cell is ~ 20 µm)
MAX_TILE_SIDE = 4096
MAX_TILE_VOXELS = 2**27


@dataclass
class ModelInfo:
    """How to use a trained model (stored next to its weights)."""

    voxel_size_um: tuple[float, float, float] = (0.30, 0.13, 0.13)
    # "noise": input in noise units (nn.data.normalize_noise); "percentile": the
    # percentile normalisation of checkpoints written before it.
    normalization: str = "noise"
    noise_units: float = 10.0
    percentiles: tuple[float, float] = (1.0, 99.8)
    threshold: float = 0.5
    min_distance_um: float = 0.3
    heatmap_sigma_um: float | tuple[float, float, float] = 0.1
    distance_clip_um: float = 1.0
    tile_shape: tuple[int, int, int] = (32, 128, 128)
    training: dict = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    model,
    config: ModelConfig,
    info: ModelInfo,
    training_state: dict | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    ``training_state`` (optimizer, scheduler, epoch, …) makes it resumable.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": config.to_dict(),
        "info": {
            "voxel_size_um": list(info.voxel_size_um),
            "normalization": info.normalization,
            "noise_units": float(info.noise_units),
            "percentiles": list(info.percentiles),
            "threshold": float(info.threshold),
            "min_distance_um": float(info.min_distance_um),
            "heatmap_sigma_um": list(
                np.broadcast_to(np.asarray(info.heatmap_sigma_um, float), (3,)).tolist()
            ),
            "distance_clip_um": float(info.distance_clip_um),
            "tile_shape": list(info.tile_shape),
            "training": info.training,
        },
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if training_state is not None:
        payload["training_state"] = training_state
    from napari_kinetochores.io.atomic import atomic_output

    with atomic_output(path, ".pt") as temporary:
        torch.save(payload, temporary)
    return path


@dataclass
class LoadedModel:
    model: object
    config: ModelConfig
    info: ModelInfo
    path: Path
    training_state: dict | None


def load_checkpoint(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Everything in the file is checked before the network is built: the
    ``model_config`` fields and the size of the network they describe (at most
    :data:`MAX_PARAMETERS`), and the ``info`` fields (see :func:`check_info`).

    Raises :class:`InputError` naming the file (and the field) when it is
    missing, corrupt, not one of ours, holds objects other than tensors and
    plain data, describes a network out of bounds, has invalid info, or holds
    weights of another architecture. A bioimage.io model package (a zip) is
    rebuilt into a checkpoint by
    :func:`napari_kinetochores.nn.bioimageio.load_bioimageio_package`.
    """
    path = Path(path)
    from napari_kinetochores.nn.bioimageio import is_bioimageio_package, load_bioimageio_package

    if is_bioimageio_package(path):  # a bioimage.io model package: rebuilt in memory
        return load_bioimageio_package(path, device)
    payload = _read_payload(path, device)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError("not a napari-kinetochores checkpoint (no format tag)", path)
    if not isinstance(payload.get("model_config"), dict) or not isinstance(
        payload.get("state_dict"), dict
    ):
        raise InputError("checkpoint lacks its model config or weights", path)
    config = check_model_config(payload["model_config"], path)
    info = check_info(payload.get("info", {}), path)
    try:
        model = build_model(config)
    except (AssertionError, ValueError, RuntimeError, TypeError) as error:
        raise InputError(f"model_config cannot be built ({error})", path) from None
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise InputError(
            f"weights do not fit the architecture described in the checkpoint ({first})", path
        ) from None
    model.to(device)
    model.eval()
    return LoadedModel(model, config, info, path, payload.get("training_state"))


def _read_payload(path: Path, device: str):
    """``torch.load(weights_only=True)`` with our own messages (never torch's retry hint)."""
    import re

    import torch

    if not path.is_file():
        raise InputError("model file not found", path)
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for corrupt files
        text = str(error)
        refused = re.search(r"GLOBAL (\S+)", text)  # weights_only met a class or function
        if refused:
            raise InputError(
                "not a readable checkpoint: it contains objects that are not allowed "
                f"({refused.group(1)}); a napari-kinetochores checkpoint holds only tensors, "
                "numbers, strings, lists and dicts, and other objects are refused because "
                "loading them can run code",
                path,
            ) from None
        first = text.splitlines()[0] if text else ""
        detail = "" if not first or "weights_only" in text else f": {first}"
        raise InputError(
            f"not a readable checkpoint ({type(error).__name__}{detail}): the file is corrupt "
            "or not a napari-kinetochores checkpoint",
            path,
        ) from None


def estimated_parameters(config: ModelConfig) -> int:
    """Number of weights of the network ``config`` describes, without building it.

    Counts the 3×3×3 and 1×1×1 convolution weights of pytorch-3dunet's
    ``UNet3D`` (double convolutions, concatenating decoder) and
    ``ResidualUNet3D`` (residual blocks, transposed-convolution upsampling);
    biases and norms are left out (within 1 % of the real count from 2 to 5
    levels). Python integers, so absurd configs give huge numbers, not overflows.

    Examples
    --------
    >>> estimated_parameters(ModelConfig(f_maps=16, num_levels=3))
    249280
    """
    f_maps = [config.f_maps * 2**level for level in range(config.num_levels)]
    inputs = [config.in_channels, *f_maps[:-1]]
    count = f_maps[0] * config.out_channels
    for level, (given, out) in enumerate(zip(inputs, f_maps, strict=True)):
        if config.architecture == "UNet3D":
            middle = max(out // 2 if level else out, given)
            count += 27 * (given * middle + middle * out)
        else:
            count += given * out + 54 * out**2
    for finer, coarser in zip(f_maps[:-1], f_maps[1:], strict=False):
        if config.architecture == "UNet3D":
            count += 27 * ((coarser + finer) * finer + finer**2)
        else:
            count += 27 * coarser * finer + 54 * finer**2
    return count


def check_model_config(values: dict, path: str | Path | None = None) -> ModelConfig:
    """The :class:`ModelConfig` of a checkpoint's ``model_config``, every field bounded.

    Raises :class:`InputError` naming ``path`` and the field
    (``model_config.<name>``) for a wrong type, a value out of
    :data:`MODEL_BOUNDS`, an unknown layer, or a network of more than
    :data:`MAX_PARAMETERS` weights.

    Examples
    --------
    >>> check_model_config({"f_maps": 8, "num_levels": 2, "pool_kernels": [[1, 2, 2]]}).f_maps
    8
    >>> check_model_config({"f_maps": 65536}, "m.pt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_kinetochores.errors.InputError: m.pt: model_config.f_maps=65536 ... parameters; at most 50 M are allowed
    """
    for name, (low, high) in MODEL_BOUNDS.items():
        if name in values:
            _integer(values[name], f"model_config.{name}", low, high, path)
    for name in ("image_channels", "detected_channels"):
        if name in values:
            _channel_list(values[name], f"model_config.{name}", path)
    if "pool_kernels" in values:
        _pool_kernels(values["pool_kernels"], path)
    if "layer_order" in values:
        _layer_order(values["layer_order"], path)
    try:  # ModelConfig.validate checks the architecture, target and the fields' agreement
        config = ModelConfig.from_dict(dict(values))
    except (InputError, TypeError) as error:
        raise InputError(f"invalid model_config: {error}", path) from None
    parameters = estimated_parameters(config)
    if parameters > MAX_PARAMETERS:
        raise InputError(
            f"model_config.f_maps={config.f_maps} and model_config.num_levels="
            f"{config.num_levels} describe a network of about {parameters / 1e6:,.0f} M "
            f"parameters; at most {MAX_PARAMETERS / 1e6:,.0f} M are allowed",
            path,
        )
    return config


def check_info(values: dict, path: str | Path | None = None) -> ModelInfo:
    """The :class:`ModelInfo` of a checkpoint's ``info``, every field checked.

    Missing fields take the defaults of checkpoints written before them
    (``normalization``: ``"percentile"``). Raises :class:`InputError` naming
    ``path`` and the field (``info.<name>``): the voxel size goes through
    :func:`napari_kinetochores.io.volumes.validate_voxel_size`; lengths in µm
    are finite and in (0, :data:`MAX_LENGTH_UM`]; ``noise_units`` is in
    (0, 1e6]; ``threshold`` (a probability or a normalised distance) in (0, 1].

    Examples
    --------
    >>> check_info({"threshold": 0.4}).threshold
    0.4
    >>> check_info({"noise_units": 0}, "m.pt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_kinetochores.errors.InputError: m.pt: info.noise_units must be in (0, 1e+06], got 0
    """
    from napari_kinetochores.io.volumes import validate_voxel_size

    if not isinstance(values, dict):
        raise InputError(f"info must be a dict, got {type(values).__name__}", path)
    try:
        voxel_size_um = validate_voxel_size(values.get("voxel_size_um", (0.3, 0.13, 0.13)), path)
    except InputError as error:
        raise InputError(f"info.voxel_size_um: {error.problem}", path) from None
    normalization = values.get("normalization", "percentile")  # older checkpoints
    if normalization not in ("noise", "percentile"):
        raise InputError(
            f"info.normalization: unknown input normalisation {normalization!r} "
            "(known: 'noise', 'percentile')",
            path,
        )
    training = values.get("training", {})
    if not isinstance(training, dict):
        raise InputError(f"info.training must be a dict, got {type(training).__name__}", path)
    return ModelInfo(
        voxel_size_um=voxel_size_um,
        normalization=normalization,
        noise_units=_number(values.get("noise_units", 10.0), "info.noise_units", 1e6, path),
        percentiles=_percentiles(values.get("percentiles", (1.0, 99.8)), path),
        threshold=_number(values.get("threshold", 0.5), "info.threshold", 1.0, path),
        min_distance_um=_length(values.get("min_distance_um", 0.3), "info.min_distance_um", path),
        heatmap_sigma_um=_sigma(values.get("heatmap_sigma_um", 0.1), path),
        distance_clip_um=_length(
            values.get("distance_clip_um", 1.0), "info.distance_clip_um", path
        ),
        tile_shape=_tile_shape(values.get("tile_shape", (32, 128, 128)), path),
        training=dict(training),
    )


def _integer(value, field: str, low: int, high: int | None, path) -> int:
    """``value`` as an int in [low, high] (no upper bound when ``high`` is None)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{field} must be an integer, got {value!r}", path)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise InputError(f"{field} must be {bound}, got {value}", path)
    return int(value)


def _number(value, field: str, high: float, path) -> float:
    """``value`` as a finite float in (0, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{field} must be a number, got {value!r}", path)
    if not math.isfinite(value):
        raise InputError(f"{field} must be finite, got {value}", path)
    if not 0 < value <= high:
        raise InputError(f"{field} must be in (0, {high:g}], got {value}", path)
    return float(value)


def _length(value, field: str, path) -> float:
    return _number(value, field, MAX_LENGTH_UM, path)


def _sequence(value, field: str, lengths: tuple[int, ...], what: str, path) -> list:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise InputError(f"{field} must be {what}, got {value!r}", path)
    if len(value) not in lengths:
        raise InputError(f"{field} must be {what}, got {len(value)} values", path)
    return list(value)


def _channel_list(value, field: str, path) -> None:
    what = f"a list of 1 to {MAX_CHANNELS} integers between 0 and {MAX_CHANNEL_INDEX}"
    for channel in _sequence(value, field, tuple(range(1, MAX_CHANNELS + 1)), what, path):
        if isinstance(channel, bool) or not isinstance(channel, numbers.Integral):
            raise InputError(f"{field} must be {what}, got {value!r}", path)
        _integer(channel, field, 0, MAX_CHANNEL_INDEX, path)


def _pool_kernels(value, path) -> None:
    field = "model_config.pool_kernels"
    what = f"a list of three integers between 1 and {MAX_POOL} per level"
    levels = _sequence(value, field, tuple(range(MODEL_BOUNDS["num_levels"][1])), what, path)
    for kernel in levels:
        sizes = _sequence(kernel, field, (3,), what, path)
        if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in sizes):
            raise InputError(f"{field} must be {what}, got {value!r}", path)
        if not all(1 <= s <= MAX_POOL for s in sizes):
            raise InputError(f"{field} must be {what}, got {value!r}", path)


def _layer_order(value, path) -> None:
    field = "model_config.layer_order"
    if (
        not isinstance(value, str)
        or not set(value) <= set(LAYER_LETTERS)
        or len(set(value)) != len(value)
        or "c" not in value
    ):
        raise InputError(
            f"{field} must be letters from {LAYER_LETTERS!r}, each at most once and 'c' "
            f"(the convolution) among them, got {value!r}",
            path,
        )
    if value[0] in "rle":
        raise InputError(
            f"{field} must not have a non-linearity ('r', 'l' or 'e') first, got {value!r}", path
        )


def _percentiles(value, path) -> tuple[float, float]:
    field = "info.percentiles"
    what = "two numbers in [0, 100], lower then higher"
    pair = _sequence(value, field, (2,), what, path)
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in pair) or not (
        0 <= pair[0] < pair[1] <= 100
    ):
        raise InputError(f"{field} must be {what}, got {value!r}", path)
    return float(pair[0]), float(pair[1])


def _sigma(value, path) -> tuple[float, float, float]:
    field = "info.heatmap_sigma_um"
    if not isinstance(value, list | tuple):
        value = [value]
    sizes = _sequence(value, field, (1, 3), "1 or 3 lengths (z, y, x) in µm", path)
    lengths = [_length(v, field, path) for v in sizes]
    return tuple(np.broadcast_to(np.asarray(lengths, float), (3,)).tolist())


def _tile_shape(value, path) -> tuple[int, int, int]:
    field = "info.tile_shape"
    sizes = _sequence(value, field, (3,), "three integers (z, y, x)", path)
    shape = tuple(_integer(v, field, 1, MAX_TILE_SIDE, path) for v in sizes)
    if math.prod(shape) > MAX_TILE_VOXELS:
        raise InputError(
            f"{field} {shape} has {math.prod(shape):,} voxels; at most {MAX_TILE_VOXELS:,} "
            "are allowed",
            path,
        )
    return shape


def bundled_model_path(name: str | None = None, must_exist: bool = True) -> Path | None:
    """Path of a bundled model by name (default: ``"default"``), or a path given as is.

    With ``must_exist=False`` a missing bundled model returns None instead of
    raising.
    """
    if name is not None and (
        os.sep in name or name.endswith((".pt", ".zip")) or Path(name).exists()
    ):
        path = Path(name)
        if must_exist and not path.is_file():
            raise InputError("model file not found", path)
        return path
    path = BUNDLED_DIR / f"{name or DEFAULT_MODEL_NAME}.pt"
    if path.is_file():
        return path
    if must_exist:
        available = sorted(p.stem for p in BUNDLED_DIR.glob("*.pt"))
        raise InputError(
            f"no bundled model named {name or DEFAULT_MODEL_NAME!r}; available: {available}"
        )
    return None
