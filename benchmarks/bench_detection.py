"""Detection benchmark: accuracy of the UNet variants against the classical detector, speed and memory.

Accuracy is measured on held-out simulated movies (seeds never used in
training) over SNR, clutter and rendering, including a renderer that is not
our simulator's (point sources convolved on a 3× finer grid with a
two-component PSF, then binned; different noise). Speed and peak memory are
measured on a 61 × 1000 × 1000 frame with the cell in the centre, each method
in its own subprocess, A/B interleaved, median of the repeats.

The held-out conditions and movies, the scoring and the speed probe are in
:mod:`benchmarks.common`.

Usage (from the repository root)::

    python -m benchmarks.bench_detection [--quick] [--models NAME=PATH ...] [--output results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    CONDITIONS,
    TRAINING_DISTRIBUTION,
    evaluate_method,
    make_movies,
    run_speed,
    threshold_sweep,
)
from napari_kinetochores.detection import DetectionOptions

HERE = Path(__file__).resolve().parent

# The first model also runs with the other setting of test-time flips: (label, value).
OTHER_FLIPS = ("no flips", False) if DetectionOptions().test_time_flips else ("flips", True)
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def unet_threshold_sweep(
    model: str, movies_by_condition: dict, predictions_by_condition: dict, thresholds=THRESHOLDS
) -> dict:
    """F1 at 0.3 µm against the peak threshold, per condition, for one UNet model.

    ``predictions_by_condition[name][movie][t]`` is the network's output kept
    by :func:`~benchmarks.common.evaluate_method` for the same movies; a
    condition without any (the model cannot read its movies) is left out.
    """
    from napari_kinetochores.backends.unet import UNetDetector

    detector = UNetDetector.load(model)

    def candidates(name, movie, volume, t):
        prediction = predictions_by_condition[name][movie][t][0]
        return detector.peaks_from_prediction(prediction, volume.voxel_size_um, min(thresholds))

    readable = {
        name: movies
        for name, movies in movies_by_condition.items()
        if predictions_by_condition.get(name)
    }
    return threshold_sweep(readable, candidates, thresholds, inclusive=False)


def measure_accuracy(models: dict[str, str], n_movies: int, quick: bool) -> dict:
    """Accuracy per condition of the classical detector and every UNet, and the first UNet's sweep.

    ``models`` maps a label to a checkpoint path or bundled name; the first
    also runs in float32 and (unless ``quick``) with the other setting of
    test-time flips. Returns ``{"accuracy": {condition: {label: metrics}},
    "threshold_sweep": {"model": ..., "f1": ...}}``.
    """
    first_label, first_path = next(iter(models.items()))
    accuracy = {}
    movies_by_condition = {}
    predictions_by_condition: dict = {}  # the first model's outputs, for the threshold sweep
    for name, condition in CONDITIONS.items():
        movies = movies_by_condition[name] = make_movies(condition, n_movies, n_frames=3)
        row = {"classical": evaluate_method("classical", None, movies)}
        for index, (label, path) in enumerate(models.items()):
            kept = predictions_by_condition.setdefault(name, []) if index == 0 else None
            row[label] = evaluate_method("unet", path, movies, predictions=kept)
        row[f"{first_label} fp32"] = evaluate_method("unet", first_path, movies, precision="fp32")
        if not quick:  # four forward passes per tile: no room in the quick set
            row[f"{first_label} {OTHER_FLIPS[0]}"] = evaluate_method(
                "unet", first_path, movies, test_time_flips=OTHER_FLIPS[1]
            )
        accuracy[name] = row
        f1 = {k: None if v is None else round(v["f1@0.3"], 3) for k, v in row.items()}
        print(name, json.dumps(f1), flush=True)
    sweep = unet_threshold_sweep(first_path, movies_by_condition, predictions_by_condition)
    return {"accuracy": accuracy, "threshold_sweep": {"model": first_path, "f1": sweep}}


def time_methods(model: str, quick: bool) -> dict[str, list[dict]]:
    """Runs of :func:`~benchmarks.common.run_speed` per method, A/B interleaved (1 repeat if ``quick``, else 3)."""
    flips_key = "unet_" + OTHER_FLIPS[0].replace(" ", "_")
    speed: dict[str, list[dict]] = {
        "classical": [],
        "unet": [],
        "unet_fp32": [],
        flips_key: [],
        "unet_everywhere": [],
        "unet_everywhere_fp32": [],
    }
    for _ in range(1 if quick else 3):
        speed["classical"].append(run_speed("classical", None, "cell"))
        speed["unet"].append(run_speed("unet", model, "cell"))
        speed["unet_fp32"].append(run_speed("unet", model, "cell", precision="fp32"))
        speed[flips_key].append(run_speed("unet", model, "cell", test_time_flips=OTHER_FLIPS[1]))
        speed["unet_everywhere"].append(run_speed("unet", model, "everywhere", warm_repeats=3))
        if not quick:  # 2 minutes in float32; the quick set times the default, bf16
            speed["unet_everywhere_fp32"].append(
                run_speed("unet", model, "everywhere", precision="fp32", warm_repeats=3)
            )
    return speed


def summarise_speed(speed: dict[str, list[dict]]) -> dict:
    """Median time, peak memory, detections and forward-pass share per method, from :func:`time_methods`."""
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
    return summary


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
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count()} cores",
        "n_movies_per_condition": n_movies,
        "training_distribution": TRAINING_DISTRIBUTION,
    }
    if not args.skip_accuracy:
        results.update(measure_accuracy(models, n_movies, args.quick))
    if not args.skip_speed:
        load_at_start = list(os.getloadavg())
        results["speed"] = summarise_speed(time_methods(next(iter(models.values())), args.quick))
        results["speed_load_average"] = {"start": load_at_start, "end": list(os.getloadavg())}
        brief = {
            k: {kk: vv for kk, vv in v.items() if kk != "runs"} for k, v in results["speed"].items()
        }
        print(json.dumps(brief, indent=1))

    args.output.parent.mkdir(parents=True, exist_ok=True)
    if (args.skip_accuracy or args.skip_speed) and args.output.exists():
        # a partial run keeps the other part of the previous results
        previous = json.loads(args.output.read_text())
        kept = ("accuracy", "threshold_sweep", "n_movies_per_condition", "training_distribution")
        for key in kept if args.skip_accuracy else ("speed", "speed_load_average", "speed_note"):
            if key in previous:
                results[key] = previous[key]
    args.output.write_text(json.dumps(results, indent=2, default=float))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
