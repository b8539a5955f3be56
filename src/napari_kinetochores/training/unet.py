"""Training the UNet: ``kinetochores train CONFIG.yaml`` and :func:`train`.

Data come from the simulator on the fly (domain-randomised parameters) or from
(movie, points) files. Patches are biased towards spots and augmented.
Validation runs every epoch with the real metric (tiled prediction, peaks,
one-to-one matching F1 at 0.3 µm) over a grid of thresholds; the best-F1
checkpoint is kept together with the threshold that gave it.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.io.volumes import validate_voxel_size
from napari_kinetochores.nn.checkpoint import (
    ModelInfo,
    bundled_model_path,
    load_checkpoint,
    save_checkpoint,
)
from napari_kinetochores.nn.data import Augmenter, sample_patch, stack_input
from napari_kinetochores.nn.model import ModelConfig, build_model

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass
class DataConfig:
    """Where training samples come from.

    ``source: simulate`` draws movies with
    :func:`napari_kinetochores.simulate.sample_params` (``simulation`` holds
    fixed overrides, e.g. ``shape_zyx``); ``source: files`` reads ``files``,
    a list of ``{movie: PATH, points: PATH, voxel_size_um: [z, y, x]}``
    (``voxel_size_um`` optional).
    """

    source: str = "simulate"
    files: list[dict] = field(default_factory=list)
    simulation: dict = field(default_factory=dict)
    pool_size: int = 8
    refresh_per_epoch: int = 2
    spot_bias: float = 0.8


@dataclass
class ValidationConfig:
    """Held-out simulated movies, one per entry of ``snr_levels`` × ``repeats``."""

    snr_levels: list[str] = field(default_factory=lambda: ["low", "moderate", "high"])
    repeats: int = 1
    seed: int = 100_000
    simulation: dict = field(default_factory=dict)
    thresholds: list[float] = field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    cutoff_um: float = 0.3


@dataclass
class TrainConfig:
    """A training run, as read from YAML (see ``configs/default.yaml``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: str = "gaussian_dice"
    heatmap_sigma_um: float | list[float] = 0.1
    distance_clip_um: float = 1.0
    kernel_schedule: list[list[float]] = field(default_factory=lambda: [[0, 5, 1.0], [10, 3, 0.7]])
    kernel_continuous: bool = False
    kernel_random: bool = False
    voxel_size_um: list[float] = field(default_factory=lambda: [0.30, 0.13, 0.13])
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    patch_shape: list[int] = field(default_factory=lambda: [16, 64, 64])
    batch_size: int = 4
    epochs: int = 20
    steps_per_epoch: int = 50
    lr: float = 2e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    step_size: int = 10
    output_dir: str = "runs/default"
    device: str | None = None
    seed: int = 0
    init_from: str | None = None
    time_limit_min: float | None = None
    min_distance_um: float = 0.3
    tile_shape: list[int] = field(default_factory=lambda: [32, 128, 128])
    num_threads: int | None = None


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise InputError(f"{where} must be a mapping, got {type(values).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise InputError(f"unknown option(s) {sorted(unknown)} in {where}")
    return cls(**values)


def config_from_dict(values: dict) -> TrainConfig:
    """Build a :class:`TrainConfig` from nested dicts (as loaded from YAML)."""
    values = dict(values or {})
    model = ModelConfig.from_dict(values.pop("model", {}) or {})
    data = _build(DataConfig, values.pop("data", {}) or {}, "data")
    validation = _build(ValidationConfig, values.pop("validation", {}) or {}, "validation")
    config = _build(TrainConfig, values, "the config")
    config.model, config.data, config.validation = model, data, validation
    check_data_config(config.data)
    if config.model.target == "distance" and config.loss != "distance":
        raise InputError("a distance-map target needs loss: distance")
    return config


def check_data_config(data: DataConfig) -> None:
    """The data source is one we know and has what it needs (shared with the StarDist backend)."""
    if data.source not in ("simulate", "files"):
        raise InputError(f"data.source must be 'simulate' or 'files', got {data.source!r}")
    if data.source == "files" and not data.files:
        raise InputError("data.source is 'files' but data.files is empty")


def read_yaml_config(path: str | Path, from_dict: Callable[[dict], Any]) -> Any:
    """Read a YAML training config and build it with ``from_dict``; errors name the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", path)
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InputError(f"not valid YAML: {error}", path) from None
    try:
        return from_dict(values or {})
    except (InputError, TypeError) as error:
        raise InputError(str(error), path) from None


def load_config(path: str | Path) -> TrainConfig:
    """Read a training config from YAML; errors name the file."""
    return read_yaml_config(path, config_from_dict)


@dataclass
class Sample:
    """One movie prepared for training: per frame normalised input stacks and targets."""

    inputs: list[np.ndarray]  # per frame (C_in, Z, Y, X)
    targets: list[np.ndarray]  # per frame (C_out, Z, Y, X)
    points: list[np.ndarray]  # per frame (N, 3) spots of the first detected channel
    voxel_size_um: tuple[float, float, float]


def _targets_for(points_by_channel, shape, voxel_size_um, config: TrainConfig) -> np.ndarray:
    from napari_kinetochores.core.targets import distance_map, gaussian_heatmap

    planes = []
    for points in points_by_channel:
        if config.model.target == "distance":
            planes.append(distance_map(points, shape, voxel_size_um, config.distance_clip_um))
        else:
            planes.append(gaussian_heatmap(points, shape, voxel_size_um, config.heatmap_sigma_um))
    return np.stack(planes).astype(np.float32)


def prepare_sample(
    image_tczyx, points, voxel_size_um, config: TrainConfig, source: str = ""
) -> Sample:
    """Turn a movie (T, C, Z, Y, X) and its point table into training inputs and targets.

    Raises :class:`InputError` when there are no points for a detected channel
    or points fall outside the volume.
    """
    image = np.asarray(image_tczyx)
    n_frames, n_channels = image.shape[:2]
    shape = image.shape[2:]
    needed = set(config.model.image_channels) | set(config.model.detected_channels)
    if max(needed) >= n_channels:
        raise InputError(
            f"the model needs channels {sorted(needed)} but the movie has {n_channels}",
            source or None,
        )
    if len(points) == 0:
        raise InputError("no labelled points to train on", source or None)
    coords = points[["z", "y", "x"]].to_numpy(float)
    outside = np.any((coords < -0.5) | (coords > np.asarray(shape) - 0.5), axis=1)
    outside |= (points["t"].to_numpy() < -0.5) | (points["t"].to_numpy() > n_frames - 0.5)
    if outside.any():
        first = points[outside].iloc[0]
        raise InputError(
            f"{int(outside.sum())} labelled point(s) lie outside the volume {tuple(image.shape)} "
            f"(e.g. t={first['t']}, z={first['z']}, y={first['y']}, x={first['x']})",
            source or None,
        )
    has_channel = "channel" in points.columns

    def reader(t, c):
        return image[t, c]

    inputs, targets, spot_lists = [], [], []
    for t in range(n_frames):
        in_frame = points[np.round(points["t"]).astype(int) == t]
        per_channel = []
        for channel in config.model.detected_channels:
            rows = in_frame[in_frame["channel"] == channel] if has_channel else in_frame
            per_channel.append(rows[["z", "y", "x"]].to_numpy(float))
        inputs.append(
            stack_input(
                reader, t, n_frames, config.model.image_channels, config.model.temporal_window
            )
        )
        targets.append(_targets_for(per_channel, shape, voxel_size_um, config))
        spot_lists.append(per_channel[0])
    return Sample(inputs, targets, spot_lists, tuple(voxel_size_um))


def _simulated_sample(rng: np.random.Generator, config: TrainConfig, seed: int) -> Sample:
    from napari_kinetochores.simulate import sample_params, simulate_movie

    # A random layout can miss a small volume entirely; draw again rather than train on nothing.
    for _ in range(10):
        params = sample_params(rng, **config.data.simulation)
        movie = simulate_movie(params, seed=seed)
        if (movie.points["channel"] == config.model.detected_channels[0]).any():
            break
    return prepare_sample(
        movie.image, movie.points, params.voxel_size_um, config, source=f"simulation {seed}"
    )


def _file_samples(config: TrainConfig) -> list[Sample]:
    from napari_kinetochores.io import read_points, read_volume

    samples = []
    for entry in config.data.files:
        if "movie" not in entry or "points" not in entry:
            raise InputError(f"each data.files entry needs 'movie' and 'points', got {entry}")
        volume = read_volume(entry["movie"], voxel_size_um=entry.get("voxel_size_um"))
        points = read_points(entry["points"], voxel_size_um=volume.voxel_size_um)
        samples.append(
            prepare_sample(
                np.asarray(volume.data), points, volume.voxel_size_um, config, str(entry["points"])
            )
        )
    return samples


def validation_set(config: TrainConfig) -> list[tuple[str, object]]:
    """Held-out simulated movies (fixed seeds, never used for training): [(label, movie)]."""
    from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams, simulate_movie

    movies = []
    for index, level in enumerate(config.validation.snr_levels):
        for repeat in range(config.validation.repeats):
            params = SimulationParams(n_frames=config.model.temporal_window, snr=SNR_LEVELS[level])
            for key, value in config.validation.simulation.items():
                setattr(params, key, tuple(value) if isinstance(value, list) else value)
            seed = config.validation.seed + 100 * index + repeat
            movies.append((level, simulate_movie(params, seed=seed)))
    return movies


def validate(model, config: TrainConfig, movies, device: str) -> dict:
    """F1 at the validation cutoff for every threshold, per movie; returns the best threshold."""
    from napari_kinetochores.analysis.matching import match_points
    from napari_kinetochores.core.peaks import find_peaks
    from napari_kinetochores.nn.inference import predict_volume

    model.eval()
    thresholds = list(config.validation.thresholds)
    scores = np.zeros((len(movies), len(thresholds)))
    errors = []
    distance = config.model.target == "distance"
    for m, (_, movie) in enumerate(movies):
        image = movie.image
        t = image.shape[0] // 2
        stack = stack_input(
            lambda ti, c, image=image: image[ti, c],
            t,
            image.shape[0],
            config.model.image_channels,
            config.model.temporal_window,
        )
        prediction = predict_volume(
            model,
            stack,
            config.tile_shape,
            device=device,
            empty_value=1.0 if distance else 0.0,
            divisor=config.model.divisor,
            signal_channel=config.model.temporal_window // 2,
        )[0]
        gt = movie.points
        gt = gt[(np.round(gt["t"]) == t) & (gt["channel"] == config.model.detected_channels[0])]
        gt_zyx = gt[["z", "y", "x"]].to_numpy()
        voxel = movie.params.voxel_size_um
        # One peak search at the most permissive threshold, then filter per threshold.
        coords, values = find_peaks(
            prediction,
            voxel,
            config.min_distance_um,
            threshold_abs=max(thresholds) if distance else min(thresholds),
            mode="min" if distance else "max",
            refine="quadratic" if distance else "gaussian",
        )
        for k, threshold in enumerate(thresholds):
            keep = values < threshold if distance else values > threshold
            result = match_points(coords[keep], gt_zyx, voxel, config.validation.cutoff_um)
            scores[m, k] = result.f1
            if k == len(thresholds) // 2:
                errors.extend((result.distances_um * 1000).tolist())
    mean = scores.mean(axis=0)
    best = int(np.argmax(mean))
    per_level = {}
    for m, (label, _) in enumerate(movies):
        per_level.setdefault(label, []).append(scores[m, best])
    return {
        "f1": float(mean[best]),
        "threshold": float(thresholds[best]),
        "f1_by_threshold": {f"{t:g}": float(v) for t, v in zip(thresholds, mean, strict=True)},
        "f1_by_level": {k: float(np.mean(v)) for k, v in per_level.items()},
        "median_error_nm": float(np.median(errors)) if errors else float("nan"),
    }


@dataclass
class TrainResult:
    best_checkpoint: Path
    last_checkpoint: Path
    best_f1: float
    threshold: float
    log_path: Path
    epochs_run: int
    history: list[dict]


def train(
    config: TrainConfig,
    resume: str | Path | None = None,
    progress: bool = True,
    cancelled: Callable[[], bool] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    samples: Sequence[tuple[np.ndarray, pd.DataFrame, Sequence[float]]] | None = None,
) -> TrainResult:
    """Train (or fine-tune, or resume) a UNet; see :class:`TrainConfig`.

    Writes ``last.pt`` (resumable) and ``best.pt`` (best validation F1) and
    ``log.csv`` into ``config.output_dir``. ``cancelled()`` is polled every
    step; on cancel the last checkpoint is saved and the run returns.

    ``samples`` gives in-memory training data instead of ``config.data``: a
    list of ``(image (T, C, Z, Y, X), points table, voxel size (z, y, x) µm)``,
    e.g. the layers of a napari viewer. ``config.data.source`` is then
    recorded as ``"memory"``.
    """
    import torch
    from tqdm.auto import tqdm

    from napari_kinetochores.nn.inference import choose_device
    from napari_kinetochores.nn.losses import KernelSchedule, build_loss, uses_logits

    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    device = choose_device(config.device)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)

    training_state = None
    if resume is not None:
        loaded = load_checkpoint(resume, device=device)
        if loaded.training_state is None:
            raise InputError("checkpoint has no training state to resume from", resume)
        config.model = loaded.config
        model = loaded.model
        training_state = loaded.training_state
    elif config.init_from:
        loaded = load_checkpoint(bundled_model_path(config.init_from), device=device)
        config.model = loaded.config
        model = loaded.model
    else:
        model = build_model(config.model)
    model.to(device)

    anisotropy = config.voxel_size_um[2] / config.voxel_size_um[0]
    schedule = KernelSchedule(
        config.kernel_schedule, config.kernel_continuous, config.kernel_random, anisotropy
    )
    loss_fn = build_loss(config.loss, schedule)
    logits = uses_logits(config.loss)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    if config.scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(config.epochs, 1)
        )
    elif config.scheduler == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=config.step_size, gamma=0.3
        )
    else:
        raise InputError(f"scheduler must be 'cosine' or 'step', got {config.scheduler!r}")
    use_amp = device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, best_f1, best_threshold, history = 0, -1.0, 0.5, []
    if training_state is not None:
        optimizer.load_state_dict(training_state["optimizer"])
        scheduler.load_state_dict(training_state["scheduler"])
        start_epoch = int(training_state["epoch"]) + 1
        best_f1 = float(training_state["best_f1"])
        best_threshold = float(training_state["best_threshold"])
        history = list(training_state.get("history", []))

    if samples is not None:
        if not samples:
            raise InputError("no training samples given")
        config.data.source = "memory"
        pool = [
            prepare_sample(
                np.asarray(image), points, validate_voxel_size(voxel), config, f"sample {i}"
            )
            for i, (image, points, voxel) in enumerate(samples)
        ]
    elif config.data.source == "files":
        pool = _file_samples(config)
    else:
        pool = [
            _simulated_sample(rng, config, config.seed * 10_000 + i)
            for i in range(config.data.pool_size)
        ]
    movies = validation_set(config)
    augment = Augmenter()
    target_fill = 1.0 if config.model.target == "distance" else 0.0
    log_path = output / "log.csv"
    info_base = dict(
        voxel_size_um=tuple(config.voxel_size_um),
        min_distance_um=config.min_distance_um,
        heatmap_sigma_um=config.heatmap_sigma_um,
        distance_clip_um=config.distance_clip_um,
        tile_shape=tuple(config.tile_shape),
    )
    started = time.monotonic()
    seed_counter = config.seed * 10_000 + config.data.pool_size + start_epoch * 1000
    epoch = start_epoch - 1
    stop = False
    for epoch in range(start_epoch, config.epochs):
        model.train()
        if hasattr(loss_fn, "set_epoch"):
            loss_fn.set_epoch(epoch)
        losses = []
        bar = tqdm(
            range(config.steps_per_epoch),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not progress,
            leave=False,
        )
        for _ in bar:
            if cancelled is not None and cancelled():
                stop = True
                break
            images, targets = [], []
            for _ in range(config.batch_size):
                sample = pool[rng.integers(len(pool))]
                t = int(rng.integers(len(sample.inputs)))
                image, target = sample_patch(
                    rng,
                    sample.inputs[t],
                    sample.targets[t],
                    sample.points[t],
                    config.patch_shape,
                    config.data.spot_bias,
                    target_fill,
                )
                image, target = augment(rng, image, target)
                images.append(image)
                targets.append(target)
            x = torch.from_numpy(np.stack(images)).to(device)
            y = torch.from_numpy(np.stack(targets)).to(device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
                probabilities, raw = model(x, return_logits=True)
                loss = loss_fn(raw.float() if logits else probabilities.float(), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        scheduler.step()
        metrics = validate(model, config, movies, device)
        elapsed = time.monotonic() - started
        row = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "val_f1": metrics["f1"],
            "threshold": metrics["threshold"],
            "median_error_nm": metrics["median_error_nm"],
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(elapsed, 1),
            **{f"f1_{k}": v for k, v in metrics["f1_by_level"].items()},
        }
        history.append(row)
        _append_log(log_path, row)
        if progress:
            print(
                f"epoch {epoch + 1}: loss {row['loss']:.4f}  val F1 {metrics['f1']:.4f} at threshold "
                f"{metrics['threshold']:g}  median error {metrics['median_error_nm']:.0f} nm  ({elapsed:.0f} s)"
            )
        if on_epoch is not None:
            on_epoch(row)
        training_info = {"config": _plain(config), "history": history, "device": device}
        if metrics["f1"] > best_f1:
            best_f1, best_threshold = metrics["f1"], metrics["threshold"]
            save_checkpoint(
                output / "best.pt",
                model,
                config.model,
                ModelInfo(
                    threshold=best_threshold,
                    training={**training_info, "validation": metrics},
                    **info_base,
                ),
            )
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "best_f1": best_f1,
            "best_threshold": best_threshold,
            "history": history,
        }
        save_checkpoint(
            output / "last.pt",
            model,
            config.model,
            ModelInfo(threshold=best_threshold, training=training_info, **info_base),
            training_state=state,
        )
        if stop or (config.time_limit_min and elapsed > 60 * config.time_limit_min):
            break
        if config.data.source == "simulate" and config.data.refresh_per_epoch:
            for _ in range(config.data.refresh_per_epoch):
                pool[int(rng.integers(len(pool)))] = _simulated_sample(rng, config, seed_counter)
                seed_counter += 1
    if not (output / "best.pt").exists():
        raise InputError(
            "training stopped before the first epoch finished; nothing to save", output
        )
    return TrainResult(
        output / "best.pt",
        output / "last.pt",
        best_f1,
        best_threshold,
        log_path,
        epoch + 1,
        history,
    )


def _append_log(path: Path, row: dict) -> None:
    exists = path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if not exists:
            writer.writeheader()
        writer.writerow(row)


def _plain(config: TrainConfig) -> dict:
    """The config as plain types (safe for ``torch.load(weights_only=True)``)."""
    from dataclasses import asdict

    def clean(value):
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, float) and math.isnan(value):
            return None
        return value

    return clean(asdict(config))
