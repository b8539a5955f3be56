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
- Normalisation: every frame in units of its own noise
  (:func:`normalise_frame`), as in training.
- Model folder: StarDist's own format (``config.json``, ``weights_best.h5``,
  ``thresholds.json``) plus ``kinetochores.json`` (voxel size, normalisation,
  centre method, default threshold, validation metrics).
- Training (:func:`napari_kinetochores.training.stardist.train_stardist`) is
  in :mod:`napari_kinetochores.training.stardist`; its names stay importable
  from here for one release.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_kinetochores.core.normalize import NOISE_UNITS
from napari_kinetochores.errors import InputError

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
    "StarDistDetector",
    "anisotropy_from_voxel_size",
    "instance_centres",
    "n_tiles_for",
    "normalise_frame",
    "require_stardist",
    "stardist_model_path",
]

# Training moved to napari_kinetochores.training.stardist; the old names import lazily
# (training imports this module, so they cannot be imported here at the top).
_MOVED_TO_TRAINING = (
    "StarDistConfig",
    "StarDistNetConfig",
    "StarDistTrainResult",
    "build_config3d",
    "load_stardist_config",
    "stardist_config_from_dict",
    "train_stardist",
)


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_TRAINING:
        from napari_kinetochores.training import stardist as training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


# --------------------------------------------------------------------------- data


def check_normalization(normalization: str) -> None:
    """Refuse a normalisation that is not one of :data:`NORMALIZATIONS`."""
    if normalization not in NORMALIZATIONS:
        raise InputError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def normalise_frame(
    image_zyx: np.ndarray,
    normalization: str = "noise",
    percentiles: Sequence[float] = (1.0, 99.8),
    noise_units: float = NOISE_UNITS,
) -> np.ndarray:
    """A (Z, Y, X) frame as the StarDist network sees it (float32); see ``StarDistConfig``."""
    from napari_kinetochores.core.normalize import normalize_noise, normalize_percentile

    check_normalization(normalization)
    if normalization == "noise":
        return normalize_noise(image_zyx, noise_units).astype(np.float32, copy=False)
    # float32 (the percentiles are float64 scalars, which NumPy 2 would promote to)
    return normalize_percentile(image_zyx, percentiles).astype(np.float32, copy=False)


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


def select_candidates(
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


def predict_candidates(
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


def quiet():
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


def read_model_info(path: Path) -> dict:
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

    with quiet():
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
        info = read_model_info(path)
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

    def for_volume(self, volume, channel: int = 0) -> StarDistDetector:
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
        coords, scores = predict_candidates(
            self.model, normalised, threshold, self.nms_threshold, tiles, self.center
        )
        min_distance = self.min_distance_um if min_distance_um is None else min_distance_um
        return select_candidates(coords, scores, threshold, voxel_size_um, min_distance)

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
