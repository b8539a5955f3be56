"""Training the UNet: ``kinetochores train CONFIG.yaml`` and :func:`train`.

Data come from the simulator on the fly (domain-randomised parameters), from
(movie, points) files or from in-memory samples (napari layers). Patches are
biased towards spots and augmented. Validation runs every epoch with the real
metric (tiled prediction, peaks, one-to-one matching F1 at 0.3 µm) over a grid
of thresholds, on held-out frames of the user's labels when there are any,
else on held-out simulated movies (:mod:`napari_kinetochores.training.validation`);
the best-F1 checkpoint is kept together with the threshold that gave it.
The epoch loop is :class:`napari_kinetochores.training.loop.Trainer`;
:class:`UNetTraining` is the UNet's part of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.nn.checkpoint import (
    ModelInfo,
    bundled_model_path,
    load_checkpoint,
    save_checkpoint,
)
from napari_kinetochores.nn.data import Augmenter, sample_patch, stack_input
from napari_kinetochores.nn.model import ModelConfig, build_model
from napari_kinetochores.training.config import (  # noqa: F401  (also this module's API)
    DEFAULT_THRESHOLDS,
    DataConfig,
    ValidationConfig,
    build_section,
    check_data_config,
    check_validation_config,
    read_yaml_config,
)
from napari_kinetochores.training.loop import Trainer, TrainingState, plain_types
from napari_kinetochores.training.samples import (
    SamplePool,
    flatten,
    simulated_movie,
    user_movies,
)
from napari_kinetochores.training.validation import (
    ValidationFrame,
    ValidationPlan,
    plan_validation,
    simulated_validation_movies,
    summarise_scores,
)

if TYPE_CHECKING:
    import pandas as pd

    from napari_kinetochores.training.samples import LabelledMovie


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


def config_from_dict(values: dict) -> TrainConfig:
    """Build a :class:`TrainConfig` from nested dicts (as loaded from YAML)."""
    values = dict(values or {})
    model = ModelConfig.from_dict(values.pop("model", {}) or {})
    data = build_section(DataConfig, values.pop("data", {}) or {}, "data")
    validation = build_section(ValidationConfig, values.pop("validation", {}) or {}, "validation")
    config = build_section(TrainConfig, values, "the config")
    config.model, config.data, config.validation = model, data, validation
    check_data_config(config.data)
    check_validation_config(config.validation)
    if config.model.target == "distance" and config.loss != "distance":
        raise InputError("a distance-map target needs loss: distance")
    return config


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
    image_tczyx,
    points,
    voxel_size_um,
    config: TrainConfig,
    source: str = "",
    frames: Sequence[int] | None = None,
) -> Sample:
    """Turn a movie (T, C, Z, Y, X) and its point table into training inputs and targets.

    ``frames`` (default: all) are the frames prepared, in that order; a
    temporal model still reads their neighbours. Raises :class:`InputError`
    when there are no points for a detected channel or points fall outside
    the volume.
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
    for t in range(n_frames) if frames is None else frames:
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


def _without_frames(sample: Sample, frames: Sequence[int]) -> Sample:
    """``sample`` less the frames held out for validation."""
    keep = [t for t in range(len(sample.inputs)) if t not in set(frames)]
    return Sample(
        [sample.inputs[t] for t in keep],
        [sample.targets[t] for t in keep],
        [sample.points[t] for t in keep],
        sample.voxel_size_um,
    )


def training_pool(
    config: TrainConfig,
    rng: np.random.Generator,
    movies: list[LabelledMovie] | None,
    plan: ValidationPlan,
    start_epoch: int = 0,
) -> SamplePool[Sample]:
    """The training samples: the user's movies less held-out frames, or simulated movies."""

    def simulate(seed: int) -> list[Sample]:
        movie = simulated_movie(
            rng,
            config.data.simulation,
            seed,
            config.model.detected_channels[0],
            config.data.randomisation,
        )
        return [
            prepare_sample(movie.image, movie.points, movie.voxel_size_um, config, movie.source)
        ]

    seed = config.seed * 10_000
    if movies is None:
        samples = flatten(simulate(seed + i) for i in range(config.data.pool_size))
    else:
        samples = []
        for m, movie in enumerate(movies):
            sample = prepare_sample(
                movie.image, movie.points, movie.voxel_size_um, config, movie.source
            )
            sample = _without_frames(sample, [t for k, t in plan.held_out if k == m])
            if sample.inputs:
                samples.append(sample)
    refresh = config.data.source == "simulate" and config.data.refresh_per_epoch
    next_seed = seed + config.data.pool_size + start_epoch * 1000
    return SamplePool(samples, simulate if refresh else None, refresh, next_seed, rng)


def validation_set(config: TrainConfig) -> list[tuple[str, object]]:
    """Held-out simulated movies (fixed seeds, never used for training): [(label, movie)]."""
    return simulated_validation_movies(config.validation, config.model.temporal_window)


def _frame_peaks(model, config: TrainConfig, frame: ValidationFrame, device: str):
    """Peaks of the prediction of one validation frame at the most permissive threshold."""
    from napari_kinetochores.core.peaks import find_peaks
    from napari_kinetochores.nn.inference import predict_volume

    image, distance = frame.image, config.model.target == "distance"
    thresholds = config.validation.thresholds
    stack = stack_input(
        lambda ti, c: image[ti, c],
        frame.t,
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
    return find_peaks(
        prediction,
        frame.voxel_size_um,
        config.min_distance_um,
        threshold_abs=max(thresholds) if distance else min(thresholds),
        mode="min" if distance else "max",
        refine="quadratic" if distance else "gaussian",
    )


def validate(model, config: TrainConfig, frames: Sequence[ValidationFrame], device: str) -> dict:
    """F1 at the validation cutoff for every threshold, per frame; returns the best threshold.

    ``median_error_nm`` is that of the middle threshold of the grid (see
    :func:`~napari_kinetochores.training.validation.summarise_scores`).
    """
    from napari_kinetochores.analysis.matching import match_points

    model.eval()
    thresholds = list(config.validation.thresholds)
    scores = np.zeros((len(frames), len(thresholds)))
    errors: list[list[float]] = [[] for _ in thresholds]
    distance = config.model.target == "distance"
    for m, frame in enumerate(frames):
        # One peak search at the most permissive threshold, then filter per threshold.
        coords, values = _frame_peaks(model, config, frame, device)
        for k, threshold in enumerate(thresholds):
            keep = values < threshold if distance else values > threshold
            result = match_points(
                coords[keep], frame.points_zyx, frame.voxel_size_um, config.validation.cutoff_um
            )
            scores[m, k] = result.f1
            errors[k].extend((result.distances_um * 1000).tolist())
    labels = [frame.label for frame in frames]
    return summarise_scores(scores, thresholds, labels, errors, len(thresholds) // 2)


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    ``validated_on`` says in words what ``best_f1`` was measured on (held-out
    frames of the user's labels, or simulated movies).
    """

    best_checkpoint: Path
    last_checkpoint: Path
    best_f1: float
    threshold: float
    log_path: Path
    epochs_run: int
    history: list[dict]
    validated_on: str = ""


def _start_model(config: TrainConfig, resume, device: str):
    """The network to train (new, bundled/fine-tuned, or resumed) and a resumed run's state."""
    if resume is not None:
        loaded = load_checkpoint(resume, device=device)
        if loaded.training_state is None:
            raise InputError("checkpoint has no training state to resume from", resume)
        config.model = loaded.config
        return loaded.model.to(device), loaded.training_state
    if config.init_from:
        loaded = load_checkpoint(bundled_model_path(config.init_from), device=device)
        config.model = loaded.config
        return loaded.model.to(device), None
    return build_model(config.model).to(device), None


def _optimizer(config: TrainConfig, model):
    import torch

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
    return optimizer, scheduler


def _loss(config: TrainConfig):
    from napari_kinetochores.nn.losses import KernelSchedule, build_loss, uses_logits

    anisotropy = config.voxel_size_um[2] / config.voxel_size_um[0]
    schedule = KernelSchedule(
        config.kernel_schedule, config.kernel_continuous, config.kernel_random, anisotropy
    )
    return build_loss(config.loss, schedule), uses_logits(config.loss)


class UNetTraining:
    """The UNet's part of a training run (a :class:`~napari_kinetochores.training.loop.TrainingBackend`).

    Holds the network, its optimiser and loss, the sample pool and the
    validation frames; trains one epoch of patches, validates with the
    matching F1 and writes ``best.pt`` and the resumable ``last.pt``.
    """

    threshold_name = "threshold"

    def __init__(
        self,
        config: TrainConfig,
        model,
        device: str,
        rng: np.random.Generator,
        saved_state: dict | None = None,
        samples: Sequence | None = None,
        plan: ValidationPlan | None = None,
        pool: SamplePool[Sample] | None = None,
    ) -> None:
        """``plan`` and ``pool`` replace the validation frames and training samples drawn from
        ``config.data`` / ``samples`` (fine-tuning builds its own: :mod:`.finetune`)."""
        import torch

        self.config, self.model, self.device, self.rng = config, model, device, rng
        self.output = Path(config.output_dir)
        self.loss_fn, self.logits = _loss(config)
        self.optimizer, self.scheduler = _optimizer(config, model)
        self.use_amp = device == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.state = self._resumed(saved_state)
        if plan is None or pool is None:
            movies = user_movies(config.data, samples)
            channel = config.model.detected_channels[0]
            if plan is None:
                plan = plan_validation(
                    config.validation, movies, channel, config.model.temporal_window
                )
            if pool is None:
                pool = training_pool(config, rng, movies, plan, self.state.start_epoch)
        self.plan, self.pool = plan, pool
        self.augment = Augmenter()
        self.target_fill = 1.0 if config.model.target == "distance" else 0.0

    def _resumed(self, saved: dict | None) -> TrainingState:
        if saved is None:
            return TrainingState()
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        return TrainingState(
            int(saved["epoch"]) + 1,
            float(saved["best_f1"]),
            float(saved["best_threshold"]),
            list(saved.get("history", [])),
        )

    def train_epoch(self, epoch: int, trainer: Trainer) -> dict:
        """``steps_per_epoch`` optimiser steps (fewer on cancel); the mean loss and the learning rate."""
        from tqdm.auto import tqdm

        self.model.train()
        if hasattr(self.loss_fn, "set_epoch"):
            self.loss_fn.set_epoch(epoch)
        losses: list[float] = []
        bar = tqdm(
            range(self.config.steps_per_epoch),
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            disable=not trainer.progress,
            leave=False,
        )
        for _ in bar:
            if trainer.is_cancelled():
                break
            losses.append(self.step(*self.batch()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        self.scheduler.step()
        return {
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "lr": self.optimizer.param_groups[0]["lr"],
        }

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        """``batch_size`` augmented patches of random frames of the pool: images, targets."""
        config, rng, pool = self.config, self.rng, self.pool.items
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
                self.target_fill,
            )
            image, target = self.augment(rng, image, target)
            images.append(image)
            targets.append(target)
        return np.stack(images), np.stack(targets)

    def step(self, images: np.ndarray, targets: np.ndarray) -> float:
        """One optimiser step on a batch; its loss."""
        import torch

        x = torch.from_numpy(images).to(self.device)
        y = torch.from_numpy(targets).to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.use_amp):
            probabilities, raw = self.model(x, return_logits=True)
            loss = self.loss_fn(raw.float() if self.logits else probabilities.float(), y)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def validate(self) -> dict:
        """:func:`validate` on the plan's frames."""
        return validate(self.model, self.config, self.plan.frames, self.device)

    def refresh_pool(self) -> None:
        """Fresh simulated movies for ``data.refresh_per_epoch`` pool entries."""
        self.pool.refresh()

    def model_info(self, trainer: Trainer, **training: object) -> ModelInfo:
        """The checkpoint's description of this model, with ``training`` added to its record."""
        config = self.config
        record = {
            "config": plain_types(config),
            "history": trainer.history,
            "device": self.device,
            "validated_on": self.plan.description,
            **training,
        }
        return ModelInfo(
            voxel_size_um=tuple(config.voxel_size_um),
            threshold=trainer.best_threshold,
            min_distance_um=config.min_distance_um,
            heatmap_sigma_um=config.heatmap_sigma_um,
            distance_clip_um=config.distance_clip_um,
            tile_shape=tuple(config.tile_shape),
            training=record,
        )

    def save(self, trainer: Trainer, epoch: int, metrics: dict, improved: bool) -> None:
        """``best.pt`` when the F1 improved; ``last.pt`` (resumable) always."""
        config = self.config
        if improved:
            info = self.model_info(trainer, validation=metrics)
            save_checkpoint(self.output / "best.pt", self.model, config.model, info)
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": epoch,
            "best_f1": trainer.best_f1,
            "best_threshold": trainer.best_threshold,
            "history": trainer.history,
        }
        info = self.model_info(trainer)
        save_checkpoint(self.output / "last.pt", self.model, config.model, info, state)


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
    step; on cancel the epoch is validated, the checkpoints saved and the run
    returns.

    ``samples`` gives in-memory training data instead of ``config.data``: a
    list of ``(image (T, C, Z, Y, X), points table, voxel size (z, y, x) µm)``,
    e.g. the layers of a napari viewer. ``config.data.source`` is then
    recorded as ``"memory"``. With user labels (``samples`` or
    ``data.source: files``) every ``validation.held_out_every``-th labelled
    frame is held out and validated on (see
    :class:`~napari_kinetochores.training.config.ValidationConfig`);
    ``TrainResult.validated_on`` says what the F1 was measured on.
    """
    import torch

    from napari_kinetochores.nn.inference import choose_device

    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    device = choose_device(config.device)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model, saved_state = _start_model(config, resume, device)
    run = UNetTraining(config, model, device, rng, saved_state, samples)
    if progress:
        print(f"validating on {run.plan.description}", flush=True)
    trainer = Trainer(
        run,
        config.epochs,
        output,
        config.time_limit_min,
        progress,
        cancelled,
        on_epoch,
        run.state,
        run.plan.kind,
    )
    trainer.run()
    if not (output / "best.pt").exists():
        raise InputError(
            "training stopped before the first epoch finished; nothing to save", output
        )
    return TrainResult(
        output / "best.pt",
        output / "last.pt",
        trainer.best_f1,
        trainer.best_threshold,
        trainer.log_path,
        trainer.epochs_run,
        trainer.history,
        run.plan.description,
    )
