"""Adapters that run each detector of the peer benchmark on one 3D frame.

Every adapter takes a (Z, Y, X) frame and its voxel size (z, y, x) in µm and
returns spot centres in float voxel coordinates (z, y, x) with one score per
spot (higher is surer). Two calls are offered:

``detect(frame, voxel)``
    The method as a user runs it, with its own automatic threshold. This is
    what the speed benchmark times.
``candidates(frame, voxel)``
    The same pipeline with a permissive threshold, plus the score-space value
    of the method's automatic threshold. Keeping the candidates whose score is
    at least that value gives ``detect``'s result (checked by run_peers.py);
    sweeping it gives the oracle-best threshold.

The scale parameters of every method come from the same prior knowledge: the
simulator's nominal PSF sigma (``NOMINAL_PSF_SIGMA_UM``) converted to voxels
with the frame's voxel size. Heavy libraries are imported inside the adapters,
so this module loads in both environments (the project's ``.venv`` runs our
detectors, ``.venv-peers`` runs the peers).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

NOMINAL_PSF_SIGMA_UM = (0.30, 0.10, 0.10)
"""PSF sigma (z, y, x) in µm of the simulator's default optics: the spot size every method is given."""

PEERS = ("bigfish", "bigfish_subpixel", "trackpy", "blob_log", "spotiflow")

LABELS = {
    "classical": "ours: classical (DoG)",
    "unet": "ours: UNet",
    "stardist": "StarDist 3D (our backend)",
    "bigfish": "Big-FISH",
    "bigfish_subpixel": "Big-FISH + fit_subpixel",
    "trackpy": "trackpy",
    "blob_log": "skimage blob_log",
    "spotiflow": "Spotiflow 3D",
}


def sigma_px(voxel_size_um: Sequence[float]) -> np.ndarray:
    """Nominal PSF sigma (z, y, x) in voxels."""
    return np.asarray(NOMINAL_PSF_SIGMA_UM, float) / np.asarray(voxel_size_um, float)


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 3)), np.zeros(0)


class Detector:
    """Base class: ``detect`` and ``candidates`` on one (Z, Y, X) frame."""

    name = "base"

    def settings(self, voxel_size_um: Sequence[float]) -> dict:
        """The parameters the method runs with on this voxel size (for the report)."""
        return {}

    def detect(self, frame: np.ndarray, voxel_size_um) -> tuple[np.ndarray, np.ndarray]:
        coords, scores, auto = self.candidates(frame, voxel_size_um)
        keep = scores >= auto
        return coords[keep], scores[keep]

    def candidates(self, frame: np.ndarray, voxel_size_um) -> tuple[np.ndarray, np.ndarray, float]:
        raise NotImplementedError


class Classical(Detector):
    """Our classical detector: anisotropic DoG, robust-noise threshold (6 sigma), sub-voxel peaks."""

    name = "classical"
    candidate_threshold = 3.0

    def settings(self, voxel_size_um):
        from napari_kinetochores.backends.classical import (
            DEFAULT_MIN_DISTANCE_UM,
            DEFAULT_SPOT_SIGMA_UM,
            DEFAULT_THRESHOLD_SIGMAS,
        )

        return {
            "spot_sigma_um": DEFAULT_SPOT_SIGMA_UM,
            "threshold_sigmas": DEFAULT_THRESHOLD_SIGMAS,
            "min_distance_um": DEFAULT_MIN_DISTANCE_UM,
        }

    def detect(self, frame, voxel_size_um):
        from napari_kinetochores.backends.classical import detect_spots_classical

        return detect_spots_classical(frame, voxel_size_um)

    def candidates(self, frame, voxel_size_um):
        from napari_kinetochores.backends.classical import (
            DEFAULT_THRESHOLD_SIGMAS,
            detect_spots_classical,
        )

        coords, scores = detect_spots_classical(
            frame, voxel_size_um, threshold=self.candidate_threshold
        )
        return coords, scores, float(DEFAULT_THRESHOLD_SIGMAS)


class UNet(Detector):
    """Our UNet (a checkpoint path or bundled name), through the library's detection pipeline."""

    name = "unet"

    def __init__(self, model: str | None = None):
        from napari_kinetochores.backends.unet import UNetDetector

        self.model = model
        self.detector = UNetDetector.load(model, device="cpu")
        self.distance = self.detector.config.target == "distance"

    def settings(self, voxel_size_um):
        info = self.detector.info
        return {
            "model": str(self.model),
            "target": self.detector.config.target,
            "input_channels": list(self.detector.config.image_channels),
            "temporal_window": int(self.detector.config.temporal_window),
            "threshold": float(info.threshold),
            "min_distance_um": float(info.min_distance_um),
            "tile_shape": [int(v) for v in self.detector.tile_shape],
            "single_frames": "the library's model choice (for_volume: bundled default -> single_frame)",
        }

    def needs_channels(self) -> int:
        return max(self.detector.input_channels()) + 1

    def detect_movie(self, movie: np.ndarray, voxel_size_um, threshold=None) -> list:
        """Per frame (coords, scores) of channel 0 of a (T, C, Z, Y, X) movie (temporal models read neighbours)."""
        from napari_kinetochores.io import volume_from_array

        volume = volume_from_array(movie, voxel_size_um, path="peer benchmark movie")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the hand-over warning, once per call
            # the library's model choice: the bundled default hands a single frame (the
            # speed and real-data runs) to the single-frame model, as `kinetochores detect` does
            detector = self.detector.for_volume(volume, 0)
        out = []
        for t in range(volume.n_frames):
            found = detector.detect_frame(volume, t, 0, threshold=threshold)
            coords, scores = found[0][1], found[0][2]
            out.append((np.asarray(coords, float).reshape(-1, 3), np.asarray(scores, float)))
        return out

    def auto_score(self) -> float:
        threshold = float(self.detector.info.threshold)
        return 1.0 - threshold if self.distance else threshold

    def candidate_threshold(self) -> float:
        # scores are 1 - distance for distance models (threshold is a maximum distance)
        return 0.98 if self.distance else 0.02

    def detect(self, frame, voxel_size_um):
        return self.detect_movie(frame[None, None], voxel_size_um)[0]

    def candidates(self, frame, voxel_size_um):
        coords, scores = self.detect_movie(
            frame[None, None], voxel_size_um, self.candidate_threshold()
        )[0]
        return coords, scores, self.auto_score()


class StarDist(Detector):
    """Our StarDist 3D backend (a model folder or the bundled name), one frame at a time."""

    name = "stardist"
    # 0.2, not 0.05: below 0.3 its F1 is far from the peak (0.31 at 0.2 at moderate SNR,
    # bench_stardist's sweep), and 0.05 gave thousands of candidates (31 min for the quick set).
    candidate_threshold = 0.2

    def __init__(self, model: str | None = None):
        from napari_kinetochores.backends.stardist import StarDistDetector

        self.model = model
        self.detector = StarDistDetector.load(model)

    def settings(self, voxel_size_um):
        return {
            "model": str(self.detector.path.name),
            "normalization": self.detector.normalization,
            "center": self.detector.center,
            "prob_thresh": float(self.detector.threshold),
            "nms_thresh": float(self.detector.nms_threshold),
            "tile_shape": [int(v) for v in self.detector.tile_shape],
            "single_frames": "the library's model choice (for_volume: bundled default -> single_frame)",
        }

    def detect(self, frame, voxel_size_um):
        return self.detector.detect_volume(frame, voxel_size_um)

    def candidates(self, frame, voxel_size_um):
        coords, scores = self.detector.detect_volume(
            frame, voxel_size_um, threshold=self.candidate_threshold
        )
        return coords, scores, float(self.detector.threshold)


class BigFish(Detector):
    """Big-FISH ``detect_spots``: LoG filter, local maxima, automatic (elbow) threshold.

    ``voxel_size`` and ``spot_radius`` in nm; the spot radius is the nominal
    PSF sigma, which Big-FISH uses as the LoG sigma and the minimum distance.
    """

    name = "bigfish"
    candidate_floor = 0.5
    """Candidates: local maxima above this fraction of the automatic threshold (the oracle's range)."""

    def _params(self, voxel_size_um):
        voxel_nm = tuple(float(v) * 1000 for v in voxel_size_um)
        radius_nm = tuple(float(s) * 1000 for s in NOMINAL_PSF_SIGMA_UM)
        return voxel_nm, radius_nm

    def settings(self, voxel_size_um):
        voxel_nm, radius_nm = self._params(voxel_size_um)
        return {
            "voxel_size_nm": voxel_nm,
            "spot_radius_nm": radius_nm,
            "threshold": "automatic (elbow)",
        }

    def detect(self, frame, voxel_size_um):
        import bigfish.detection as detection

        voxel_nm, radius_nm = self._params(voxel_size_um)
        image = np.ascontiguousarray(frame, dtype=np.float32)
        spots, _ = detection.detect_spots(
            image, threshold=None, return_threshold=True, voxel_size=voxel_nm, spot_radius=radius_nm
        )
        return np.asarray(spots, float).reshape(-1, 3), np.ones(len(spots))

    def candidates(self, frame, voxel_size_um):
        import bigfish.detection as detection
        import bigfish.stack as stack

        voxel_nm, radius_nm = self._params(voxel_size_um)
        image = np.ascontiguousarray(frame, dtype=np.float32)
        radius_px = detection.get_object_radius_pixel(
            voxel_size_nm=voxel_nm, object_radius_nm=radius_nm, ndim=3
        )
        filtered = stack.log_filter(image, radius_px)
        mask = detection.local_maximum_detection(filtered, min_distance=radius_px)
        auto = float(detection.automated_threshold_setting(filtered, mask))
        # Big-FISH keeps values > threshold; scores >= the next float up select the same spots.
        auto = float(np.nextafter(np.float32(auto), np.float32(np.inf)))
        floor = self.candidate_floor * auto if auto > 0 else auto
        spots, _ = detection.spots_thresholding(filtered, mask, floor, remove_duplicate=True)
        n_auto = int(np.count_nonzero(filtered[mask] > auto))
        keep = max(3 * n_auto, 150)  # the strongest candidates are enough for the oracle sweep
        if len(spots) > keep:
            values = filtered[tuple(np.asarray(spots).T)]
            spots = np.asarray(spots)[np.argsort(values)[::-1][:keep]]
        spots = np.asarray(spots, int).reshape(-1, 3)
        return spots.astype(float), filtered[tuple(spots.T)].astype(float), auto


class BigFishSubpixel(BigFish):
    """Big-FISH ``detect_spots`` followed by its ``fit_subpixel`` (a gaussian fit per spot)."""

    name = "bigfish_subpixel"
    candidate_floor = 0.8  # one gaussian fit per candidate is slow: a narrower oracle range

    def settings(self, voxel_size_um):
        return {**super().settings(voxel_size_um), "subpixel": "bigfish.detection.fit_subpixel"}

    def _fit(self, frame, spots, voxel_size_um):
        import bigfish.detection as detection

        voxel_nm, radius_nm = self._params(voxel_size_um)
        if len(spots) == 0:
            return np.zeros((0, 3))
        image = np.ascontiguousarray(frame, dtype=np.float32)
        fitted = detection.fit_subpixel(
            image, np.asarray(spots, np.int64), voxel_size=voxel_nm, spot_radius=radius_nm
        )
        return np.asarray(fitted, float)[:, :3]

    def detect(self, frame, voxel_size_um):
        spots, scores = super().detect(frame, voxel_size_um)
        return self._fit(frame, spots, voxel_size_um), scores

    def candidates(self, frame, voxel_size_um):
        spots, scores, auto = super().candidates(frame, voxel_size_um)
        return self._fit(frame, spots, voxel_size_um), scores, auto


def _odd_ceil(value: float) -> int:
    n = math.ceil(value)
    return n if n % 2 == 1 else n + 1


def trackpy_minmass(frame: np.ndarray) -> float:
    """trackpy's documented ``minmass`` rule: 100 for integer images, 1 for float images.

    (``trackpy.locate``'s docstring: "Recommended minimum values are 100 for
    integer images and 1 for float images".) Frames travel as float32, so an
    integer image is recognised by its values.

    Examples
    --------
    >>> trackpy_minmass(np.array([[1.0, 2.0]], np.float32)), trackpy_minmass(np.array([0.5]))
    (100.0, 1.0)
    """
    values = np.asarray(frame)
    integer = np.issubdtype(values.dtype, np.integer) or bool(np.all(values == np.round(values)))
    return 100.0 if integer else 1.0


class Trackpy(Detector):
    """trackpy ``locate`` in 3D: anisotropic diameter (odd integers per axis), mass as the score.

    diameter = the smallest odd integer >= 4 nominal PSF sigmas (in voxels) per
    axis; ``minmass`` by trackpy's documented rule (:func:`trackpy_minmass`);
    everything else (separation = diameter + 1, percentile) is trackpy's default.
    """

    name = "trackpy"

    def diameter(self, voxel_size_um) -> tuple[int, int, int]:
        return tuple(_odd_ceil(4 * s) for s in sigma_px(voxel_size_um))

    def settings(self, voxel_size_um):
        import trackpy

        return {
            "diameter": self.diameter(voxel_size_um),
            "minmass": "100 for integer images, 1 for float images (trackpy's docstring)",
            "engine": "auto",
            "numba": _has("numba"),
            "version": trackpy.__version__,
        }

    def _locate(self, frame, voxel_size_um, minmass: float):
        import trackpy

        trackpy.quiet()
        return trackpy.locate(
            np.asarray(frame, np.float32), self.diameter(voxel_size_um), minmass=minmass
        )

    def detect(self, frame, voxel_size_um):
        features = self._locate(frame, voxel_size_um, trackpy_minmass(frame))
        return features[["z", "y", "x"]].to_numpy(float), features["mass"].to_numpy(float)

    def candidates(self, frame, voxel_size_um):
        features = self._locate(frame, voxel_size_um, 0.0)
        # trackpy keeps mass > minmass; scores >= the next float up select the same features
        auto = float(np.nextafter(trackpy_minmass(frame), np.inf))
        return features[["z", "y", "x"]].to_numpy(float), features["mass"].to_numpy(float), auto


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class BlobLog(Detector):
    """scikit-image ``blob_log`` with anisotropic sigmas (z, y, x), threshold from the image's noise.

    The frame is min-max normalised to [0, 1] (as ``img_as_float`` would do
    for a full-range image); sigmas go from 0.8x to 1.25x the nominal PSF
    sigma in 3 steps. ``threshold`` (an absolute bound on the scale-normalised
    LoG response) is ``noise_sigmas`` times the robust standard deviation
    (1.4826 × MAD) of that response at the smallest sigma, the noisiest
    level of the scale space, over the voxels above the image's minimum (a
    background-subtracted image clips its noise there): a 5-sigma (Rose
    criterion) call on each image's own noise, where skimage's default 0.2
    depends on the image's range. The score of a blob is its scale-normalised
    LoG response, the quantity ``threshold`` acts on. Overlap pruning is
    skimage's (it keeps the larger blob, whatever the score), so a candidate
    sweep is close to, not exactly, re-running blob_log at each threshold;
    run_peers.py reports the difference at the automatic threshold.
    """

    name = "blob_log"
    scales = (0.8, 1.25)
    num_sigma = 3
    noise_sigmas = 5.0
    candidate_fraction = 0.25
    """Candidates: blobs above this fraction of the automatic threshold (the oracle's range)."""

    def settings(self, voxel_size_um):
        sigma = sigma_px(voxel_size_um)
        return {
            "min_sigma": [round(float(v), 3) for v in sigma * self.scales[0]],
            "max_sigma": [round(float(v), 3) for v in sigma * self.scales[1]],
            "num_sigma": self.num_sigma,
            "threshold": f"{self.noise_sigmas:g} x robust sd of the LoG response at min_sigma",
            "normalisation": "min-max to [0, 1]",
        }

    @staticmethod
    def _normalise(frame):
        image = np.asarray(frame, np.float32)
        low, high = float(image.min()), float(image.max())
        return (image - low) / max(high - low, 1e-12)

    def threshold(self, image, voxel_size_um) -> float:
        """``noise_sigmas`` robust standard deviations of the scale-normalised LoG response at min_sigma."""
        from scipy import ndimage

        sigma = sigma_px(voxel_size_um) * self.scales[0]
        response = -ndimage.gaussian_laplace(image, sigma) * float(np.mean(sigma)) ** 2
        # background-subtracted data clip the noise at a floor: its voxels carry no noise
        above_floor = response[image > image.min()]
        values = above_floor if above_floor.size else response.ravel()
        mad = float(np.median(np.abs(values - np.median(values))))
        return self.noise_sigmas * 1.4826 * mad

    def _run(self, image, voxel_size_um, threshold):
        from skimage.feature import blob_log

        sigma = sigma_px(voxel_size_um)
        return blob_log(
            image,
            min_sigma=tuple(sigma * self.scales[0]),
            max_sigma=tuple(sigma * self.scales[1]),
            num_sigma=self.num_sigma,
            threshold=threshold,
        )

    def _scores(self, image, blobs):
        from scipy import ndimage

        if len(blobs) == 0:
            return np.zeros(0)
        coords = np.round(blobs[:, :3]).astype(int)
        sigmas = blobs[:, 3:6]
        scores = np.zeros(len(blobs))
        for sigma in np.unique(sigmas, axis=0):
            rows = np.all(sigmas == sigma, axis=1)
            response = -ndimage.gaussian_laplace(image, sigma) * float(np.mean(sigma)) ** 2
            scores[rows] = response[tuple(coords[rows].T)]
        return scores

    def detect(self, frame, voxel_size_um):
        image = self._normalise(frame)
        blobs = self._run(image, voxel_size_um, self.threshold(image, voxel_size_um))
        return blobs[:, :3].astype(float), np.ones(len(blobs))

    def candidates(self, frame, voxel_size_um):
        image = self._normalise(frame)
        auto = self.threshold(image, voxel_size_um)
        blobs = self._run(image, voxel_size_um, self.candidate_fraction * auto)
        return blobs[:, :3].astype(float), self._scores(image, blobs), auto


class Spotiflow(Detector):
    """Spotiflow 3D trained by ``train_spotiflow.py``; its own optimised probability threshold."""

    name = "spotiflow"
    candidate_threshold = 0.05

    def __init__(self, model_dir: str):
        import torch
        from spotiflow.model import Spotiflow as Model

        torch.set_num_threads(max(1, torch.get_num_threads()))
        self.model_dir = model_dir
        self.model = Model.from_folder(model_dir, map_location="cpu")
        self.model.eval()

    def settings(self, voxel_size_um):
        return {
            "model_dir": str(self.model_dir),
            "prob_thresh": float(self.model._prob_thresh[0]),
            "subpix": True,
            "grid": list(self.model.config.grid),
        }

    def _predict(self, frame, prob_thresh):
        points, details = self.model.predict(
            np.asarray(frame, np.float32),
            prob_thresh=prob_thresh,
            subpix=True,
            verbose=False,
            device="cpu",
        )
        return np.asarray(points, float).reshape(-1, 3), np.asarray(details.prob, float).reshape(-1)

    def detect(self, frame, voxel_size_um):
        return self._predict(frame, None)

    def candidates(self, frame, voxel_size_um):
        coords, prob = self._predict(frame, self.candidate_threshold)
        return coords, prob, float(self.model._prob_thresh[0])


def make_detector(name: str, model: str | None = None) -> Detector:
    """The adapter of a method by name; ``model`` is the UNet checkpoint or the Spotiflow folder."""
    classes = {
        "classical": Classical,
        "bigfish": BigFish,
        "bigfish_subpixel": BigFishSubpixel,
        "trackpy": Trackpy,
        "blob_log": BlobLog,
    }
    if name == "unet":
        return UNet(model)
    if name == "spotiflow":
        return Spotiflow(model)
    if name == "stardist":
        return StarDist(model)
    return classes[name]()
