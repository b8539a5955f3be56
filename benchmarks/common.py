"""What the benchmark scripts share: held-out conditions and movies, accuracy, sweeps, formatting.

- :data:`CONDITIONS` and :func:`make_movies`: the held-out simulated movies
  (seeds never used in training) that the detection, StarDist and peer
  benchmarks all score on; :func:`foreign_render` renders two of them
  without our simulator's renderer.
- :func:`evaluate_method`: pooled accuracy of one detection method on such
  movies, through the library's ``detect_movie`` (what ``kinetochores detect``
  finds).
- :func:`f1_by_threshold` and :func:`threshold_sweep`: F1 against a score
  threshold, counts pooled over frames and movies.
- :func:`big_frame` and :func:`run_speed`: time and peak memory of one large
  frame, in a fresh process.
- :func:`peak_rss_mb` and :func:`rss_mb`: a process's own memory high-water
  mark (VmHWM) and current resident size (VmRSS), the one way every
  benchmark measures memory.
- :func:`frame_counts` and :func:`bootstrap_ci`: per-frame matching counts,
  and 95 % intervals of pooled F1 and median error from a two-level
  bootstrap over movies, then frames.
- :func:`num`, :func:`seconds`, :func:`table`, :func:`bold_best`: numbers and
  markdown tables for the reports.

The scripts are modules of this package, run from the repository root, e.g.
``python -m benchmarks.bench_detection --quick``.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
VOXEL_UM = (0.30, 0.13, 0.13)
"""Voxel size (z, y, x) in µm of the benchmark frames (the simulator's default)."""
HELD_OUT_SEED = 900_000
"""Seeds of the held-out movies start here; training never uses them."""
CUTOFF_UM = 0.3
"""Main matching cutoff (µm)."""

CONDITIONS = {
    "very_low SNR": {"snr": "very_low"},
    "low SNR": {"snr": "low"},
    "moderate SNR": {"snr": "moderate"},
    "high SNR": {"snr": "high"},
    "low SNR + clutter": {"snr": "low", "n_clutter": 6, "clutter_rel": 1.0},
    "moderate, dense (40 pairs)": {"snr": "moderate", "n_pairs": 40},
    "moderate, Moffat PSF + EMCCD": {
        "snr": "moderate",
        "render_style": "moffat",
        "noise_model": "emccd",
    },
    "moderate, wide PSF": {"snr": "moderate", "psf_sigma_um": (0.38, 0.13, 0.13)},
    "moderate, foreign renderer": {"snr": "moderate", "foreign": True},
    "low, foreign renderer": {"snr": "low", "foreign": True},
}
"""Held-out conditions: ``SimulationParams`` fields, the SNR by level name; ``foreign``
renders the simulated positions with :func:`foreign_render` instead."""

TRAINING_DISTRIBUTION = {
    "very_low SNR": "inside",
    "low SNR": "inside",
    "moderate SNR": "inside",
    "high SNR": "inside",
    "low SNR + clutter": "inside",
    "moderate, dense (40 pairs)": "inside",
    "moderate, Moffat PSF + EMCCD": "inside",
    "moderate, wide PSF": "inside (xy sigma at the +30 % edge)",
    "moderate, foreign renderer": "outside",
    "low, foreign renderer": "outside",
    # the peer benchmark's extra conditions
    "moderate, anisotropic voxels (z 0.5 µm)": "outside (z voxel beyond +15 %)",
    "very_low SNR + clutter": "inside",
}
"""Whether each of :data:`CONDITIONS` lies inside the UNets' training distribution
(``napari_kinetochores.simulate.sample_params``: SNR very_low..high, 5..46 pairs,
1..8 clutter blobs at 0.3..1.5 × the spot peak, Moffat in 35 %, EMCCD in 30 %, PSF
sigma ±30 %, voxel size ±15 %); the foreign renderer is not our simulator."""


# ----------------------------------------------------------------------------- movies


def foreign_render(points, shape_zyx, n_frames: int, snr: float, seed: int) -> np.ndarray:
    """Render ground-truth positions with an independent renderer (not the simulator's).

    Point sources (channel 0 rows of ``points``, a simulator point table) on
    a 3× finer grid, convolved with a two-component PSF (a core gaussian plus
    a wide, dim halo, longer in z), binned 3 × 3 × 3, on a sloped background,
    with Poisson noise and gaussian read noise. ``snr`` is the median spot
    peak over the noise sigma. Returns (T, 1, Z, Y, X) float32.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    factor = 3
    fine_shape = tuple(int(s) * factor for s in shape_zyx)
    frames = []
    core_sigma = np.array([0.28, 0.095, 0.095]) / np.asarray(VOXEL_UM) * factor
    halo_sigma = core_sigma * np.array([2.0, 2.5, 2.5])
    for t in range(n_frames):
        fine = np.zeros(fine_shape, np.float32)
        rows = points[(points["t"] == t) & (points["channel"] == 0)]
        brightness = rng.lognormal(0.0, 0.25, len(rows))
        idx = np.clip(
            np.round(rows[["z", "y", "x"]].to_numpy() * factor + (factor - 1) / 2).astype(int),
            0,
            np.asarray(fine_shape) - 1,
        )
        np.add.at(fine, tuple(idx.T), brightness)
        psf = ndimage.gaussian_filter(fine, core_sigma) + 0.15 * ndimage.gaussian_filter(
            fine, halo_sigma
        )
        binned = psf.reshape(shape_zyx[0], factor, shape_zyx[1], factor, shape_zyx[2], factor).sum(
            (1, 3, 5)
        )
        centres = np.clip(
            np.round(rows[["z", "y", "x"]].to_numpy()).astype(int), 0, np.asarray(shape_zyx) - 1
        )
        peak = np.percentile(binned[tuple(centres.T)], 50)
        background = 20.0 * (1 + 0.5 * np.linspace(0, 1, shape_zyx[2]))[None, None, :]
        noise_sd = np.sqrt(background.mean() + 2.0**2)
        signal = binned / max(peak, 1e-9) * snr * noise_sd
        photons = rng.poisson(np.maximum(signal + background, 0)).astype(np.float32)
        frames.append(photons + rng.normal(0, 2.0, photons.shape).astype(np.float32) + 100)
    return np.stack(frames)[:, None]


def make_movies(condition: dict, n_movies: int, n_frames: int) -> list:
    """Held-out simulated movies of one condition, 32 × 128 × 128 voxels per frame.

    Parameters
    ----------
    condition
        One value of :data:`CONDITIONS` (or a dict like it).
    n_movies, n_frames
        How many movies, and time points per movie.

    Returns
    -------
    list of (Volume, pandas.DataFrame)
        The float32 movie (T, C, Z, Y, X) as a
        :class:`napari_kinetochores.io.Volume`, and its true spots (the
        simulator's point table: ``t, z, y, x`` in voxels, ``channel``, ...).
        The seed depends only on the condition and the movie's index, so every
        benchmark scores the same movies.
    """
    from napari_kinetochores.io import volume_from_array
    from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams, simulate_movie

    movies = []
    for k in range(n_movies):
        values = {key: value for key, value in condition.items() if key != "foreign"}
        values["snr"] = SNR_LEVELS[values["snr"]]
        params = SimulationParams(n_frames=n_frames, shape_zyx=(32, 128, 128), **values)
        seed = (
            HELD_OUT_SEED
            + 1000 * k
            + zlib.crc32(json.dumps(condition, sort_keys=True).encode()) % 997
        )
        movie = simulate_movie(params, seed=seed)
        image = movie.image.astype(np.float32)
        if condition.get("foreign"):
            image = foreign_render(movie.points, params.shape_zyx, n_frames, params.snr, seed)
        volume = volume_from_array(image, params.voxel_size_um, path=f"held-out movie {k}")
        movies.append((volume, movie.points))
    return movies


def true_spots(points, t: int, channel: int = 0) -> np.ndarray:
    """(N, 3) voxel coordinates (z, y, x) of one frame and channel of a simulator point table."""
    return points[(points["t"] == t) & (points["channel"] == channel)][["z", "y", "x"]].to_numpy()


def big_frame(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A (3, 1, 61, 1000, 1000) uint16 movie, as a camera writes it, and the true spots (N, 3) of frame 1.

    Three frames, so a temporal model gets real neighbours; the benchmarks
    detect frame 1 only. ``"cell"``: one simulated 61 × 256 × 256 cell region
    in the centre of a noisy empty field (real cells fill a small part of the
    field). ``"everywhere"``: a (3, 1, 61, 512, 512) field tiled with cell
    regions, so no tile can be skipped.
    """
    from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams, simulate_movie

    rng = np.random.default_rng(7)
    movie = simulate_movie(
        SimulationParams(
            n_frames=3, shape_zyx=(61, 256, 256), n_pairs=40, snr=SNR_LEVELS["moderate"]
        ),
        seed=7,
    )
    cell = movie.image[:, 0]
    points = movie.points
    spots = points[(points["channel"] == 0) & (np.round(points["t"]) == 1)][
        ["z", "y", "x"]
    ].to_numpy(float)
    background = float(np.median(cell[1]))
    noise = float(np.std(cell[1, :, :8, :8].astype(np.float32)))
    if kind == "cell":
        field = np.empty((3, 61, 1000, 1000), np.uint16)
        for plane in field.reshape(-1, 1000, 1000):  # plane by plane: no float64 copy
            plane[...] = np.clip(np.round(rng.normal(background, noise, plane.shape)), 0, 65535)
        field[:, :, 372:628, 372:628] = cell
        truth = spots + (0, 372, 372)
    else:
        field = np.tile(cell, (1, 1, 2, 2))
        truth = np.concatenate([spots + (0, dy, dx) for dy in (0, 256) for dx in (0, 256)])
    return field[:, None], truth


# ----------------------------------------------------------------------------- accuracy

_CHANNELS: dict[str, int] = {}


def model_channels(model: str) -> int:
    """How many movie channels a UNet checkpoint (path or bundled name) reads (cached)."""
    if model not in _CHANNELS:
        from napari_kinetochores.nn.checkpoint import bundled_model_path, load_checkpoint

        _CHANNELS[model] = len(load_checkpoint(bundled_model_path(model)).config.image_channels)
    return _CHANNELS[model]


def evaluate_method(
    method: str,
    model: str | None,
    movies: list,
    predictions: list | None = None,
    **options,
) -> dict | None:
    """Pooled accuracy of one method on ``movies`` (what ``kinetochores detect`` finds).

    Parameters
    ----------
    method, model
        :class:`~napari_kinetochores.detection.DetectionOptions` ``method``
        and ``model`` (path or bundled name; None: the default).
    movies
        (volume, truth) pairs from :func:`make_movies`.
    predictions
        If given (UNet only), receives one list per movie of the network's
        output per frame, so that :func:`threshold_sweep` needs no second pass.
    **options
        Further ``DetectionOptions`` (``precision``, ``test_time_flips``).

    Returns
    -------
    dict or None
        :func:`pooled_accuracy` of the movies' frames: F1 at 0.3 and 0.15 µm,
        precision and recall at 0.3 µm (counts summed over the frames), the
        median and 95th-percentile error (nm) of all matched pairs, 95 %
        bootstrap intervals (``ci95``) and the per-frame counts (``frames``).
        None when a UNet needs more channels than the movies have.
    """
    from napari_kinetochores.detection import DetectionOptions, detect_movie

    chosen = DetectionOptions(method=method, model=model, **options)
    frames = []
    for k, (volume, truth) in enumerate(movies):
        needs_two = method == "unet" and model is not None and model_channels(model) > 1
        if needs_two and volume.n_channels < 2:
            return None
        kept = None
        if predictions is not None:
            kept = []
            predictions.append(kept)
        detections = detect_movie(
            volume,
            chosen,
            progress=False,
            on_prediction=None if kept is None else (lambda t, p, kept=kept: kept.append(p)),
        )
        for t in range(volume.n_frames):
            found = detections[detections["t"] == t][["z", "y", "x"]].to_numpy()
            frames.append(frame_counts(found, true_spots(truth, t), volume.voxel_size_um, k))
    return pooled_accuracy(frames)


def pooled_accuracy(frames: list[dict]) -> dict:
    """Pooled metrics of per-frame counts (:func:`frame_counts`), their intervals and the counts.

    F1 at 0.3 and 0.15 µm, precision and recall at 0.3 µm (counts summed
    over frames), median and 95th-percentile error (nm) of all matched pairs,
    ``ci95`` from :func:`bootstrap_ci`, and ``frames`` itself.
    """
    tp = sum(f["tp"] for f in frames)
    tp15 = sum(f["tp15"] for f in frames)
    n_pred = sum(f["n_pred"] for f in frames)
    n_gt = sum(f["n_gt"] for f in frames)
    errors = np.concatenate([np.asarray(f["errors_nm"], float) for f in frames] + [np.zeros(0)])
    return {
        "f1@0.3": 2 * tp / max(n_pred + n_gt, 1),
        "f1@0.15": 2 * tp15 / max(n_pred + n_gt, 1),
        "precision@0.3": tp / max(n_pred, 1),
        "recall@0.3": tp / max(n_gt, 1),
        "median_nm": float(np.median(errors)) if errors.size else None,
        "p95_nm": float(np.percentile(errors, 95)) if errors.size else None,
        "ci95": bootstrap_ci(frames),
        "frames": frames,
    }


def frame_counts(found: np.ndarray, truth: np.ndarray, voxel_size_um, movie: int) -> dict:
    """Matching counts of one frame, the unit :func:`bootstrap_ci` resamples.

    Parameters
    ----------
    found, truth
        (N, 3) and (M, 3) coordinates (z, y, x) in voxels.
    voxel_size_um
        (z, y, x) in µm.
    movie
        Index of the movie the frame belongs to (the outer bootstrap level).

    Returns
    -------
    dict
        ``movie``, ``tp`` (at 0.3 µm), ``tp15`` (at 0.15 µm), ``n_pred``,
        ``n_gt`` and ``errors_nm``: the 3D distances of the matched pairs
        at 0.3 µm in nm (one decimal).

    Examples
    --------
    >>> truth = np.array([[5.0, 5.0, 5.0], [5.0, 30.0, 30.0]])
    >>> counts = frame_counts(truth[:1] + (0, 0.5, 0), truth, (0.3, 0.13, 0.13), movie=0)
    >>> counts["tp"], counts["n_pred"], counts["n_gt"], counts["errors_nm"]
    (1, 1, 2, [65.0])
    """
    from napari_kinetochores.analysis.matching import match_points

    result = match_points(found, truth, voxel_size_um, CUTOFF_UM)
    tp15 = match_points(found, truth, voxel_size_um, 0.15).tp
    return {
        "movie": int(movie),
        "tp": int(result.tp),
        "tp15": int(tp15),
        "n_pred": int(result.n_pred),
        "n_gt": int(result.n_gt),
        "errors_nm": [round(float(d) * 1000, 1) for d in result.distances_um],
    }


def bootstrap_ci(
    frames: Sequence[dict], n_resamples: int = 2000, seed: int = 0
) -> dict[str, list[float] | None]:
    """95 % percentile intervals of pooled F1, precision, recall and median error (two-level bootstrap).

    Each resample draws the movies with replacement, then, within each drawn
    movie, its frames with replacement; F1 = 2 TP / (predictions + true
    spots), precision, recall and the median error pool the drawn frames, as
    the point estimates do.

    Parameters
    ----------
    frames
        Per frame, a dict with ``movie``, ``tp``, ``n_pred``, ``n_gt`` and
        (optionally) ``errors_nm`` (see :func:`frame_counts`).
    n_resamples, seed
        Bootstrap resamples, and the seed of their generator (fixed, so
        the report regenerates the same intervals).

    Returns
    -------
    dict
        ``{"f1": [low, high], "precision": [...], "recall": [...],
        "median_nm": [low, high] or None}`` (None without matched pairs).

    Examples
    --------
    >>> frames = [
    ...     {"movie": m, "tp": tp, "n_pred": 40, "n_gt": 40, "errors_nm": [30.0, 40.0]}
    ...     for m, tp in [(0, 38), (0, 36), (1, 40), (1, 39)]
    ... ]
    >>> ci = bootstrap_ci(frames, n_resamples=200)
    >>> ci["f1"][0] < 0.956 < ci["f1"][1], ci["median_nm"]
    (True, [35.0, 35.0])
    """
    rng = np.random.default_rng(seed)
    counts = np.array([[f["tp"], f["n_pred"], f["n_gt"]] for f in frames], dtype=float)
    errors = [np.asarray(f.get("errors_nm", []), float) for f in frames]
    movies = np.array([f["movie"] for f in frames])
    groups = [np.flatnonzero(movies == m) for m in np.unique(movies)]
    rates = np.empty((n_resamples, 3))
    median = np.full(n_resamples, np.nan)
    for b in range(n_resamples):
        drawn = [groups[m] for m in rng.integers(0, len(groups), len(groups))]
        rows = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in drawn])
        tp, n_pred, n_gt = counts[rows].sum(axis=0)
        rates[b] = (
            2 * tp / (n_pred + n_gt) if n_pred + n_gt else 1.0,
            tp / n_pred if n_pred else 1.0,
            tp / n_gt if n_gt else 1.0,
        )
        pooled = np.concatenate([errors[r] for r in rows])
        if pooled.size:
            median[b] = np.median(pooled)
    low, high = np.percentile(rates, [2.5, 97.5], axis=0)
    finite = median[np.isfinite(median)]
    out: dict[str, list[float] | None] = {
        key: [round(float(low[k]), 4), round(float(high[k]), 4)]
        for k, key in enumerate(("f1", "precision", "recall"))
    }
    out["median_nm"] = (
        [round(float(v), 1) for v in np.percentile(finite, [2.5, 97.5])] if finite.size else None
    )
    return out


# ----------------------------------------------------------------------------- threshold sweeps


def f1_by_threshold(
    frames: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, Sequence[float]]],
    thresholds: Sequence[float],
    *,
    inclusive: bool,
    cutoff_um: float = CUTOFF_UM,
) -> np.ndarray:
    """F1 for each score threshold, with TP and point counts pooled over ``frames``.

    Parameters
    ----------
    frames
        Per frame: candidate coordinates (N, 3) in voxels, their scores (N,),
        the true spots (M, 3) in voxels and the voxel size (z, y, x) in µm.
    thresholds
        Score thresholds to try.
    inclusive
        Keep candidates with ``score >= threshold`` (True) or ``> threshold``.
    cutoff_um
        Matching cutoff in µm.

    Returns
    -------
    numpy.ndarray
        (len(thresholds),) F1, 2 TP / (predictions + true spots).

    Examples
    --------
    >>> coords = np.array([[5.0, 5.0, 5.0], [20.0, 20.0, 20.0]])
    >>> frame = (coords, np.array([0.9, 0.4]), coords[:1], (0.3, 0.13, 0.13))
    >>> f1_by_threshold([frame], [0.3, 0.5], inclusive=False).round(3).tolist()
    [0.667, 1.0]
    """
    from napari_kinetochores.analysis.matching import match_points

    counts = np.zeros((len(thresholds), 3))
    for coords, scores, truth, voxel_size_um in frames:
        for k, threshold in enumerate(thresholds):
            keep = scores >= threshold if inclusive else scores > threshold
            result = match_points(coords[keep], truth, voxel_size_um, cutoff_um)
            counts[k] += (result.tp, result.n_pred, result.n_gt)
    return 2 * counts[:, 0] / np.maximum(counts[:, 1] + counts[:, 2], 1)


def threshold_sweep(
    movies_by_condition: dict[str, list],
    candidates: Callable[[str, int, object, int], tuple[np.ndarray, np.ndarray]],
    thresholds: Sequence[float],
    *,
    inclusive: bool,
) -> dict[str, dict[str, float]]:
    """F1 at 0.3 µm against the score threshold, per condition, on channel 0 of every frame.

    ``candidates(condition, movie_index, volume, t)`` returns the (N, 3)
    coordinates and (N,) scores of one frame, down to the lowest threshold;
    ``inclusive`` as in :func:`f1_by_threshold`. Returns
    ``{condition: {"0.3": F1, ...}}``.
    """
    out = {}
    for name, movies in movies_by_condition.items():
        frames = (
            (*candidates(name, k, volume, t), true_spots(truth, t), volume.voxel_size_um)
            for k, (volume, truth) in enumerate(movies)
            for t in range(volume.n_frames)
        )
        f1 = f1_by_threshold(frames, thresholds, inclusive=inclusive)
        out[name] = {f"{t:g}": float(v) for t, v in zip(thresholds, f1, strict=True)}
    return out


# ----------------------------------------------------------------------------- memory


def _proc_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's own high-water resident memory in MB: VmHWM on Linux.

    Not ``ru_maxrss``: Linux carries it over ``fork`` + ``exec``, so a
    subprocess started by a 1 GB benchmark driver reports at least 1 GB
    whatever it used; VmHWM starts afresh with the process's own memory.
    Elsewhere (no /proc) falls back to ``ru_maxrss``.

    Examples
    --------
    >>> peak_rss_mb() >= rss_mb() > 0
    True
    """
    value = _proc_status_mb("VmHWM")
    if value is not None:
        return value
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def rss_mb() -> float:
    """This process's resident memory now, in MB (VmRSS; psutil where there is no /proc)."""
    value = _proc_status_mb("VmRSS")
    if value is not None:
        return value
    import psutil

    return psutil.Process().memory_info().rss / 2**20


# ----------------------------------------------------------------------------- speed

SPEED_SNIPPET = r"""
import json, time
import numpy as np
from benchmarks.common import big_frame, peak_rss_mb
from napari_kinetochores.detection import DetectionOptions, detect_movie
from napari_kinetochores.io import volume_from_array
frame, truth = big_frame({kind!r})
volume = volume_from_array(frame, {voxel!r}, path="big frame ({kind})")
rss_before_mb = peak_rss_mb()  # the frame itself, imports
options = DetectionOptions(method={method!r}, model={model!r}, tile_shape={tile!r}, **{options!r})
timings = {{}}
if {method!r} == "unet":
    import napari_kinetochores.backends.unet as unet
    original = unet.predict_volume
    def timed(*args, **kwargs):
        kwargs["timings"] = timings
        return original(*args, **kwargs)
    unet.predict_volume = timed
extra = {{}}
if {warm_repeats!r}:
    # Per-frame cost of a loaded model: what each frame of a movie costs after the first.
    from napari_kinetochores.backends.unet import UNetDetector
    start = time.perf_counter()
    detector = UNetDetector.from_options(options).for_volume(volume)
    extra["load_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    detector.detect_frame(volume, 0)
    extra["first_frame_seconds"] = time.perf_counter() - start
    runs = []
    for _ in range({warm_repeats!r}):
        timings.clear()
        start = time.perf_counter()
        coords = detector.detect_frame(volume, 1)[0][1]
        runs.append((time.perf_counter() - start, dict(timings)))
    extra["warm_runs"] = [{{"seconds": s, **t}} for s, t in runs]
    seconds, timings = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
else:
    start = time.perf_counter()
    points = detect_movie(volume, options, frames=[1], progress=False)
    seconds = time.perf_counter() - start
    coords = points[["z", "y", "x"]].to_numpy()
from napari_kinetochores.analysis.matching import match_points
match = match_points(coords, truth, {voxel!r}, 0.3)
print(json.dumps({{"seconds": seconds, "n": len(coords), "timings": timings, "f1@0.3": match.f1,
                  "tp": match.tp, "n_true": len(truth),
                  "rss_before_mb": rss_before_mb,
                  "peak_rss_mb": peak_rss_mb(), "memory": "VmHWM", **extra}}))
"""


def run_speed(
    method: str,
    model: str | None,
    kind: str,
    tile_shape: Sequence[int] | None = None,
    warm_repeats: int = 0,
    **options,
) -> dict:
    """Detection on frame 1 of :func:`big_frame` in a fresh process: seconds, timings, memory, F1.

    By default one cold call of ``detect_movie`` (imports and model loading
    included: what a one-frame job costs). With ``warm_repeats`` (UNet only)
    the model is loaded and run on frame 0 first, then frame 1 is detected
    that many times and the median run is reported: the per-frame cost inside
    a movie, which the share of time outside the forward pass is about.
    ``options`` are further ``DetectionOptions`` (``precision``, ...).
    UNet runs report the forward pass in ``timings`` (``forward_s``,
    ``tiles``, ``skipped_tiles``).
    """
    code = SPEED_SNIPPET.format(
        warm_repeats=warm_repeats,
        kind=kind,
        voxel=VOXEL_UM,
        method=method,
        model=model,
        tile=tile_shape,
        options=options,
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- formatting


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def num(value, digits: int = 3) -> str:
    """A number for a table: ints as they are, floats with ``digits`` decimals, "–" for none.

    Examples
    --------
    >>> num(0.98765), num(3), num(None), num(float("nan")), num(36.14, 1)
    ('0.988', '3', '–', '–', '36.1')
    """
    if _missing(value):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def seconds(value) -> str:
    """A duration: milliseconds below 0.1 s, two decimals below 10 s, whole seconds above.

    Examples
    --------
    >>> seconds(0.0123), seconds(2.345), seconds(123.4), seconds(None)
    ('12 ms', '2.35 s', '123 s', '–')
    """
    if _missing(value):
        return "–"
    if value < 0.1:
        return f"{value * 1000:.0f} ms"
    if value < 10:
        return f"{value:.2f} s"
    return f"{value:.0f} s"


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table.

    Examples
    --------
    >>> print(table(["case", "F1"], [["a", num(0.5)]]))
    | case | F1 |
    | --- | --- |
    | a | 0.500 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def bold_best(values: list, higher: bool = True, digits: int = 3) -> list[str]:
    """Format numbers with :func:`num`, the best one (and ties at that precision) in bold.

    Examples
    --------
    >>> bold_best([0.91, 0.95, None])
    ['0.910', '**0.950**', '–']
    """
    finite = [v for v in values if not _missing(v)]
    best = (max(finite) if higher else min(finite)) if finite else None
    out = []
    for v in values:
        text = num(v, digits)
        same = best is not None and v is not None and text == num(best, digits)
        out.append(f"**{text}**" if same else text)
    return out
