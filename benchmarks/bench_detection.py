"""Detection benchmark: accuracy of the UNet variants against the classical detector, speed and memory.

Accuracy is measured on held-out simulated movies (seeds never used in
training) over SNR, clutter and rendering, including a renderer that is not
our simulator's (point sources convolved on a 3× finer grid with a
two-component PSF, then binned; different noise). Speed and peak memory are
measured on a 61 × 1000 × 1000 frame with the cell in the centre, each method
in its own subprocess, A/B interleaved, median of the repeats.

Usage::

    python benchmarks/bench_detection.py [--quick] [--models NAME=PATH ...] [--output results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from napari_kinetochores.detection import DetectionOptions

HERE = Path(__file__).resolve().parent
VOXEL = (0.30, 0.13, 0.13)
HELD_OUT_SEED = 900_000

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


def foreign_render(
    points: pd.DataFrame, shape_zyx, n_frames: int, snr: float, seed: int
) -> np.ndarray:
    """Render ground-truth positions with an independent renderer (not the simulator's).

    Point sources on a 3× finer grid, convolved with a two-component PSF
    (a core gaussian plus a wide, dim halo, longer in z), binned 3 × 3 × 3,
    on a sloped background, with Poisson noise and gaussian read noise.
    Returns (T, 1, Z, Y, X) float32.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    factor = 3
    fine_shape = tuple(int(s) * factor for s in shape_zyx)
    frames = []
    core_sigma = np.array([0.28, 0.095, 0.095]) / np.asarray(VOXEL) * factor
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
        peak = np.percentile(
            binned[
                tuple(
                    np.clip(
                        np.round(rows[["z", "y", "x"]].to_numpy()).astype(int),
                        0,
                        np.asarray(shape_zyx) - 1,
                    ).T
                )
            ],
            50,
        )
        background = 20.0 * (1 + 0.5 * np.linspace(0, 1, shape_zyx[2]))[None, None, :]
        noise_sd = np.sqrt(background.mean() + 2.0**2)
        signal = binned / max(peak, 1e-9) * snr * noise_sd
        photons = rng.poisson(np.maximum(signal + background, 0)).astype(np.float32)
        frames.append(photons + rng.normal(0, 2.0, photons.shape).astype(np.float32) + 100)
    return np.stack(frames)[:, None]


class ArrayVolume:
    """Minimal in-memory movie for the detection pipeline (TCZYX + voxel size)."""

    def __init__(self, data: np.ndarray, voxel_size_um, path="benchmark"):
        self.data = data
        self.voxel_size_um = tuple(voxel_size_um)
        self.path = Path(path)
        self.n_frames, self.n_channels = data.shape[:2]

    def frame(self, t: int, channel: int | None = None) -> np.ndarray:
        frame = self.data[t] if channel is None else self.data[t, channel]
        return np.asarray(frame, dtype=np.float32)


def make_movies(condition: dict, n_movies: int, n_frames: int):
    from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams, simulate_movie

    movies = []
    for k in range(n_movies):
        values = {key: value for key, value in condition.items() if key not in ("foreign",)}
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
        movies.append((ArrayVolume(image, params.voxel_size_um), movie.points))
    return movies


# The first model also runs with the other setting of test-time flips: (label, value).
OTHER_FLIPS = ("no flips", False) if DetectionOptions().test_time_flips else ("flips", True)


def evaluate_method(
    method: str,
    model: str | None,
    movies,
    predictions: list | None = None,
    **options,
):
    """Pooled accuracy of one method on ``movies`` (what ``kinetochores detect`` finds).

    ``predictions``, if given (UNet only), receives one list per movie of the
    network's output per frame, so the threshold sweep needs no second pass.
    ``options`` are further :class:`DetectionOptions` (``precision``,
    ``test_time_flips``).
    """
    from napari_kinetochores.analysis.matching import evaluate_points
    from napari_kinetochores.detection import detect_movie

    chosen = DetectionOptions(method=method, model=model, **options)
    rows = []
    for volume, truth in movies:
        needs_two = model is not None and _model_channels(model) > 1
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
        result = evaluate_points(detections, truth, volume.voxel_size_um)
        rows.append(result.overall)
    frame = pd.DataFrame(rows)
    tp = frame["tp@0.3"].sum()
    n_pred, n_gt = frame["n_pred"].sum(), frame["n_gt"].sum()
    tp15 = frame["tp@0.15"].sum()
    return {
        "f1@0.3": 2 * tp / (n_pred + n_gt),
        "f1@0.15": 2 * tp15 / (n_pred + n_gt),
        "precision@0.3": tp / max(n_pred, 1),
        "recall@0.3": tp / max(n_gt, 1),
        "median_nm": float(np.nanmedian(frame["median_nm"])),
        "p95_nm": float(np.nanmedian(frame["p95_nm"])),
    }


_CHANNELS: dict[str, int] = {}


def _model_channels(model: str) -> int:
    if model not in _CHANNELS:
        from napari_kinetochores.nn.checkpoint import bundled_model_path, load_checkpoint

        _CHANNELS[model] = len(load_checkpoint(bundled_model_path(model)).config.image_channels)
    return _CHANNELS[model]


def threshold_sweep(
    model: str, movies_by_condition: dict, predictions_by_condition: dict, thresholds
) -> dict:
    """F1 at 0.3 µm against the peak threshold, per condition, for one model.

    ``predictions_by_condition[name][movie][t]`` is the network's output kept
    by :func:`evaluate_method` for the same movies.
    """
    from napari_kinetochores.analysis.matching import match_points
    from napari_kinetochores.nn.inference import UNetDetector

    detector = UNetDetector.load(model)
    out = {}
    for name, movies in movies_by_condition.items():
        predictions = predictions_by_condition.get(name)
        if not predictions:  # the model cannot read these movies (evaluate_method kept none)
            continue
        counts = np.zeros((len(thresholds), 3))
        for (volume, truth), per_frame in zip(movies, predictions, strict=True):
            for t in range(volume.n_frames):
                prediction = per_frame[t][0]
                coords, scores = detector.peaks_from_prediction(
                    prediction, volume.voxel_size_um, min(thresholds)
                )
                gt = truth[(truth["t"] == t) & (truth["channel"] == 0)][["z", "y", "x"]].to_numpy()
                for k, threshold in enumerate(thresholds):
                    keep = scores > threshold
                    result = match_points(coords[keep], gt, volume.voxel_size_um, 0.3)
                    counts[k] += (result.tp, result.n_pred, result.n_gt)
        out[name] = {
            f"{t:g}": float(2 * c[0] / max(c[1] + c[2], 1))
            for t, c in zip(thresholds, counts, strict=True)
        }
    return out


SPEED_SNIPPET = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {here!r})
from bench_detection import ArrayVolume, big_frame
from napari_kinetochores.detection import DetectionOptions, detect_movie
frame, truth = big_frame({kind!r})
volume = ArrayVolume(frame, {voxel!r})
rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the frame itself, imports
options = DetectionOptions(method={method!r}, model={model!r}, tile_shape={tile!r}, **{options!r})
timings = {{}}
if {method!r} == "unet":
    import napari_kinetochores.nn.inference as inference
    original = inference.predict_volume
    def timed(*args, **kwargs):
        kwargs["timings"] = timings
        return original(*args, **kwargs)
    inference.predict_volume = timed
extra = {{}}
if {warm_repeats!r}:
    # Per-frame cost of a loaded model: what each frame of a movie costs after the first.
    from napari_kinetochores.nn.inference import UNetDetector
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
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}}))
"""


def big_frame(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A (3, 1, 61, 1000, 1000) uint16 movie, as a camera writes it, and the true spots (N, 3) of frame 1.

    Three frames, so a temporal model gets real neighbours; the benchmark
    detects frame 1 only. ``"cell"``: one simulated 61 × 256 × 256 cell
    region in the centre of a noisy empty field (real cells fill a small part
    of the field). ``"everywhere"``: a 61 × 512 × 512 field tiled with cell
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


def run_speed(
    method: str,
    model: str | None,
    kind: str,
    tile_shape=None,
    warm_repeats: int = 0,
    **options,
) -> dict:
    """Detection on frame 1 of :func:`big_frame` in a fresh process: seconds, timings, memory, F1.

    By default one cold call of ``detect_movie`` (imports and model loading
    included: what a one-frame job costs). With ``warm_repeats`` (UNet only)
    the model is loaded and run on frame 0 first, then frame 1 is detected
    that many times and the median run is reported: the per-frame cost inside
    a movie, which the share of time outside the forward pass is about.
    ``options`` are further :class:`DetectionOptions` (``precision``, ...).
    """
    code = SPEED_SNIPPET.format(
        warm_repeats=warm_repeats,
        here=str(HERE),
        kind=kind,
        voxel=VOXEL,
        method=method,
        model=model,
        tile=tile_shape,
        options=options,
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer movies and repeats")
    parser.add_argument(
        "--models",
        nargs="*",
        default=["default", "single_frame"],
        help="NAME=PATH or bundled names (the first also runs in fp32 and is timed)",
    )
    parser.add_argument("--output", type=Path, default=HERE / "results" / "detection.json")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()

    models = {}
    for entry in args.models:
        name, _, path = entry.partition("=")
        models[name] = path or name
    n_movies = 2 if args.quick else 5
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {__import__('os').cpu_count()} cores",
        "n_movies_per_condition": n_movies,
    }
    if not args.skip_accuracy:
        results["accuracy"] = {}
    movies_by_condition = {}
    predictions_by_condition: dict = {}  # the first model's outputs, for the threshold sweep
    if not args.skip_accuracy:
        for name, condition in CONDITIONS.items():
            movies_by_condition[name] = make_movies(condition, n_movies, n_frames=3)
            row = {"classical": evaluate_method("classical", None, movies_by_condition[name])}
            for index, (label, path) in enumerate(models.items()):
                kept = predictions_by_condition.setdefault(name, []) if index == 0 else None
                row[label] = evaluate_method(
                    "unet", path, movies_by_condition[name], predictions=kept
                )
            first_label, first_path = next(iter(models.items()))
            row[f"{first_label} fp32"] = evaluate_method(
                "unet", first_path, movies_by_condition[name], precision="fp32"
            )
            if not args.quick:  # four forward passes per tile: no room in the quick set
                row[f"{first_label} {OTHER_FLIPS[0]}"] = evaluate_method(
                    "unet", first_path, movies_by_condition[name], test_time_flips=OTHER_FLIPS[1]
                )
            results["accuracy"][name] = row
            print(
                name,
                json.dumps(
                    {k: None if v is None else round(v["f1@0.3"], 3) for k, v in row.items()}
                ),
                flush=True,
            )
        first = next(iter(models.values()))
        results["threshold_sweep"] = {
            "model": first,
            "f1": threshold_sweep(
                first,
                movies_by_condition,
                predictions_by_condition,
                [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
            ),
        }

    if not args.skip_speed:
        repeats = 1 if args.quick else 3
        first = next(iter(models.values()))
        flips_key = "unet_" + OTHER_FLIPS[0].replace(" ", "_")
        speed = {
            "classical": [],
            "unet": [],
            "unet_fp32": [],
            flips_key: [],
            "unet_everywhere": [],
            "unet_everywhere_fp32": [],
        }
        for _ in range(repeats):  # A/B interleaved
            speed["classical"].append(run_speed("classical", None, "cell"))
            speed["unet"].append(run_speed("unet", first, "cell"))
            speed["unet_fp32"].append(run_speed("unet", first, "cell", precision="fp32"))
            speed[flips_key].append(
                run_speed("unet", first, "cell", test_time_flips=OTHER_FLIPS[1])
            )
            speed["unet_everywhere"].append(run_speed("unet", first, "everywhere", warm_repeats=3))
            if not args.quick:  # 2 minutes in float32; the quick set times the default, bf16
                speed["unet_everywhere_fp32"].append(
                    run_speed("unet", first, "everywhere", precision="fp32", warm_repeats=3)
                )
        summary = {}
        for key, runs in speed.items():
            if not runs:
                continue
            # Warm runs (per-frame cost with a loaded model) where measured, else the cold calls;
            # only UNet runs carry forward-pass timings.
            timed = [w for r in runs for w in r.get("warm_runs", [])] or [
                {"seconds": r["seconds"], **r["timings"]} for r in runs if r["timings"]
            ]
            summary[key] = {
                "median_seconds": float(np.median([w["seconds"] for w in timed or runs])),
                "peak_rss_mb": float(max(r["peak_rss_mb"] for r in runs)),
                "rss_before_detection_mb": float(max(r["rss_before_mb"] for r in runs)),
                "detections": runs[0]["n"],
                "f1@0.3": runs[0].get("f1@0.3"),
                "true_spots": runs[0].get("n_true"),
                "runs": runs,
            }
            if timed:
                summary[key]["warm"] = any("warm_runs" in r for r in runs)
                summary[key]["timed_runs"] = len(timed)
                summary[key]["median_forward_seconds"] = float(
                    np.median([w["forward_s"] for w in timed])
                )
                summary[key]["outside_forward_fraction"] = float(
                    np.median([1 - w["forward_s"] / w["seconds"] for w in timed])
                )
                summary[key]["tiles"] = runs[0]["timings"].get("tiles")
                summary[key]["skipped_tiles"] = runs[0]["timings"].get("skipped_tiles", 0)
        results["speed"] = summary
        print(
            json.dumps(
                {k: {kk: vv for kk, vv in v.items() if kk != "runs"} for k, v in summary.items()},
                indent=1,
            )
        )

    args.output.parent.mkdir(parents=True, exist_ok=True)
    if (args.skip_accuracy or args.skip_speed) and args.output.exists():
        # a partial run keeps the other part of the previous results
        previous = json.loads(args.output.read_text())
        for key in (
            ("accuracy", "threshold_sweep", "n_movies_per_condition")
            if args.skip_accuracy
            else ("speed",)
        ):
            if key in previous:
                results[key] = previous[key]
    args.output.write_text(json.dumps(results, indent=2, default=float))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
