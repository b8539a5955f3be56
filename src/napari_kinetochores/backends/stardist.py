"""StarDist 3D backend: star-convex instance detection of kinetochores (optional extra).

StarDist (Schmidt et al. 2018, Weigert et al. 2020) predicts, for every voxel
of a subsampled grid, the probability of being inside an object and the
distances to the object boundary along fixed rays; non-maximum suppression
turns these into star-convex polyhedra. Here every kinetochore is one small
instance: the training labels are physical ellipsoids around the
centre-of-mass points (:func:`napari_kinetochores.core.targets.instance_labels`),
and a detection is the intensity-weighted centre (or the centroid) of a
predicted polyhedron, with StarDist's object probability as its score.

Install with ``pip install "napari-kinetochores[stardist]"`` (stardist,
csbdeep and the CPU build of TensorFlow). TensorFlow and stardist are
imported inside the functions that need them, never at module import, and
:class:`~napari_kinetochores.errors.InputError` says how to install the extra
when they are missing.

- Anisotropy: the rays are ``Rays_GoldenSpiral(n_rays, anisotropy)`` with
  ``anisotropy = voxel_size / min(voxel_size)`` (z, y, x), i.e. (2.31, 1, 1)
  for 0.30 × 0.13 × 0.13 µm voxels, and the prediction grid does not
  subsample z (``grid = (1, 2, 2)`` by default).
- Data: the same pipeline as the UNet: domain-randomised simulator movies
  (:func:`napari_kinetochores.simulate.sample_params`) or (movie, points)
  files, each frame percentile-normalised with
  :func:`napari_kinetochores.nn.data.normalize_percentile`, the same
  augmentation (:class:`napari_kinetochores.nn.data.Augmenter`).
- Validation: every epoch, on the held-out simulated movies of
  :func:`napari_kinetochores.training.unet.validation_set`, the one-to-one
  matching F1 at 0.3 µm (:func:`napari_kinetochores.analysis.matching.match_points`)
  over a grid of probability thresholds; the best-F1 weights are kept with
  their threshold (``thresholds.json``).
- Model folder: StarDist's own format (``config.json``, ``weights_best.h5``,
  ``thresholds.json``) plus ``kinetochores.json`` (voxel size, normalisation,
  centre method, validation metrics) and ``log.csv``.

Example
-------
>>> from napari_kinetochores.backends.stardist import StarDistDetector  # doctest: +SKIP
>>> detector = StarDistDetector.load()  # the bundled model  # doctest: +SKIP
>>> coords, scores = detector.detect_volume(frame_zyx, (0.3, 0.13, 0.13))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.nn.data import NOISE_UNITS

if TYPE_CHECKING:
    import pandas as pd

    from napari_kinetochores.training.unet import DataConfig, ValidationConfig

INSTALL_HINT = 'pip install "napari-kinetochores[stardist]"'
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL_NAME = "stardist_default"
INFO_FILE = "kinetochores.json"
INFO_FORMAT = "napari-kinetochores-stardist"
CENTER_METHODS = ("intensity", "centroid", "point")
NORMALIZATIONS = ("noise", "percentile")

__all__ = [
    "CENTER_METHODS",
    "DEFAULT_MODEL_NAME",
    "INSTALL_HINT",
    "StarDistConfig",
    "StarDistDetector",
    "StarDistNetConfig",
    "StarDistTrainResult",
    "anisotropy_from_voxel_size",
    "build_config3d",
    "instance_centres",
    "load_stardist_config",
    "n_tiles_for",
    "require_stardist",
    "stardist_config_from_dict",
    "stardist_model_path",
    "train_stardist",
]


# --------------------------------------------------------------------------- imports


def require_stardist() -> None:
    """Import TensorFlow and stardist, or raise :class:`InputError` saying how to install them.

    Sets quiet TensorFlow logging and the Keras TensorFlow backend unless the
    environment already chose otherwise.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import stardist  # noqa: F401
        import tensorflow  # noqa: F401
        from stardist.models import StarDist3D  # noqa: F401
    except ImportError as error:
        raise InputError(
            f"the StarDist backend needs TensorFlow and stardist, which are not installed "
            f"({error}); install the extra with: {INSTALL_HINT}"
        ) from None


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
    from napari_kinetochores.training.unet import DataConfig

    return DataConfig(
        simulation={"n_frames": 1, "shape_zyx": [32, 128, 128]}, pool_size=16, refresh_per_epoch=4
    )


def _default_validation() -> ValidationConfig:
    from napari_kinetochores.training.unet import ValidationConfig

    return ValidationConfig(snr_levels=["very_low", "low", "moderate", "high"], seed=200_000)


@dataclass
class StarDistConfig:
    """A StarDist training run, as read from YAML (see ``configs/stardist.yaml``).

    ``data`` and ``validation`` are the UNet's
    :class:`~napari_kinetochores.training.unet.DataConfig` and
    :class:`~napari_kinetochores.training.unet.ValidationConfig` (same sources,
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
        of its own noise (:func:`napari_kinetochores.nn.data.normalize_noise`,
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
    from napari_kinetochores.training.unet import (
        DataConfig,
        ValidationConfig,
        _build,
        check_data_config,
    )

    values = dict(values or {})
    values.pop("backend", None)
    net = _build(StarDistNetConfig, values.pop("net", {}) or {}, "net")
    data = values.pop("data", None)
    validation = values.pop("validation", None)
    config = _build(StarDistConfig, values, "the config")
    config.net = net
    if data is not None:
        config.data = _build(DataConfig, data, "data")
    if validation is not None:
        config.validation = _build(ValidationConfig, validation, "validation")
    check_data_config(config.data)
    if config.center not in CENTER_METHODS:
        raise InputError(f"center must be one of {CENTER_METHODS}, got {config.center!r}")
    if len(net.grid) != 3 or any(int(g) < 1 for g in net.grid):
        raise InputError(f"net.grid must be three integers >= 1, got {net.grid}")
    if int(net.grid[0]) != 1:
        raise InputError(
            f"net.grid must not subsample z (the coarse axis): use [1, g, g], got {net.grid}"
        )
    _check_normalization(config.normalization)
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
    from napari_kinetochores.training.unet import read_yaml_config

    return read_yaml_config(path, stardist_config_from_dict)


def anisotropy_from_voxel_size(voxel_size_um: Sequence[float]) -> tuple[float, float, float]:
    """StarDist anisotropy (z, y, x): each voxel extent over the smallest one.

    >>> anisotropy_from_voxel_size((0.3, 0.13, 0.13))
    (2.3077, 1.0, 1.0)
    """
    voxel = np.asarray(voxel_size_um, float)
    if voxel.shape != (3,) or np.any(~np.isfinite(voxel)) or np.any(voxel <= 0):
        raise InputError(
            f"voxel size must be three positive numbers (z, y, x) in µm, got {voxel_size_um}"
        )
    return tuple(round(float(v), 4) for v in voxel / voxel.min())  # type: ignore[return-value]


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


def _frame_volumes(
    image_tczyx, points: pd.DataFrame, voxel_size_um, config: StarDistConfig, channel: int = 0
):
    """Per frame: (normalised (Z, Y, X) float32 image, int32 instance labels, (N, 3) points)."""
    from napari_kinetochores.core.targets import instance_labels

    image = np.asarray(image_tczyx)
    if image.ndim != 5:
        raise InputError(f"expected a (T, C, Z, Y, X) movie, got shape {image.shape}")
    if not 0 <= channel < image.shape[1]:
        raise InputError(
            f"channel {channel} does not exist; the movie has {image.shape[1]} channel(s)"
        )
    rows = points
    if "channel" in rows.columns:
        rows = rows[rows["channel"] == channel]
    out = []
    for t in range(image.shape[0]):
        frame_points = rows[np.round(rows["t"].to_numpy()).astype(int) == t][
            ["z", "y", "x"]
        ].to_numpy(float)
        normalised = normalise_frame(
            image[t, channel], config.normalization, config.percentiles, config.noise_units
        )
        labels = instance_labels(frame_points, normalised.shape, voxel_size_um, config.radius_um)
        out.append((normalised, labels, frame_points))
    return out


def _check_normalization(normalization: str) -> None:
    if normalization not in NORMALIZATIONS:
        raise InputError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def normalise_frame(
    image_zyx: np.ndarray,
    normalization: str = "noise",
    percentiles: Sequence[float] = (1.0, 99.8),
    noise_units: float = NOISE_UNITS,
) -> np.ndarray:
    """A (Z, Y, X) frame as the StarDist network sees it (float32); see ``StarDistConfig``."""
    from napari_kinetochores.nn.data import normalize_noise, normalize_percentile

    _check_normalization(normalization)
    if normalization == "noise":
        return normalize_noise(image_zyx, noise_units).astype(np.float32, copy=False)
    # float32 (the percentiles are float64 scalars, which NumPy 2 would promote to)
    return normalize_percentile(image_zyx, percentiles).astype(np.float32, copy=False)


def _pad_to(image: np.ndarray, labels: np.ndarray, shape: Sequence[int]):
    pad = [(0, max(int(p) - s, 0)) for p, s in zip(shape, image.shape, strict=True)]
    if any(after for _, after in pad):
        image, labels = np.pad(image, pad), np.pad(labels, pad)
    return image, labels


def _simulated_volumes(rng: np.random.Generator, config: StarDistConfig, seed: int):
    from napari_kinetochores.simulate import sample_params, simulate_movie

    for _ in range(10):  # a random layout can miss a small volume; draw again
        params = sample_params(rng, **config.data.simulation)
        movie = simulate_movie(params, seed=seed)
        if (movie.points["channel"] == 0).any():
            break
    return _frame_volumes(movie.image, movie.points, params.voxel_size_um, config)


def _file_volumes(config: StarDistConfig):
    from napari_kinetochores.io import read_points, read_volume

    out = []
    for entry in config.data.files:
        if "movie" not in entry or "points" not in entry:
            raise InputError(f"each data.files entry needs 'movie' and 'points', got {entry}")
        volume = read_volume(entry["movie"], voxel_size_um=entry.get("voxel_size_um"))
        points = read_points(entry["points"], voxel_size_um=volume.voxel_size_um)
        if len(points) == 0:
            raise InputError("no labelled points to train on", entry["points"])
        out.extend(_frame_volumes(np.asarray(volume.data), points, volume.voxel_size_um, config))
    return out


def _validation_volumes(config: StarDistConfig):
    """Held-out simulated frames: [(SNR level, normalised image, labels, points, voxel size)]."""
    from types import SimpleNamespace

    from napari_kinetochores.training.unet import validation_set

    # validation_set reads only .validation and .model.temporal_window
    movies = validation_set(
        SimpleNamespace(validation=config.validation, model=SimpleNamespace(temporal_window=1))
    )
    out = []
    for level, movie in movies:
        (image, labels, points), *_ = _frame_volumes(
            movie.image, movie.points, movie.params.voxel_size_um, config
        )
        out.append((level, image, labels, points, tuple(movie.params.voxel_size_um)))
    return out


def _augmenter(seed: int):
    """StarDist augmenter ``(x, y) -> (x, y)``: the UNet's flips, rotations and intensity jitter."""
    from napari_kinetochores.nn.data import Augmenter

    augment = Augmenter()
    rng = np.random.default_rng(seed)

    def apply(x: np.ndarray, y: np.ndarray):
        image, labels = augment(rng, x, y)
        return image, np.rint(labels).astype(np.int32)

    return apply


# --------------------------------------------------------------------------- detection core


def n_tiles_for(shape_zyx: Sequence[int], tile_shape: Sequence[int]) -> tuple[int, int, int]:
    """StarDist ``n_tiles`` (z, y, x) so that no tile exceeds ``tile_shape``.

    >>> n_tiles_for((61, 1000, 1000), (64, 256, 256))
    (1, 4, 4)
    """
    return tuple(
        max(1, math.ceil(int(s) / max(int(t), 1)))
        for s, t in zip(shape_zyx, tile_shape, strict=True)
    )  # type: ignore[return-value]


def instance_centres(
    labels: np.ndarray,
    image: np.ndarray | None,
    n: int,
    method: str = "intensity",
    fallback: np.ndarray | None = None,
) -> np.ndarray:
    """Sub-voxel centre of each instance ``1..n`` of a label volume.

    Parameters
    ----------
    labels : (Z, Y, X) int array
        Instance ``i`` (0-based) has label ``i + 1``; 0 is background.
    image : (Z, Y, X) array or None
        Intensities for ``method="intensity"``.
    n : int
        Number of instances.
    method : {"intensity", "centroid", "point"}
        ``"intensity"``: the intensity-weighted centre of the voxels of the
        instance, after subtracting the smallest intensity inside it (so the
        background does not pull the centre to the middle of the polyhedron);
        ``"centroid"``: the mean voxel position; ``"point"``: ``fallback``.
    fallback : (n, 3) array or None
        Used for instances with no voxel (fully covered by others) and for
        ``method="point"``.

    Returns
    -------
    (n, 3) float array of (z, y, x) voxel coordinates (NaN where an instance
    has no voxel and there is no fallback).
    """
    from scipy import ndimage

    if method not in CENTER_METHODS:
        raise InputError(f"center method must be one of {CENTER_METHODS}, got {method!r}")
    centres = np.full((n, 3), np.nan)
    if fallback is not None:
        centres[:] = np.asarray(fallback, float).reshape(n, 3)
    if method == "point" or n == 0:
        return centres
    if method == "intensity" and image is None:
        raise InputError("the intensity-weighted centre needs the image")
    for index, box in enumerate(ndimage.find_objects(labels, max_label=n)):
        if box is None:
            continue
        mask = labels[box] == index + 1
        coords = np.nonzero(mask)
        offset = np.array([s.start for s in box], float)
        if method == "intensity":
            values = np.asarray(image[box], np.float64)[coords]
            weights = values - values.min()
            if weights.sum() > 0:
                local = np.array([np.sum(c * weights) for c in coords]) / weights.sum()
                centres[index] = offset + local
                continue
        centres[index] = offset + np.array([c.mean() for c in coords])
    return centres


def _select(
    coords: np.ndarray, prob: np.ndarray, threshold: float, voxel_size_um, min_distance_um
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates at or above ``threshold``; of two closer than ``min_distance_um`` the surer one."""
    keep = prob >= threshold
    coords, prob = coords[keep], prob[keep]
    if min_distance_um:
        from napari_kinetochores.core.peaks import keep_strongest

        close = keep_strongest(coords, prob, voxel_size_um, float(min_distance_um))
        coords, prob = coords[close], prob[close]
    return coords, prob


def _predict_candidates(
    model, image: np.ndarray, prob_thresh: float, nms_thresh: float, n_tiles, centre: str
):
    """Run StarDist on a normalised (Z, Y, X) image: centres (N, 3) voxels and probabilities (N,)."""
    from stardist.geometry import polyhedron_to_label

    _, details = model.predict_instances(
        image,
        axes="ZYX",
        prob_thresh=prob_thresh,
        nms_thresh=nms_thresh,
        n_tiles=n_tiles,
        show_tile_progress=False,
        return_labels=False,
        verbose=False,
    )
    points = np.asarray(details["points"], float).reshape(-1, 3)
    prob = np.asarray(details["prob"], float).reshape(-1)
    n = len(points)
    if n == 0 or centre == "point":
        return points, prob
    if n >= np.iinfo(np.int32).max:
        raise InputError(f"too many StarDist candidates ({n})")
    labels = polyhedron_to_label(
        details["dist"],
        details["points"],
        rays=details["rays"],
        shape=image.shape,
        prob=prob,
        labels=np.arange(1, n + 1),
        verbose=False,
    )
    return instance_centres(labels, image, n, centre, fallback=points), prob


def _quiet():
    """Silence StarDist's and Keras's prints (model loading, progress bars)."""
    return contextlib.redirect_stdout(io.StringIO())


# --------------------------------------------------------------------------- model folders


def stardist_model_path(model: str | Path | None = None) -> Path:
    """Resolve a StarDist model folder: a path, a bundled name, or None for the bundled default."""
    name = DEFAULT_MODEL_NAME if model is None else str(model)
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        path = candidate
    elif (BUNDLED_DIR / name).is_dir():
        path = BUNDLED_DIR / name
    else:
        bundled = sorted(p.name for p in BUNDLED_DIR.glob("*") if (p / "config.json").is_file())
        if model is None:
            raise InputError(
                f"the bundled StarDist model {DEFAULT_MODEL_NAME!r} is missing; train one with "
                "`kinetochores train --backend stardist configs/stardist.yaml` and pass its folder"
            )
        raise InputError(
            f"no StarDist model folder or bundled StarDist model named {name!r} "
            f"(bundled: {', '.join(bundled) or 'none'})"
        )
    if not (path / "config.json").is_file():
        raise InputError("not a StarDist model folder (no config.json)", path)
    if not any(path.glob("*.h5")):
        raise InputError("StarDist model folder has no weights (*.h5)", path)
    return path


def _read_info(path: Path) -> dict:
    info_path = path / INFO_FILE
    if not info_path.is_file():
        return {}
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"corrupt model description: {error}", info_path) from None
    if info.get("format") != INFO_FORMAT:
        raise InputError(
            f"not a napari-kinetochores StarDist description (format {info.get('format')!r})",
            info_path,
        )
    return info


def _load_model(path: Path):
    from stardist.models import StarDist3D

    with _quiet():
        try:
            return StarDist3D(None, name=path.name, basedir=str(path.parent))
        except (ValueError, OSError, KeyError) as error:
            raise InputError(f"cannot load the StarDist model: {error}", path) from None


# --------------------------------------------------------------------------- detector


class StarDistDetector:
    """A loaded StarDist3D model with its defaults, ready to detect kinetochores frame by frame.

    Parameters
    ----------
    model : stardist.models.StarDist3D
    path : Path
        The model folder.
    info : dict
        Contents of ``kinetochores.json`` (voxel size, normalisation, centre
        method, default threshold, tile shape); defaults where absent.
    tile_shape : (3,) sequence or None
        Largest inference tile (Z, Y, X); sets StarDist's ``n_tiles``.
    """

    def __init__(
        self, model, path: Path, info: dict, tile_shape: Sequence[int] | None = None
    ) -> None:
        self.model = model
        self.path = Path(path)
        self.info = info
        self.voxel_size_um = tuple(float(v) for v in info.get("voxel_size_um", (0.30, 0.13, 0.13)))
        # folders written before noise normalisation have percentiles only
        self.normalization = str(info.get("normalization", "percentile"))
        self.noise_units = float(info.get("noise_units", NOISE_UNITS))
        self.percentiles = tuple(float(p) for p in info.get("percentiles", (1.0, 99.8)))
        self.center = str(info.get("center", "intensity"))
        self.threshold = float(info.get("threshold", model.thresholds.prob))
        self.nms_threshold = float(info.get("nms_threshold", model.thresholds.nms))
        self.min_distance_um = info.get("min_distance_um")
        default_tile = info.get("tile_shape", (64, 256, 256))
        self.tile_shape = tuple(
            int(v) for v in (tile_shape if tile_shape is not None else default_tile)
        )

    @classmethod
    def load(
        cls, name_or_path: str | Path | None = None, tile_shape: Sequence[int] | None = None
    ) -> StarDistDetector:
        """Load a StarDist model folder by path or bundled name (None: the bundled default).

        Raises :class:`InputError` when TensorFlow/stardist are missing (with
        the install command) or the folder is not a StarDist model.
        """
        require_stardist()
        path = stardist_model_path(name_or_path)
        info = _read_info(path)
        return cls(_load_model(path), path, info, tile_shape)

    method = "stardist"
    tileable = False
    score_maps = False
    libraries = ("stardist", "tensorflow", "tensorflow-cpu")

    @classmethod
    def model_file(cls, options) -> None:
        """A StarDist model is a folder, loaded by each worker: no single file to hash."""
        return None

    @classmethod
    def from_options(cls, options) -> StarDistDetector:
        """The detector a :class:`~napari_kinetochores.detection.DetectionOptions` asks for."""
        return cls.load(options.model, tile_shape=options.tile_shape)

    def for_volume(self, volume) -> StarDistDetector:
        """The same model for every movie (it reads one frame at a time)."""
        return self

    def check_input(self, volume, channel: int = 0) -> None:
        """Fail early (naming the file) on a missing channel; warn on a far voxel size."""
        from napari_kinetochores.backends.base import check_channel, check_voxel_size

        check_channel(volume, channel)
        check_voxel_size(volume, self.voxel_size_um, "StarDist model's voxel size")

    def map_channels(self, n_channels: int, options) -> tuple[list[int], str]:
        """StarDist hands out no score map."""
        raise InputError("StarDist writes no score maps; use --method unet or classical")

    def detect(self, volume, t: int, options, on_prediction=None):
        """Detections of frame ``t`` with ``options`` (``on_prediction`` is not called)."""
        return self.detect_frame(
            volume,
            t,
            options.channel,
            threshold=options.threshold,
            min_distance_um=options.min_distance_um,
            all_channels=options.all_channels,
        )

    def detect_volume(
        self,
        image_zyx: np.ndarray,
        voxel_size_um: Sequence[float],
        threshold: float | None = None,
        min_distance_um: float | None = None,
        n_tiles: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Detect kinetochores in one raw (Z, Y, X) volume.

        Parameters
        ----------
        image_zyx : (Z, Y, X) array
            Raw intensities (normalised here, as in training).
        voxel_size_um : (3,) sequence
            Voxel size (z, y, x) in µm (for ``min_distance_um``).
        threshold : float or None
            Object probability threshold; None: the model's (chosen on validation).
        min_distance_um : float or None
            If set, of two detections closer than this (µm) only the surer one stays.
        n_tiles : (3,) sequence or None
            StarDist tiles per axis; None: from ``tile_shape``.

        Returns
        -------
        coords : (N, 3) float array
            (z, y, x) in voxels, sub-voxel.
        scores : (N,) float array
            StarDist object probability in [0, 1].
        """
        image = np.asarray(image_zyx)
        if image.ndim != 3:
            raise InputError(f"expected a (Z, Y, X) volume, got shape {image.shape}")
        normalised = normalise_frame(image, self.normalization, self.percentiles, self.noise_units)
        tiles = (
            tuple(n_tiles)
            if n_tiles is not None
            else n_tiles_for(normalised.shape, self.tile_shape)
        )
        threshold = self.threshold if threshold is None else float(threshold)
        coords, scores = _predict_candidates(
            self.model, normalised, threshold, self.nms_threshold, tiles, self.center
        )
        min_distance = self.min_distance_um if min_distance_um is None else min_distance_um
        return _select(coords, scores, threshold, voxel_size_um, min_distance)

    def detect_frame(
        self,
        volume,
        t: int,
        channel: int = 0,
        threshold: float | None = None,
        min_distance_um: float | None = None,
        all_channels: bool = False,
    ) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Detections of frame ``t``: a list of (movie channel, coords (N, 3) voxels, probabilities).

        The kinetochore channel ``channel`` comes first; with ``all_channels``
        the same model also runs on the other channels (spots of the second
        marker).
        """
        channels = [channel]
        if all_channels:
            channels += [c for c in range(volume.n_channels) if c != channel]
        found = []
        for c in channels:
            coords, scores = self.detect_volume(
                volume.frame(t, c), volume.voxel_size_um, threshold, min_distance_um
            )
            found.append((c, coords, scores))
        return found


# --------------------------------------------------------------------------- validation


def _validate(model, volumes, config: StarDistConfig) -> dict:
    """Matching F1 at the validation cutoff for every probability threshold; the best one."""
    from napari_kinetochores.analysis.matching import match_points

    thresholds = sorted(float(t) for t in config.validation.thresholds)
    scores = np.zeros((len(volumes), len(thresholds)))
    errors: dict[int, list[float]] = {k: [] for k in range(len(thresholds))}
    for m, (_, image, _, gt, voxel) in enumerate(volumes):
        coords, prob = _predict_candidates(
            model, image, thresholds[0], config.net.nms_threshold, None, config.center
        )
        for k, threshold in enumerate(thresholds):
            kept, _ = _select(coords, prob, threshold, voxel, config.min_distance_um)
            result = match_points(kept, gt, voxel, config.validation.cutoff_um)
            scores[m, k] = result.f1
            errors[k].extend((result.distances_um * 1000).tolist())
    mean = scores.mean(axis=0)
    best = int(np.argmax(mean))
    per_level: dict[str, list[float]] = {}
    for m, (label, *_) in enumerate(volumes):
        per_level.setdefault(label, []).append(scores[m, best])
    return {
        "f1": float(mean[best]),
        "threshold": float(thresholds[best]),
        "f1_by_threshold": {f"{t:g}": float(v) for t, v in zip(thresholds, mean, strict=True)},
        "f1_by_level": {k: float(np.mean(v)) for k, v in per_level.items()},
        "median_error_nm": float(np.median(errors[best])) if errors[best] else float("nan"),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_info(output: Path, config: StarDistConfig, metrics: dict, history: list[dict]) -> None:
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
        "training": {"config": asdict(config), "history": history},
    }
    tmp = output / (INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(_plain(info), indent=1, allow_nan=False))
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
    """Outcome of :func:`train_stardist`: the model folder and its best validation F1."""

    model_dir: Path
    best_f1: float
    threshold: float
    log_path: Path
    epochs_run: int
    history: list[dict]
    seconds: float


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

    Returns
    -------
    StarDistTrainResult
    """
    require_stardist()
    from csbdeep.utils.tf import keras_import
    from stardist.models import StarDist3D

    from napari_kinetochores.io.volumes import validate_voxel_size
    from napari_kinetochores.training.unet import _append_log

    _set_threads(config.num_threads)
    keras_utils = keras_import("utils")
    with contextlib.suppress(AttributeError):
        keras_utils.set_random_seed(int(config.seed))
    Callback = keras_import("callbacks", "Callback")
    rng = np.random.default_rng(config.seed)
    output = Path(config.output_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    if samples is not None:
        if not samples:
            raise InputError("no training samples given")
        config.data.source = "memory"
        volumes = []
        for image, points, voxel in samples:
            volumes.extend(
                _frame_volumes(np.asarray(image), points, validate_voxel_size(voxel), config)
            )
    elif config.data.source == "files":
        volumes = _file_volumes(config)
    else:
        volumes = []
        for i in range(config.data.pool_size):
            volumes.extend(_simulated_volumes(rng, config, config.seed * 10_000 + i))
    patch = tuple(int(p) for p in config.patch_shape)
    X, Y = [], []
    for image, labels, _ in volumes:
        image, labels = _pad_to(image, labels, patch)
        X.append(image)
        Y.append(labels)
    val_volumes = _validation_volumes(config)
    val_pairs = [_pad_to(image, labels, patch) for _, image, labels, _, _ in val_volumes]

    verbose_context = contextlib.nullcontext() if progress else _quiet()
    with verbose_context:
        model = StarDist3D(build_config3d(config), name=output.name, basedir=str(output.parent))
        start_from = resume if resume is not None else config.init_from
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

    log_path = output / "log.csv"
    if log_path.exists():
        log_path.unlink()
    state = {
        "best_f1": -1.0,
        "threshold": 0.5,
        "history": [],
        "epochs": 0,
        "seed": config.seed * 10_000 + 5000,
    }

    class KinetochoreValidation(Callback):
        """Every epoch: our matching F1 on the held-out movies, keep the best weights; refresh data."""

        def on_train_batch_end(self, batch, logs=None):
            if cancelled is not None and cancelled():
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            metrics = _validate(model, val_volumes, config)
            elapsed = time.monotonic() - started
            row = {
                "epoch": epoch + 1,
                "loss": float(logs.get("loss", float("nan"))),
                "val_loss": float(logs.get("val_loss", float("nan"))),
                "val_f1": metrics["f1"],
                "threshold": metrics["threshold"],
                "median_error_nm": metrics["median_error_nm"],
                "seconds": round(elapsed, 1),
                **{f"f1_{k}": v for k, v in metrics["f1_by_level"].items()},
            }
            state["history"].append(row)
            state["epochs"] = epoch + 1
            _append_log(log_path, row)
            if metrics["f1"] > state["best_f1"]:
                state["best_f1"], state["threshold"] = metrics["f1"], metrics["threshold"]
                model.keras_model.save_weights(str(output / "weights_best.h5"))
                _write_info(output, config, metrics, state["history"])
            if progress:
                print(
                    f"epoch {epoch + 1}: loss {row['loss']:.4f}  val F1 {metrics['f1']:.4f} at prob "
                    f"{metrics['threshold']:g}  median error {metrics['median_error_nm']:.0f} nm  ({elapsed:.0f} s)",
                    flush=True,
                )
            if on_epoch is not None:
                on_epoch(row)
            if config.time_limit_min and elapsed > 60 * config.time_limit_min:
                self.model.stop_training = True
            # fresh simulated volumes (domain randomisation), in place: the data generator holds X, Y
            if config.data.source == "simulate" and config.data.refresh_per_epoch:
                for _ in range(config.data.refresh_per_epoch):
                    fresh = _simulated_volumes(rng, config, state["seed"])
                    state["seed"] += 1
                    image, labels = _pad_to(fresh[0][0], fresh[0][1], patch)
                    k = int(rng.integers(len(X)))
                    X[k], Y[k] = image, labels
                    data = getattr(model, "data_train", None)
                    for cache in (
                        getattr(data, "_ind_cache_fg", {}),
                        getattr(data, "_ind_cache_all", {}),
                    ):
                        cache.pop(k, None)

    model.callbacks.append(KinetochoreValidation())
    with verbose_context:
        model.train(
            X,
            Y,
            validation_data=([p[0] for p in val_pairs], [p[1] for p in val_pairs]),
            augmenter=_augmenter(config.seed) if config.augment else None,
            seed=config.seed,
            epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch,
        )
    if not (output / "weights_best.h5").exists():
        raise InputError(
            "training stopped before the first epoch finished; nothing to save", output
        )
    with _quiet():
        model.keras_model.load_weights(str(output / "weights_best.h5"))
    info = _read_info(output)
    info.setdefault("training", {})["history"] = state["history"]
    info["training"]["seconds"] = round(time.monotonic() - started, 1)
    (output / INFO_FILE).write_text(json.dumps(_plain(info), indent=1, allow_nan=False))
    return StarDistTrainResult(
        output,
        float(state["best_f1"]),
        float(state["threshold"]),
        log_path,
        int(state["epochs"]),
        state["history"],
        time.monotonic() - started,
    )
