"""Held-out validation on real-microscope conditions (issue 17, item 6).

Every movie is rendered by :mod:`benchmarks.independent_renderer`, which
shares no code, layout or noise chain with ``napari_kinetochores.simulate``,
from seeds 5 000 000 + 1000 × condition index + movie index (no training
recipe in ``configs/`` draws seeds at or above 1 000 000). Each condition is
detected the way the default command does it —
``detect_movie(volume, DetectionOptions())``: the bundled UNet, default
threshold, voxel size from the volume — and with ``method="classical"``.
Detections are matched to the ground truth one-to-one in physical units
(:func:`napari_kinetochores.analysis.matching.match_points`, 0.3 µm cutoff).

Reported per condition and method: F1, precision and recall (pooled over all
frames) with 95 % confidence intervals from a two-level bootstrap (movies,
then frames within them; 2000 resamples), the median 3D error of the matched
pairs in nm, the number of false detections in empty background (farther
than 1 µm from every kinetochore) and, with the sCMOS camera, the number of
false detections within one pixel (y, x) of a hot pixel.

Usage (from the repository root)::

    python -m benchmarks.bench_robustness            # quick set, ~10 min on 2 cores
    python -m benchmarks.bench_robustness --full     # 10 movies per condition
    python -m benchmarks.bench_robustness --conditions "prometaphase ball (92)"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks.independent_renderer import (
    ABERRATED_OPTICS,
    MovieSpec,
    RenderedMovie,
    render_movie,
)

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "robustness.json"
SEED_BASE = 5_000_000
CUTOFF_UM = 0.3
BACKGROUND_UM = 1.0  # a false detection farther than this from every kinetochore is "in background"
N_BOOTSTRAP = 2000

#: Conditions in a fixed order (the order sets the seeds).
CONDITIONS: dict[str, MovieSpec] = {
    "clean plate, moderate SNR": MovieSpec(snr=7.0),
    "clean plate, low SNR": MovieSpec(snr=4.0),
    "sCMOS pattern + hot pixels + depth aberration": MovieSpec(
        camera="scmos", optics=ABERRATED_OPTICS
    ),
    "independent frames along T, high SNR": MovieSpec(snr=14.0, independent_frames=True),
    "background-subtracted 8-bit": MovieSpec(background_subtracted=True),
    "prometaphase ball (92)": MovieSpec(layout="ball", n_pairs=46),
    "coarse 0.5/0.16/0.16 µm": MovieSpec(voxel_size_um=(0.5, 0.16, 0.16), shape_zyx=(20, 104, 104)),
    "fine 0.2/0.1/0.1 µm": MovieSpec(voxel_size_um=(0.2, 0.1, 0.1), shape_zyx=(48, 160, 160)),
    "bleaching 12 %/frame, 8 frames": MovieSpec(n_frames=8, bleach_per_frame=0.12),
    # a control for the clean plate: the same movies' optics and camera on a flat background
    "control: moderate SNR, flat background": MovieSpec(flat_background=True),
}

METHODS = {
    "default UNet": {},
    "classical": {"method": "classical"},
    # the choice between resampling to the model's voxel size and reading frames as they are
    "default UNet, not resampled": {"resample_to_model": False},
}
DEFAULT_METHODS = ["default UNet", "classical"]


@dataclass
class FrameScore:
    """Matching outcome of one frame."""

    movie: int
    t: int
    tp: int
    fp: int
    fn: int
    fp_background: int
    fp_hot_pixel: int
    errors_nm: np.ndarray


def condition_seeds(index: int, n_movies: int) -> list[int]:
    """Seeds of the movies of the ``index``-th condition (never used in training)."""
    return [SEED_BASE + 1000 * index + k for k in range(n_movies)]


def score_movie(movie: RenderedMovie, detections, movie_index: int) -> list[FrameScore]:
    """Match a movie's detections (a point table) to its ground truth, frame by frame."""
    from scipy.spatial import cKDTree

    from napari_kinetochores.analysis.matching import match_points

    voxel = np.asarray(movie.voxel_size_um)
    hot = _hot_pixel_mask(movie)
    scores = []
    for t in range(movie.image.shape[0]):
        truth = movie.points.loc[movie.points["t"] == t, ["z", "y", "x"]].to_numpy()
        found = detections.loc[detections["t"] == t, ["z", "y", "x"]].to_numpy()
        result = match_points(found, truth, voxel, cutoff_um=CUTOFF_UM)
        unmatched = np.setdiff1d(np.arange(len(found)), result.pred_indices)
        far = 0
        if len(unmatched) and len(truth):
            nearest, _ = cKDTree(truth * voxel).query(found[unmatched] * voxel)
            far = int(np.sum(nearest > BACKGROUND_UM))
        elif len(unmatched):
            far = len(unmatched)
        yx = np.clip(np.round(found[unmatched, 1:]).astype(int), 0, np.array(hot.shape) - 1)
        at_hot = int(hot[yx[:, 0], yx[:, 1]].sum()) if len(yx) else 0
        scores.append(
            FrameScore(
                movie_index,
                t,
                result.tp,
                result.fp,
                result.fn,
                far,
                at_hot,
                result.distances_um * 1000,
            )
        )
    return scores


def _hot_pixel_mask(movie: RenderedMovie) -> np.ndarray:
    """(Y, X) True within one pixel of a hot pixel (dark charge > 40 e⁻); all False for a CCD."""
    from scipy import ndimage

    shape = movie.image.shape[-2:]
    if movie.pattern is None:
        return np.zeros(shape, bool)
    return ndimage.binary_dilation(movie.pattern.dark_e > 40, np.ones((3, 3), bool))


def _pooled(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return f1, precision, recall


def summarise(scores: list[FrameScore]) -> dict:
    """Pooled F1, precision, recall with two-level bootstrap 95 % intervals, errors, background FPs."""
    from benchmarks.common import bootstrap_ci

    counts = np.array([[s.tp, s.fp, s.fn] for s in scores], dtype=float)
    frames = [
        {
            "movie": s.movie,
            "tp": s.tp,
            "n_pred": s.tp + s.fp,
            "n_gt": s.tp + s.fn,
            "errors_nm": s.errors_nm,
        }
        for s in scores
    ]
    ci = bootstrap_ci(frames, N_BOOTSTRAP)
    f1, precision, recall = _pooled(*counts.sum(axis=0))
    errors = np.concatenate([s.errors_nm for s in scores])
    return {
        "f1": round(f1, 4),
        "f1_ci95": ci["f1"],
        "precision": round(precision, 4),
        "precision_ci95": ci["precision"],
        "recall": round(recall, 4),
        "recall_ci95": ci["recall"],
        "median_error_nm": round(float(np.median(errors)), 1) if errors.size else None,
        "median_error_nm_ci95": ci["median_nm"],
        "tp": int(counts[:, 0].sum()),
        "fp": int(counts[:, 1].sum()),
        "fn": int(counts[:, 2].sum()),
        "fp_background": int(sum(s.fp_background for s in scores)),
        "fp_at_hot_pixels": int(sum(s.fp_hot_pixel for s in scores)),
        "n_frames": len(scores),
    }


def detect(movie: RenderedMovie, options) -> tuple[object, list[str]]:
    """Run the default command's path on a rendered movie; return detections and warnings."""
    from napari_kinetochores.detection import detect_movie
    from napari_kinetochores.io.volumes import volume_from_array

    volume = volume_from_array(movie.image, movie.voxel_size_um)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detections = detect_movie(volume, options, progress=False)
    return detections, sorted({str(w.message)[:200] for w in caught})


def run_condition(index: int, spec: MovieSpec, n_movies: int, methods: dict) -> dict:
    """Render the condition's movies once and score every method on them."""
    from napari_kinetochores.detection import DetectionOptions

    seeds = condition_seeds(index, n_movies)
    start = time.perf_counter()
    movies = [render_movie(spec, seed) for seed in seeds]
    render_s = time.perf_counter() - start
    out = {
        "spec": _spec_dict(spec),
        "seeds": seeds,
        "n_kinetochores": int(sum(len(m.points) for m in movies)),
        "render_seconds": round(render_s, 1),
        "methods": {},
    }
    for name, overrides in methods.items():
        options = DetectionOptions(**overrides)
        start = time.perf_counter()
        scores, messages = [], set()
        for k, movie in enumerate(movies):
            detections, caught = detect(movie, options)
            messages.update(caught)
            scores.extend(score_movie(movie, detections, k))
        summary = summarise(scores)
        summary["seconds"] = round(time.perf_counter() - start, 1)
        summary["warnings"] = sorted(messages)
        out["methods"][name] = summary
    return out


def _spec_dict(spec: MovieSpec) -> dict:
    values = asdict(spec)
    values["optics"] = asdict(spec.optics)
    return values


def machine_info() -> dict:
    """Platform, CPU model, cores and the bfloat16 CPU flags."""
    flags, model = set(), platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": model,
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
    }


def git_commit() -> str:
    """HEAD, with " + uncommitted changes" when the library or the benchmarks differ from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "benchmarks"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + uncommitted changes" if changed else "")


def _interval(summary: dict, key: str) -> str:
    low, high = summary[f"{key}_ci95"]
    return f"{summary[key]:.3f} [{low:.3f}, {high:.3f}]"


def markdown_table(results: dict) -> str:
    """One row per condition: F1 [95 % CI], precision, recall, median error, background FPs."""
    methods = list(next(iter(results["conditions"].values()))["methods"])
    header = ["condition", "movies × frames"]
    for name in methods:
        header += [f"{name} F1 [95 % CI]", "P", "R", "median nm", "bg FP"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for condition, entry in results["conditions"].items():
        first = entry["methods"][methods[0]]
        row = [condition, f"{len(entry['seeds'])} × {first['n_frames'] // len(entry['seeds'])}"]
        for name in methods:
            s = entry["methods"][name]
            error = "–" if s["median_error_nm"] is None else f"{s['median_error_nm']:.0f}"
            if s.get("median_error_nm_ci95"):
                low, high = s["median_error_nm_ci95"]
                error += f" [{low:.0f}, {high:.0f}]"
            row += [
                _interval(s, "f1"),
                f"{s['precision']:.3f}",
                f"{s['recall']:.3f}",
                error,
                str(s["fp_background"]),
            ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _write(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    partial.replace(path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="3 movies per condition (default)")
    size.add_argument("--full", action="store_true", help="10 movies per condition")
    parser.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=None)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=DEFAULT_METHODS)
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="LABEL=CHECKPOINT",
        help="also run the UNet with this checkpoint (a candidate model), labelled LABEL",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    n_movies = 10 if args.full else 3
    selected = args.conditions or list(CONDITIONS)
    methods = {name: METHODS[name] for name in args.methods}
    for entry in args.model:
        label, _, checkpoint = entry.partition("=")
        if not checkpoint:
            parser.error(f"--model takes LABEL=CHECKPOINT, got {entry!r}")
        methods[label] = {"model": checkpoint}
    results = {
        "benchmark": "robustness (held-out, independent renderer)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "git_commit": git_commit(),
        "mode": "full" if args.full else "quick",
        "cutoff_um": CUTOFF_UM,
        "background_um": BACKGROUND_UM,
        "seed_rule": f"{SEED_BASE} + 1000 * condition index + movie index",
        "confidence_interval": f"95 % percentile, two-level bootstrap (movies, frames), {N_BOOTSTRAP}",
        "conditions": {},
    }
    start = time.perf_counter()
    for index, name in enumerate(CONDITIONS):
        if name not in selected:
            continue
        entry = run_condition(index, CONDITIONS[name], n_movies, methods)
        results["conditions"][name] = entry
        scores = ", ".join(f"{m} F1 {s['f1']:.3f}" for m, s in entry["methods"].items())
        print(f"{name}: {scores}", file=sys.stderr, flush=True)
        results["total_seconds"] = round(time.perf_counter() - start, 1)
        _write(results, args.output)  # after every condition: a crash keeps what was measured
    print(markdown_table(results))
    return results


if __name__ == "__main__":
    main()
