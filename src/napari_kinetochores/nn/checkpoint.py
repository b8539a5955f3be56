"""Self-describing checkpoints and the bundled models.

A checkpoint is one file holding the weights and everything needed to use
them (architecture, input channels and temporal window, normalisation, the
voxel size it was trained at, target type, default peak threshold and minimum
distance). It contains only tensors, numbers, strings, lists and dicts, so it
loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

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
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, temporary)
    os.replace(temporary, path)
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

    Raises :class:`InputError` naming the file when it is missing, corrupt,
    not one of ours, lacks its config, or holds weights of another
    architecture.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError("model file not found", path)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for corrupt files
        raise InputError(
            f"not a readable checkpoint ({type(error).__name__}: {error})", path
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError("not a napari-kinetochores checkpoint (no format tag)", path)
    if "model_config" not in payload or "state_dict" not in payload:
        raise InputError("checkpoint lacks its model config or weights", path)
    try:
        config = ModelConfig.from_dict(dict(payload["model_config"]))
    except (InputError, TypeError) as error:
        raise InputError(f"invalid model config in checkpoint: {error}", path) from None
    raw_info = dict(payload.get("info", {}))
    info = ModelInfo(
        voxel_size_um=tuple(raw_info.get("voxel_size_um", (0.3, 0.13, 0.13))),
        normalization=str(raw_info.get("normalization", "percentile")),  # older checkpoints
        noise_units=float(raw_info.get("noise_units", 10.0)),
        percentiles=tuple(raw_info.get("percentiles", (1.0, 99.8))),
        threshold=float(raw_info.get("threshold", 0.5)),
        min_distance_um=float(raw_info.get("min_distance_um", 0.3)),
        heatmap_sigma_um=tuple(
            np.broadcast_to(np.asarray(raw_info.get("heatmap_sigma_um", 0.1), float), (3,)).tolist()
        ),
        distance_clip_um=float(raw_info.get("distance_clip_um", 1.0)),
        tile_shape=tuple(raw_info.get("tile_shape", (32, 128, 128))),
        training=dict(raw_info.get("training", {})),
    )
    if info.normalization not in ("noise", "percentile"):
        raise InputError(f"unknown input normalisation {info.normalization!r} in checkpoint", path)
    model = build_model(config)
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


def bundled_model_path(name: str | None = None, must_exist: bool = True) -> Path | None:
    """Path of a bundled model by name (default: ``"default"``), or a path given as is.

    With ``must_exist=False`` a missing bundled model returns None instead of
    raising.
    """
    if name is not None and (os.sep in name or name.endswith(".pt") or Path(name).exists()):
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
