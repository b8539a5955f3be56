"""Training a StarDist 3D model (``kinetochores train --backend stardist CONFIG.yaml``).

The detector that uses the trained model folder is
:class:`napari_kinetochores.backends.stardist.StarDistDetector`; this module
trains it, through the same loop as the UNet
(:class:`napari_kinetochores.training.loop.Trainer`, driven by a Keras
callback since StarDist's ``fit`` owns the epochs).

- Data: the same pipeline as the UNet: domain-randomised simulator movies
  (:func:`napari_kinetochores.simulate.sample_params`), (movie, points) files
  or in-memory samples, each frame normalised with
  :func:`napari_kinetochores.backends.stardist.normalise_frame`, labelled with
  physical ellipsoids around the points
  (:func:`napari_kinetochores.core.targets.instance_labels`), and the same
  augmentation (:class:`napari_kinetochores.nn.data.Augmenter`).
- Validation: every epoch, the one-to-one matching F1 at 0.3 µm
  (:func:`napari_kinetochores.analysis.matching.match_points`) over a grid of
  probability thresholds, on held-out frames of the user's labels when there
  are any, else on held-out simulated movies
  (:func:`napari_kinetochores.training.validation.plan_validation`); the
  best-F1 weights are kept with their threshold (``thresholds.json``).
- Model folder: StarDist's own format (``config.json``, ``weights_best.h5``,
  ``thresholds.json``) plus ``kinetochores.json`` (voxel size, normalisation,
  centre method, validation metrics and what they were measured on) and
  ``log.csv``.

Examples
--------
>>> config = stardist_config_from_dict({"epochs": 2, "net": {"n_rays": 16}})
>>> config.net.n_rays, config.epochs, config.net.grid
(16, 2, [1, 2, 2])
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_kinetochores.backends.stardist import (
    CENTER_METHODS,
    INFO_FILE,
    INFO_FORMAT,
    anisotropy_from_voxel_size,
    check_normalization,
    normalise_frame,
    predict_candidates,
    quiet,
    read_model_info,
    require_stardist,
    select_candidates,
    stardist_model_path,
)
from napari_kinetochores.core.normalize import NOISE_UNITS
from napari_kinetochores.errors import InputError
from napari_kinetochores.training.config import (
    DataConfig,
    ValidationConfig,
    build_section,
    check_data_config,
    check_validation_config,
    read_yaml_config,
)
from napari_kinetochores.training.loop import Trainer, plain_types
from napari_kinetochores.training.samples import (
    SamplePool,
    flatten,
    frame_points,
    simulated_movie,
    user_movies,
)
from napari_kinetochores.training.validation import (
    ValidationFrame,
    ValidationPlan,
    plan_validation,
    summarise_scores,
)

if TYPE_CHECKING:
    import pandas as pd

    from napari_kinetochores.training.samples import LabelledMovie

__all__ = [
    "StarDistConfig",
    "StarDistNetConfig",
    "StarDistTrainResult",
    "StarDistTraining",
    "build_config3d",
    "load_stardist_config",
    "stardist_config_from_dict",
    "train_stardist",
]


def _set_threads(num_threads: int | None) -> None:
    if not num_threads:
        return
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # TensorFlow already initialised: keep its setting
        tf.config.threading.set_intra_op_parallelism_threads(int(num_threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)


# --------------------------------------------------------------------------- config


@dataclass
class StarDistNetConfig:
    """The StarDist3D network (``Config3D`` options).

    Attributes
    ----------
    n_rays : int
        Number of rays (``Rays_GoldenSpiral``, corrected for the anisotropy).
    grid : (z, y, x)
        Output subsampling; keep z at 1 (z is already the coarse axis).
    unet_n_depth, unet_n_filter_base, unet_n_conv_per_depth : int
        U-Net backbone depth, filters of the first level, convolutions per level.
    unet_pool : (z, y, x)
        Pooling of every U-Net level; (1, 2, 2) keeps the z resolution.
    unet_kernel_size : (z, y, x)
    net_conv_after_unet : int
        Filters of the convolution after the U-Net (0: none).
    nms_threshold : float
        Overlap above which two polyhedra are one object (non-maximum suppression).
    dist_loss : {"mae", "mse", "iou"}
    loss_weights : (prob, dist)
    prob_pos_weight : float
        Weight of the object voxels in the probability loss (binary cross
        entropy). 1 is StarDist's own loss. Kinetochores fill ~1 % of a
        volume, and with the plain loss the probability can sit at the
        background prior for thousands of steps; a weight of ~10 gets it
        going within a few hundred. The validation threshold absorbs the shift
        in calibration.
    """

    n_rays: int = 32
    grid: list[int] = field(default_factory=lambda: [1, 2, 2])
    unet_n_depth: int = 2
    unet_n_filter_base: int = 16
    unet_n_conv_per_depth: int = 2
    unet_pool: list[int] = field(default_factory=lambda: [1, 2, 2])
    unet_kernel_size: list[int] = field(default_factory=lambda: [3, 3, 3])
    net_conv_after_unet: int = 64
    nms_threshold: float = 0.3
    dist_loss: str = "mae"
    loss_weights: list[float] = field(default_factory=lambda: [1.0, 0.2])
    prob_pos_weight: float = 1.0


def _default_data() -> DataConfig:
    return DataConfig(
        simulation={"n_frames": 1, "shape_zyx": [32, 128, 128]}, pool_size=16, refresh_per_epoch=4
    )


def _default_validation() -> ValidationConfig:
    return ValidationConfig(snr_levels=["very_low", "low", "moderate", "high"], seed=200_000)


@dataclass
class StarDistConfig:
    """A StarDist training run, as read from YAML (see ``configs/stardist.yaml``).

    ``data`` and ``validation`` are the UNet's
    :class:`~napari_kinetochores.training.config.DataConfig` and
    :class:`~napari_kinetochores.training.config.ValidationConfig` (same sources,
    same held-out movies and metric). ``validation.thresholds`` are StarDist
    object probabilities.

    Attributes
    ----------
    net : StarDistNetConfig
    voxel_size_um : (z, y, x)
        Voxel size the model is made for; it sets the ray anisotropy.
    radius_um : float or (z, y, x)
        Radius (or semi-axes) in µm of the ellipsoid labelled around each point.
    center : {"intensity", "centroid", "point"}
        Detection position: the intensity-weighted centre inside each
        polyhedron, its centroid, or StarDist's own (grid-quantised) centre.
    normalization : {"noise", "percentile"}
        Input normalisation of every frame: ``"noise"`` expresses it in units
        of its own noise (:func:`napari_kinetochores.core.normalize.normalize_noise`,
        the UNet's input; an empty field stays noise), ``"percentile"`` maps
        ``percentiles`` to 0 and 1 (StarDist's usual input; it stretches the
        noise of a mostly empty field up to spot intensities).
    noise_units : float
        Noise standard deviations that map to 1 (``"noise"``).
    percentiles : (low, high)
        Percentiles that map to 0 and 1 (``"percentile"``).
    patch_shape : (z, y, x)
        Training patch; divisible by ``grid * unet_pool ** unet_n_depth``.
    output_dir : str
        The model folder written (StarDist format).
    tile_shape : (z, y, x)
        Largest inference tile; sets StarDist's ``n_tiles``.
    reduce_lr_patience : int
        Epochs without a lower validation loss before the learning rate halves.
    init_from : str or None
        A StarDist model folder (or bundled name) to start from (fine-tuning).
    augment : bool
        The UNet's flips, rotations and intensity jitter on every patch.
    min_distance_um : float or None
        Of two detections closer than this (µm) only the surer one stays
        (in validation and detection).
    """

    net: StarDistNetConfig = field(default_factory=StarDistNetConfig)
    voxel_size_um: list[float] = field(default_factory=lambda: [0.30, 0.13, 0.13])
    radius_um: float | list[float] = 0.3
    center: str = "intensity"
    normalization: str = "noise"
    noise_units: float = NOISE_UNITS
    percentiles: list[float] = field(default_factory=lambda: [1.0, 99.8])
    data: DataConfig = field(default_factory=_default_data)
    validation: ValidationConfig = field(default_factory=_default_validation)
    patch_shape: list[int] = field(default_factory=lambda: [16, 64, 64])
    batch_size: int = 4
    epochs: int = 20
    steps_per_epoch: int = 50
    lr: float = 1e-3
    reduce_lr_patience: int = 4
    foreground_prob: float = 0.9
    augment: bool = True
    output_dir: str = "runs/stardist"
    seed: int = 0
    time_limit_min: float | None = None
    tile_shape: list[int] = field(default_factory=lambda: [64, 256, 256])
    num_threads: int | None = None
    init_from: str | None = None
    min_distance_um: float | None = None


def stardist_config_from_dict(values: dict) -> StarDistConfig:
    """Build a :class:`StarDistConfig` from nested dicts (as loaded from YAML)."""
    values = dict(values or {})
    values.pop("backend", None)
    net = build_section(StarDistNetConfig, values.pop("net", {}) or {}, "net")
    data = values.pop("data", None)
    validation = values.pop("validation", None)
    config = build_section(StarDistConfig, values, "the config")
    config.net = net
    if data is not None:
        config.data = build_section(DataConfig, data, "data")
    if validation is not None:
        config.validation = build_section(ValidationConfig, validation, "validation")
    check_data_config(config.data)
    check_validation_config(config.validation)
    if config.center not in CENTER_METHODS:
        raise InputError(f"center must be one of {CENTER_METHODS}, got {config.center!r}")
    if len(net.grid) != 3 or any(int(g) < 1 for g in net.grid):
        raise InputError(f"net.grid must be three integers >= 1, got {net.grid}")
    if int(net.grid[0]) != 1:
        raise InputError(
            f"net.grid must not subsample z (the coarse axis): use [1, g, g], got {net.grid}"
        )
    check_normalization(config.normalization)
    if net.prob_pos_weight <= 0:
        raise InputError(f"net.prob_pos_weight must be > 0, got {net.prob_pos_weight}")
    if net.n_rays < 4:
        raise InputError(f"net.n_rays must be >= 4, got {net.n_rays}")
    div = np.asarray(net.grid) * np.asarray(net.unet_pool) ** net.unet_n_depth
    if len(config.patch_shape) != 3 or np.any(np.asarray(config.patch_shape) % div):
        raise InputError(
            f"patch_shape {config.patch_shape} must be divisible by grid × unet_pool^depth = {div.tolist()}"
        )
    radius = np.broadcast_to(np.asarray(config.radius_um, float), (3,))
    if np.any(radius <= 0):
        raise InputError(f"radius_um must be > 0, got {config.radius_um}")
    return config


def load_stardist_config(path: str | Path) -> StarDistConfig:
    """Read a StarDist training config from YAML; errors name the file."""
    return read_yaml_config(path, stardist_config_from_dict)


def build_config3d(config: StarDistConfig):
    """The ``stardist.models.Config3D`` of a run (rays corrected for the voxel anisotropy)."""
    require_stardist()
    from stardist import Rays_GoldenSpiral
    from stardist.models import Config3D

    net = config.net
    anisotropy = anisotropy_from_voxel_size(config.voxel_size_um)
    return Config3D(
        rays=Rays_GoldenSpiral(int(net.n_rays), anisotropy=anisotropy),
        anisotropy=anisotropy,
        grid=tuple(int(g) for g in net.grid),
        n_channel_in=1,
        backbone="unet",
        unet_n_depth=int(net.unet_n_depth),
        unet_n_filter_base=int(net.unet_n_filter_base),
        unet_n_conv_per_depth=int(net.unet_n_conv_per_depth),
        unet_pool=tuple(int(p) for p in net.unet_pool),
        unet_kernel_size=tuple(int(k) for k in net.unet_kernel_size),
        net_conv_after_unet=int(net.net_conv_after_unet),
        train_patch_size=tuple(int(p) for p in config.patch_shape),
        train_batch_size=int(config.batch_size),
        train_learning_rate=float(config.lr),
        train_dist_loss=net.dist_loss,
        train_loss_weights=tuple(float(w) for w in net.loss_weights),
        train_foreground_only=float(config.foreground_prob),
        train_reduce_lr={"factor": 0.5, "patience": int(config.reduce_lr_patience), "min_delta": 0},
        train_tensorboard=False,
        train_checkpoint=None,  # the best weights are chosen by our F1, not by the loss
        train_checkpoint_epoch=None,
        train_checkpoint_last="weights_last.h5",
        train_sample_cache=True,
        use_gpu=False,
    )


# --------------------------------------------------------------------------- data


def _frame_volumes(movie: LabelledMovie, config: StarDistConfig, channel: int = 0) -> list[tuple]:
    """Per frame: (normalised (Z, Y, X) float32 image, int32 instance labels, (N, 3) points)."""
    from napari_kinetochores.core.targets import instance_labels

    image = np.asarray(movie.image)
    if image.ndim != 5:
        raise InputError(f"expected a (T, C, Z, Y, X) movie, got shape {image.shape}")
    if not 0 <= channel < image.shape[1]:
        raise InputError(
            f"channel {channel} does not exist; the movie has {image.shape[1]} channel(s)"
        )
    out = []
    for t in range(image.shape[0]):
        points = frame_points(movie.points, t, channel)
        normalised = normalise_frame(
            image[t, channel], config.normalization, config.percentiles, config.noise_units
        )
        labels = instance_labels(points, normalised.shape, movie.voxel_size_um, config.radius_um)
        out.append((normalised, labels, points))
    return out


def _pad_to(image: np.ndarray, labels: np.ndarray, shape: Sequence[int]):
    pad = [(0, max(int(p) - s, 0)) for p, s in zip(shape, image.shape, strict=True)]
    if any(after for _, after in pad):
        image, labels = np.pad(image, pad), np.pad(labels, pad)
    return image, labels


def training_pool(
    config: StarDistConfig,
    rng: np.random.Generator,
    movies: list[LabelledMovie] | None,
    plan: ValidationPlan,
) -> SamplePool[tuple[np.ndarray, np.ndarray]]:
    """(image, labels) frames padded to the patch shape: user frames less held-out ones, or simulated."""
    patch = tuple(int(p) for p in config.patch_shape)

    def padded(movie: LabelledMovie, skip: Sequence[int] = ()) -> list[tuple]:
        frames = _frame_volumes(movie, config)
        return [
            _pad_to(image, labels, patch)
            for t, (image, labels, _) in enumerate(frames)
            if t not in skip
        ]

    def simulate(seed: int) -> list[tuple]:
        return padded(simulated_movie(rng, config.data.simulation, seed, channel=0))

    if movies is None:
        seed = config.seed * 10_000
        items = flatten(simulate(seed + i) for i in range(config.data.pool_size))
    else:
        for movie in movies:
            if len(movie.points) == 0:
                raise InputError("no labelled points to train on", movie.source)
        items = flatten(
            padded(movie, [t for k, t in plan.held_out if k == m]) for m, movie in enumerate(movies)
        )
    refresh = config.data.source == "simulate" and config.data.refresh_per_epoch
    next_seed = config.seed * 10_000 + 5000
    return SamplePool(items, simulate if refresh else None, refresh, next_seed, rng)


def _validation_volume(frame: ValidationFrame, config: StarDistConfig) -> tuple:
    """(label, normalised image, instance labels, points, voxel size) of a validation frame."""
    from napari_kinetochores.core.targets import instance_labels

    image = normalise_frame(
        frame.image[frame.t, 0], config.normalization, config.percentiles, config.noise_units
    )
    labels = instance_labels(frame.points_zyx, image.shape, frame.voxel_size_um, config.radius_um)
    return frame.label, image, labels, frame.points_zyx, tuple(frame.voxel_size_um)


def _augmenter(seed: int):
    """StarDist augmenter ``(x, y) -> (x, y)``: the UNet's flips, rotations and intensity jitter."""
    from napari_kinetochores.nn.data import Augmenter

    augment = Augmenter()
    rng = np.random.default_rng(seed)

    def apply(x: np.ndarray, y: np.ndarray):
        image, labels = augment(rng, x, y)
        return image, np.rint(labels).astype(np.int32)

    return apply


# --------------------------------------------------------------------------- validation


def _validate(model, volumes, config: StarDistConfig) -> dict:
    """Matching F1 at the validation cutoff for every probability threshold; the best one."""
    from napari_kinetochores.analysis.matching import match_points

    thresholds = sorted(float(t) for t in config.validation.thresholds)
    scores = np.zeros((len(volumes), len(thresholds)))
    errors: list[list[float]] = [[] for _ in thresholds]
    for m, (_, image, _, gt, voxel) in enumerate(volumes):
        coords, prob = predict_candidates(
            model, image, thresholds[0], config.net.nms_threshold, None, config.center
        )
        for k, threshold in enumerate(thresholds):
            kept, _ = select_candidates(coords, prob, threshold, voxel, config.min_distance_um)
            result = match_points(kept, gt, voxel, config.validation.cutoff_um)
            scores[m, k] = result.f1
            errors[k].extend((result.distances_um * 1000).tolist())
    labels = [label for label, *_ in volumes]
    return summarise_scores(scores, thresholds, labels, errors)


def _write_info(
    output: Path, config: StarDistConfig, metrics: dict, history: list[dict], validated_on: str
) -> None:
    info = {
        "format": INFO_FORMAT,
        "version": 1,
        "voxel_size_um": list(config.voxel_size_um),
        "normalization": config.normalization,
        "noise_units": config.noise_units,
        "percentiles": list(config.percentiles),
        "center": config.center,
        "radius_um": config.radius_um,
        "threshold": metrics["threshold"],
        "nms_threshold": config.net.nms_threshold,
        "min_distance_um": config.min_distance_um,
        "tile_shape": list(config.tile_shape),
        "validation": metrics,
        "validated_on": validated_on,
        "training": {"config": config, "history": history},
    }
    tmp = output / (INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(plain_types(info), indent=1, allow_nan=False))
    tmp.replace(output / INFO_FILE)
    thresholds = output / "thresholds.json"
    thresholds.write_text(
        json.dumps({"prob": metrics["threshold"], "nms": config.net.nms_threshold})
    )


# --------------------------------------------------------------------------- training


def _weight_object_voxels(model, pos_weight: float) -> None:
    """Recompile a prepared StarDist model with object voxels weighted in the probability loss.

    StarDist's probability loss is the binary cross entropy over all grid
    voxels (those with a negative target are ignored); here the voxels with a
    positive target count ``pos_weight`` times. The distance loss, loss
    weights and optimiser stay StarDist's.
    """
    import tensorflow as tf

    keras_model = model.keras_model
    losses = list(keras_model.loss)

    def prob_loss(y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        p = tf.clip_by_value(y_pred, 1e-7, 1 - 1e-7)
        bce = -(y_true * tf.math.log(p) + (1 - y_true) * tf.math.log(1 - p))
        valid = tf.cast(y_true >= 0, y_pred.dtype)
        weight = valid * (1 + (pos_weight - 1) * tf.cast(y_true > 0, y_pred.dtype))
        return tf.reduce_sum(weight * bce) / tf.maximum(tf.reduce_sum(valid), 1.0)

    losses[0] = prob_loss
    keras_model.compile(
        optimizer=keras_model.optimizer,
        loss=losses,
        loss_weights=list(model.config.train_loss_weights),
    )


@dataclass
class StarDistTrainResult:
    """Outcome of :func:`train_stardist`: the model folder and its best validation F1.

    ``validated_on`` says in words what ``best_f1`` was measured on.
    """

    model_dir: Path
    best_f1: float
    threshold: float
    log_path: Path
    epochs_run: int
    history: list[dict]
    seconds: float
    validated_on: str = ""


class StarDistTraining:
    """StarDist's part of a training run (a :class:`~napari_kinetochores.training.loop.TrainingBackend`).

    Keras trains the epochs (:meth:`fit`); after each one a callback hands the
    :class:`~napari_kinetochores.training.loop.Trainer` the epoch's losses.
    The training arrays ``X``, ``Y`` are the ones StarDist's data generator
    holds, so a pool refresh replaces their entries in place.
    """

    threshold_name = "prob"

    def __init__(
        self,
        config: StarDistConfig,
        model,
        pool: SamplePool,
        plan: ValidationPlan,
        output: Path,
    ) -> None:
        self.config, self.model, self.pool, self.plan, self.output = (
            config,
            model,
            pool,
            plan,
            output,
        )
        self.X = [image for image, _ in pool.items]
        self.Y = [labels for _, labels in pool.items]
        self.volumes = [_validation_volume(frame, config) for frame in plan.frames]

    def validate(self) -> dict:
        """:func:`_validate` on the plan's frames."""
        return _validate(self.model, self.volumes, self.config)

    def save(self, trainer: Trainer, epoch: int, metrics: dict, improved: bool) -> None:
        """The best weights and their description when the F1 improved (Keras writes the last)."""
        if improved:
            self.model.keras_model.save_weights(str(self.output / "weights_best.h5"))
            _write_info(self.output, self.config, metrics, trainer.history, self.plan.description)

    def refresh_pool(self) -> None:
        """Fresh simulated frames in place of random entries of ``X``, ``Y`` (and StarDist's caches)."""
        data = getattr(self.model, "data_train", None)
        for k in self.pool.refresh():
            self.X[k], self.Y[k] = self.pool.items[k]
            for cache in (getattr(data, "_ind_cache_fg", {}), getattr(data, "_ind_cache_all", {})):
                cache.pop(k, None)

    def fit(self, trainer: Trainer) -> None:
        """Keras's training loop, with the trainer's phases at the end of every epoch."""
        config = self.config
        pairs = [
            _pad_to(image, labels, config.patch_shape) for _, image, labels, _, _ in self.volumes
        ]
        self.model.callbacks.append(_trainer_callback(trainer))
        self.model.train(
            self.X,
            self.Y,
            validation_data=([p[0] for p in pairs], [p[1] for p in pairs]),
            augmenter=_augmenter(config.seed) if config.augment else None,
            seed=config.seed,
            epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch,
        )


def _trainer_callback(trainer: Trainer):
    """A Keras callback: cancel between steps, :meth:`Trainer.end_epoch` after every epoch."""
    from csbdeep.utils.tf import keras_import

    Callback = keras_import("callbacks", "Callback")

    class TrainerCallback(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if trainer.is_cancelled():
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            figures = {
                "loss": float(logs.get("loss", float("nan"))),
                "val_loss": float(logs.get("val_loss", float("nan"))),
            }
            if trainer.end_epoch(epoch, figures):
                self.model.stop_training = True

    return TrainerCallback()


def _stardist_model(config: StarDistConfig, output: Path, start_from):
    """A StarDist3D model prepared for training, from ``start_from``'s weights if given."""
    from stardist.models import StarDist3D

    model = StarDist3D(build_config3d(config), name=output.name, basedir=str(output.parent))
    if start_from is not None:
        source = stardist_model_path(start_from)
        weights = sorted(source.glob("weights_best*.h5")) or sorted(source.glob("*.h5"))
        try:
            model.keras_model.load_weights(str(weights[0]))
        except (ValueError, OSError) as error:
            raise InputError(f"cannot start from these weights: {error}", weights[0]) from None
    model.prepare_for_training()
    if config.net.prob_pos_weight != 1:
        _weight_object_voxels(model, float(config.net.prob_pos_weight))
    return model


def _seed_keras(seed: int) -> None:
    from csbdeep.utils.tf import keras_import

    keras_utils = keras_import("utils")
    with contextlib.suppress(AttributeError):
        keras_utils.set_random_seed(int(seed))


def train_stardist(
    config: StarDistConfig,
    resume: str | Path | None = None,
    progress: bool = True,
    cancelled: Callable[[], bool] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    samples: Sequence[tuple[np.ndarray, pd.DataFrame, Sequence[float]]] | None = None,
) -> StarDistTrainResult:
    """Train a StarDist3D model on simulated (or given) data; validate with our matching F1.

    Writes the StarDist model folder ``config.output_dir`` (``config.json``,
    ``weights_best.h5`` with the best validation F1, ``weights_last.h5``,
    ``thresholds.json`` with the probability threshold that gave it,
    ``kinetochores.json`` and ``log.csv``). ``cancelled()`` is polled every
    step; on cancel the best weights so far stay.

    Parameters
    ----------
    config : StarDistConfig
    resume : path or None
        A StarDist model folder whose weights start the run (fine-tuning or
        continuing; the optimiser state is not kept).
    progress : bool
        Show Keras's progress bars and a line per epoch.
    cancelled, on_epoch : callables, optional
        Polled every step / called with each epoch's log row.
    samples : list of (image (T, C, Z, Y, X), points table, voxel size (z, y, x) µm), optional
        In-memory training data (e.g. napari layers) instead of ``config.data``.
        With user labels (these, or ``data.source: files``) held-out frames
        of them are the validation (``config.validation``).

    Returns
    -------
    StarDistTrainResult
    """
    require_stardist()
    _set_threads(config.num_threads)
    _seed_keras(config.seed)
    rng = np.random.default_rng(config.seed)
    output = Path(config.output_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    movies = user_movies(config.data, samples)
    plan = plan_validation(config.validation, movies, channel=0)
    pool = training_pool(config, rng, movies, plan)
    verbose = contextlib.nullcontext() if progress else quiet()
    with verbose:
        model = _stardist_model(config, output, resume if resume is not None else config.init_from)
    run = StarDistTraining(config, model, pool, plan, output)
    (output / "log.csv").unlink(missing_ok=True)
    if progress:
        print(f"validating on {plan.description}", flush=True)
    trainer = Trainer(
        run,
        config.epochs,
        output,
        config.time_limit_min,
        progress,
        cancelled,
        on_epoch,
        validated_on=plan.kind,
        started=started,
    )
    with verbose:
        run.fit(trainer)
    return _finish(run, trainer, started)


def _finish(run: StarDistTraining, trainer: Trainer, started: float) -> StarDistTrainResult:
    """Load the best weights, add the history and time to ``kinetochores.json``; the result."""
    output = run.output
    if not (output / "weights_best.h5").exists():
        raise InputError(
            "training stopped before the first epoch finished; nothing to save", output
        )
    with quiet():
        run.model.keras_model.load_weights(str(output / "weights_best.h5"))
    info = read_model_info(output)
    info.setdefault("training", {})["history"] = trainer.history
    info["training"]["seconds"] = round(time.monotonic() - started, 1)
    (output / INFO_FILE).write_text(json.dumps(plain_types(info), indent=1, allow_nan=False))
    return StarDistTrainResult(
        output,
        float(trainer.best_f1),
        float(trainer.best_threshold),
        trainer.log_path,
        trainer.epochs_run,
        trainer.history,
        time.monotonic() - started,
        run.plan.description,
    )
