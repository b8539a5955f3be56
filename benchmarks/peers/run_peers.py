"""Peer benchmark: our detectors next to Spotiflow, Big-FISH, trackpy and blob_log, in one run.

Runs inside ``.venv-peers`` (``make bench-peers``). Every method runs in a
long-lived worker process (benchmarks/peers/worker.py) started with the
interpreter of its own environment: the project's ``.venv`` for our classical
detector and UNet (CPU torch), ``.venv-peers`` for the peers. All methods see
the same data in the same run:

Accuracy
    The held-out simulated conditions of benchmarks/common.py (``CONDITIONS``,
    ``make_movies``; seeds never used in training), channel 0 (EGFP) of every
    frame (the quick set leaves out ``QUICK_SKIPS``). Each method gets its own automatic threshold, and separately an
    oracle threshold chosen on the ground truth: the best per condition, and
    one best threshold for all conditions. Every number comes from our
    matching (``napari_kinetochores.analysis.matching.evaluate_points``): precision,
    recall and F1 at 0.15 and 0.3 µm, median and p95 error in nm. The TP /
    FP / FN counts at the automatic threshold are recomputed with Spotiflow's
    own ``spotiflow.utils.points_matching`` on physical coordinates (µm) as a
    cross-check.
Speed and scaling
    Wall time of each method's automatic-threshold call on identical frames
    (z = 32, 64² … 256² in xy; 512², 1024² and a 61 × 1000 × 1000 frame
    with ``--full``), on the same CPU, A/B interleaved (the order of methods
    rotates between repeats), median of ``--repeats`` runs, with warm
    processes (one warm-up call first).
Peak memory
    The own high-water mark (VmHWM, ``benchmarks.common.peak_rss_mb``) of a
    fresh worker per method that runs the largest scaling frame once (with the RSS after loading, to separate the library's own weight).
Real data
    The spotMAX yeast stack (no ground truth): agreement (our matching, F1
    at 0.3 µm) with spotMAX's own prediction (connected-component centroids
    of its mask), number of spots and time per stack.

Usage (from the repository root)::

    .venv-peers/bin/python -m benchmarks.peers.run_peers [--quick | --full] [--models NAME=PATH ...]
        [--spotiflow-model runs/spotiflow] [--stardist-model runs/stardist_budget]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_stardist import project_has_stardist
from benchmarks.common import (
    CONDITIONS,
    REPO,
    big_frame,
    bootstrap_ci,
    f1_by_threshold,
    frame_counts,
    make_movies,
)
from benchmarks.peers.detectors import LABELS, PEERS

BENCH = REPO / "benchmarks"

CUTOFFS_UM = (0.15, 0.3)
EXTRA_CONDITIONS = {
    "moderate, anisotropic voxels (z 0.5 µm)": {
        "snr": "moderate",
        "voxel_size_um": (0.5, 0.13, 0.13),
    },
}
"""Conditions of the peer benchmark beyond common.CONDITIONS: voxel anisotropy, one axis the issue asks for."""
EXTRA_CONDITIONS_FULL = {
    "very_low SNR + clutter": {"snr": "very_low", "n_clutter": 6, "clutter_rel": 1.0},
}
QUICK_SKIPS = ("moderate, Moffat PSF + EMCCD", "low, foreign renderer")
"""common.CONDITIONS left out of the quick peer set (15-minute budget of ``make bench``):
the quick set keeps one condition per axis (SNR, clutter, density, PSF width, renderer,
anisotropy); these two repeat axes already covered. ``--full`` runs them."""
QUICK_SIZES = (64, 128, 256)
FULL_SIZES = (64, 128, 256, 512, 1024)
REAL_DIR = REPO.parent / "shared" / "data" / "real" / "spotmax_yeast"
REAL_VOXEL_UM = (0.35, 0.06725, 0.06725)
"""Assumed voxel size of the spotMAX stack: xy from spotMAX's own example script, z a typical step."""
REAL_CUTOFF_UM = 0.3
SCALING_Z = 32
ACCURACY_ONLY = {"bigfish_subpixel"}
"""Variants timed only inside the accuracy run (one gaussian fit per spot makes them slow to time)."""
FULL_ONLY = {"bigfish_subpixel"}
"""Variants run only with ``--full``: Big-FISH's sub-pixel fit took 10 of the quick set's 26 minutes."""


# ----------------------------------------------------------------------------- workers


class Worker:
    """One method in its own process, answering JSON requests."""

    def __init__(self, key: str, method: str, python: str, model: str | None, log_dir: Path):
        self.key, self.method = key, method
        command = [python, "-m", "benchmarks.peers.worker", method]
        if model:
            command += ["--model", str(model)]
        self.log = open(log_dir / f"{key.replace(':', '_')}.log", "a")  # noqa: SIM115
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=REPO,
        )
        self.ready = self._read()
        if not self.ready.get("ready"):
            raise RuntimeError(f"{key}: worker failed to start: {self.ready}")

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.key}: worker exited (see {self.log.name})")
        return json.loads(line)

    def request(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"{self.key}: {answer['error']}\n{answer.get('traceback', '')}")
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=60)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
        self.log.close()


# ----------------------------------------------------------------------------- accuracy


def _table(rows: np.ndarray) -> pd.DataFrame:
    """A worker's (t, z, y, x, score) rows as a table; rows without finite coordinates dropped.

    (trackpy's refinement can return a feature without a position, NaN, which
    our matching refuses; such a feature is no detection.)
    """
    rows = np.asarray(rows, float).reshape(-1, 5)
    rows = rows[np.isfinite(rows[:, 1:4]).all(axis=1)]
    return pd.DataFrame(
        {
            "t": rows[:, 0].astype(int),
            "z": rows[:, 1],
            "y": rows[:, 2],
            "x": rows[:, 3],
            "score": rows[:, 4],
        }
    )


def at_or_above(table: pd.DataFrame, per_frame: np.ndarray) -> np.ndarray:
    """Rows whose score reaches their own frame's automatic threshold (NaN: no threshold).

    Examples
    --------
    >>> table = pd.DataFrame({"t": [0, 0, 1], "score": [0.5, 2.0, 0.5]})
    >>> at_or_above(table, np.array([1.0, 0.4])).tolist()
    [False, True, True]
    """
    thresholds = np.nan_to_num(np.asarray(per_frame, float), nan=-np.inf)
    return table["score"].to_numpy() >= thresholds[table["t"].to_numpy().astype(int)]


def _strongest(table: pd.DataFrame, gt: pd.DataFrame, per_frame: np.ndarray) -> pd.DataFrame:
    """Every candidate at or above its frame's automatic threshold, plus per frame the 10 ×
    (true spots) + 100 strongest below it (the oracle's useful range; noise maxima beyond
    that only slow the sweep)."""
    above = at_or_above(table, per_frame)
    parts = [table[above]]
    below = table[~above]
    for t, frame in below.groupby("t"):
        parts.append(frame.nlargest(10 * int((gt["t"] == t).sum()) + 100, "score"))
    return pd.concat(parts, ignore_index=True).sort_values(["t", "score"], ignore_index=True)


def pooled_metrics(pairs: list[tuple[pd.DataFrame, pd.DataFrame, tuple]]) -> dict:
    """Our matching over several movies: counts summed, errors pooled over all matched pairs.

    Also the per-frame counts (``frames``, :func:`benchmarks.common.frame_counts`; one movie
    per pair) and their two-level bootstrap intervals (``ci95``).
    """
    from napari_kinetochores.analysis.matching import evaluate_points

    counts = {c: np.zeros(3) for c in CUTOFFS_UM}
    distances = []
    for pred, truth, voxel in pairs:
        evaluation = evaluate_points(pred, truth, voxel, cutoffs_um=CUTOFFS_UM, main_cutoff_um=0.3)
        for cutoff in CUTOFFS_UM:
            key = f"{cutoff:g}"
            counts[cutoff] += (
                evaluation.overall[f"tp@{key}"],
                evaluation.overall["n_pred"],
                evaluation.overall["n_gt"],
            )
        distances += [m.distances_um for m in evaluation.matches.values()]
    out = {}
    for cutoff, (tp, n_pred, n_gt) in counts.items():
        key = f"{cutoff:g}"
        out[f"tp@{key}"] = int(tp)
        out[f"precision@{key}"] = float(tp / n_pred) if n_pred else float("nan")
        out[f"recall@{key}"] = float(tp / n_gt) if n_gt else float("nan")
        out[f"f1@{key}"] = float(2 * tp / (n_pred + n_gt)) if n_pred + n_gt else 1.0
    out["n_pred"] = int(counts[0.3][1])
    out["n_gt"] = int(counts[0.3][2])
    nm = np.concatenate(distances) * 1000 if distances else np.zeros(0)
    out["median_nm"] = float(np.median(nm)) if nm.size else float("nan")
    out["p95_nm"] = float(np.percentile(nm, 95)) if nm.size else float("nan")
    frames = [
        frame_counts(
            pred[pred["t"] == t][["z", "y", "x"]].to_numpy(float),
            truth[truth["t"] == t][["z", "y", "x"]].to_numpy(float),
            voxel,
            movie,
        )
        for movie, (pred, truth, voxel) in enumerate(pairs)
        for t in sorted(set(truth["t"]) | set(pred["t"]))
    ]
    out["ci95"] = bootstrap_ci(frames)
    out["frames"] = frames
    return out


def f1_curve(pairs, thresholds) -> np.ndarray:
    """F1 at 0.3 µm (counts pooled over the movies) for each score threshold (scores >= it)."""

    def frames():
        for pred, truth, voxel in pairs:
            for t in sorted(set(truth["t"]) | set(pred["t"])):
                frame = pred[pred["t"] == t]
                coords, scores = frame[["z", "y", "x"]].to_numpy(), frame["score"].to_numpy()
                yield coords, scores, truth[truth["t"] == t][["z", "y", "x"]].to_numpy(), voxel

    return f1_by_threshold(frames(), thresholds, inclusive=True)


def crosscheck_spotiflow(pairs, cutoff_um: float) -> dict | None:
    """TP / FP / FN with Spotiflow's own points_matching on physical coordinates (µm)."""
    try:
        from spotiflow.utils import points_matching
    except ImportError:
        return None
    tp = fp = fn = 0
    for pred, truth, voxel in pairs:
        voxel = np.asarray(voxel, float)
        for t in sorted(set(truth["t"]) | set(pred["t"])):
            gt_um = truth[truth["t"] == t][["z", "y", "x"]].to_numpy(float) * voxel
            pred_um = pred[pred["t"] == t][["z", "y", "x"]].to_numpy(float) * voxel
            if len(gt_um) == 0 or len(pred_um) == 0:
                fp += len(pred_um)
                fn += len(gt_um)
                continue
            result = points_matching(gt_um, pred_um, cutoff_distance=cutoff_um)
            tp, fp, fn = tp + result.tp, fp + result.fp, fn + result.fn
    return {
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "f1": float(2 * tp / max(2 * tp + fp + fn, 1)),
    }


def run_accuracy(
    workers: dict,
    conditions: dict,
    n_movies: int,
    scratch: Path,
    check_all: set,
    progress=None,
) -> dict:
    """Candidates of every method on every condition, then automatic / oracle metrics.

    ``progress``, if given, is called with the metrics of the conditions done
    so far after each condition (so that an interrupted run keeps them).
    """
    candidates: dict[str, dict[str, list]] = {key: {} for key in workers}
    autos: dict[str, dict[str, list]] = {key: {} for key in workers}
    # Each frame's own automatic threshold, per method, condition and movie: Big-FISH,
    # trackpy and blob_log choose theirs per image (one value for all once hid that).
    auto_thresholds: dict[str, dict[str, list[np.ndarray]]] = {key: {} for key in workers}
    seconds: dict[str, float] = {key: 0.0 for key in workers}
    for name, condition in conditions.items():
        started = time.perf_counter()
        movies = make_movies(condition, n_movies, n_frames=3)
        for m, (volume, truth) in enumerate(movies):
            path = scratch / f"movie_{abs(hash(name)) % 10**8}_{m}.npy"
            np.save(path, volume.data.astype(np.float32))
            gt = truth[truth["channel"] == 0][["t", "z", "y", "x"]].reset_index(drop=True)
            voxel = tuple(float(v) for v in volume.voxel_size_um)
            for key, worker in workers.items():
                out = scratch / f"result_{key.replace(':', '_')}.npz"
                answer = worker.request(
                    op="accuracy",
                    movie=str(path),
                    voxel=voxel,
                    out=str(out),
                    check_auto=(m == 0 or key in check_all),
                )
                if answer.get("skipped"):
                    continue
                seconds[key] += answer["seconds"]
                result = np.load(out)
                per_frame = np.asarray(result["auto_thresholds"], float)
                auto_thresholds[key].setdefault(name, []).append(per_frame)
                candidates[key].setdefault(name, []).append(
                    (_strongest(_table(result["candidates"]), gt, per_frame), gt, voxel)
                )
                if m == 0 or key in check_all:
                    autos[key].setdefault(name, []).append((_table(result["auto"]), gt, voxel, m))
        print(f"  {name}: {time.perf_counter() - started:.0f} s", flush=True)
        n_done = list(conditions).index(name) + 1
        if progress is not None and n_done % 3 == 0 and n_done < len(conditions):
            done = {k: v for k, v in conditions.items() if any(k in c for c in candidates.values())}
            progress(
                _summarise(workers, done, candidates, autos, auto_thresholds, seconds, n_movies)
            )
    return _summarise(workers, conditions, candidates, autos, auto_thresholds, seconds, n_movies)


def _summarise(workers, conditions, candidates, autos, auto_thresholds, seconds, n_movies) -> dict:
    """Automatic, oracle and global-oracle metrics, and the cross-check, from the candidates."""
    accuracy: dict = {name: {} for name in conditions}
    consistency: dict = {}
    global_oracle: dict = {}
    crosscheck: dict = {}
    for key in workers:
        if not candidates[key]:
            continue
        every_frame = np.concatenate(
            [t for runs in auto_thresholds[key].values() for t in runs] + [np.zeros(0)]
        )
        finite = every_frame[np.isfinite(every_frame)]
        auto = float(np.median(finite)) if finite.size else float("nan")
        scores = np.concatenate(
            [p["score"].to_numpy() for runs in candidates[key].values() for p, _, _ in runs]
        )
        # Threshold grid: quantiles of the strongest candidates (5 per true spot), so that the
        # grid is dense where the answer lies rather than among the noise maxima.
        n_true = sum(len(gt) for runs in candidates[key].values() for _, gt, _ in runs)
        top = (
            np.sort(scores)[-min(len(scores), 5 * max(n_true, 1)) :] if scores.size else np.zeros(1)
        )
        grid = np.unique(np.quantile(top, np.linspace(0, 1, 60)))
        if np.isfinite(auto):
            grid = np.unique(np.append(grid, auto))
        curves = {}
        frames_same = frames_total = 0
        crosscheck[key] = {}
        for name, runs in candidates[key].items():
            per_movie = auto_thresholds[key][name]
            filtered = [
                (p[at_or_above(p, thresholds)], gt, voxel)
                for (p, gt, voxel), thresholds in zip(runs, per_movie, strict=True)
            ]
            real_auto = {m: table for table, _, _, m in autos[key].get(name, [])}
            # The automatic result: the method's own call where it ran, the filtered candidates elsewhere.
            auto_pairs = []
            for m, (pred, gt, voxel) in enumerate(filtered):
                if m in real_auto:
                    same, total = _same_points(pred, real_auto[m])
                    frames_same, frames_total = frames_same + same, frames_total + total
                    pred = real_auto[m]
                auto_pairs.append((pred, gt, voxel))
            row = {"auto": pooled_metrics(auto_pairs)}
            used = np.concatenate(per_movie)
            used = used[np.isfinite(used)]
            row["auto"]["threshold"] = float(np.median(used)) if used.size else None
            if used.size and used.min() != used.max():
                row["auto"]["threshold_range"] = [float(used.min()), float(used.max())]
            curves[name] = f1_curve(runs, grid)
            best = int(np.argmax(curves[name]))
            row["oracle"] = pooled_metrics(
                [(p[p["score"] >= grid[best]], gt, v) for p, gt, v in runs]
            )
            row["oracle"]["threshold"] = float(grid[best])
            accuracy[name][key] = row
            crosscheck[key][name] = {
                f"{c:g}": {
                    "ours": {k: row["auto"][f"{k}@{c:g}"] for k in ("tp", "f1")},
                    "spotiflow": crosscheck_spotiflow(auto_pairs, c),
                }
                for c in CUTOFFS_UM
            }
        mean_curve = np.mean(list(curves.values()), axis=0)
        best = int(np.argmax(mean_curve))
        global_oracle[key] = {
            "threshold": float(grid[best]),
            "mean_f1@0.3": float(mean_curve[best]),
        }
        for name, runs in candidates[key].items():
            metrics = pooled_metrics([(p[p["score"] >= grid[best]], gt, v) for p, gt, v in runs])
            metrics["threshold"] = float(grid[best])
            accuracy[name][key]["global_oracle"] = metrics
        consistency[key] = {
            "frames_identical": int(frames_same),
            "frames_checked": int(frames_total),
        }
    agree = all(
        entry["spotiflow"] is None or (entry["spotiflow"]["tp"] == entry["ours"]["tp"])
        for per_key in crosscheck.values()
        for per_cond in per_key.values()
        for entry in per_cond.values()
    )
    return {
        "conditions": accuracy,
        "global_oracle": global_oracle,
        "auto_consistency": consistency,
        "crosscheck": {"all_tp_equal": bool(agree), "tables": crosscheck},
        "detector_seconds": seconds,
        "n_movies_per_condition": n_movies,
        "n_frames_per_movie": 3,
    }


def _same_points(filtered: pd.DataFrame, real: pd.DataFrame) -> tuple[int, int]:
    """Frames where the filtered candidates equal the method's own automatic call (within 1e-4 voxel)."""
    same = total = 0
    for t in sorted(set(filtered["t"]) | set(real["t"])):
        a = np.sort(filtered[filtered["t"] == t][["z", "y", "x"]].to_numpy().round(4), axis=0)
        b = np.sort(real[real["t"] == t][["z", "y", "x"]].to_numpy().round(4), axis=0)
        total += 1
        same += int(a.shape == b.shape and np.allclose(a, b, atol=1e-4))
    return same, total


# ----------------------------------------------------------------------------- speed


def scaling_frames(sizes, scratch: Path, full: bool) -> dict[str, Path]:
    """Identical frames for every method: a simulated 32 × 128 × 128 cell tiled (or cropped) in xy."""
    from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams, simulate_movie

    cell = (
        simulate_movie(
            SimulationParams(
                n_frames=1, shape_zyx=(SCALING_Z, 128, 128), n_pairs=20, snr=SNR_LEVELS["moderate"]
            ),
            seed=7,
        )
        .image[0, 0]
        .astype(np.float32)
    )
    frames = {}
    for size in sizes:
        if size <= 128:
            start = (128 - size) // 2
            frame = cell[:, start : start + size, start : start + size]
        else:
            frame = np.tile(cell, (1, size // 128, size // 128))
        path = scratch / f"frame_{size}.npy"
        np.save(path, np.ascontiguousarray(frame))
        frames[f"{SCALING_Z}x{size}x{size}"] = path
    if full:
        path = scratch / "frame_61x1000x1000_cell.npy"
        np.save(path, big_frame("cell")[0, 0])
        frames["61x1000x1000 (cell)"] = path
    return frames


def run_speed(workers: dict, frames: dict[str, Path], voxel, repeats: int) -> dict:
    keys = list(workers)
    smallest = next(iter(frames.values()))
    for worker in workers.values():  # warm-up: imports, JIT, first-call allocations
        worker.request(op="time", frame=str(smallest), voxel=voxel, repeats=1)
    runs: dict = {key: {name: [] for name in frames} for key in keys}
    counts: dict = {key: {} for key in keys}
    for r in range(repeats):
        for name, path in frames.items():
            order = keys[r % len(keys) :] + keys[: r % len(keys)]  # A/B interleaved, rotating order
            for key in order:
                answer = workers[key].request(op="time", frame=str(path), voxel=voxel, repeats=1)
                runs[key][name].append(answer["seconds"][0])
                counts[key][name] = (answer["n"], answer["voxels"])
        print(f"  speed repeat {r + 1}/{repeats} done", flush=True)
    out = {}
    for key in keys:
        out[key] = {}
        for name in frames:
            median = float(np.median(runs[key][name]))
            n, voxels = counts[key][name]
            out[key][name] = {
                "median_s": median,
                "runs_s": runs[key][name],
                "voxels": voxels,
                "mvoxels_per_s": voxels / median / 1e6,
                "detections": n,
            }
    return out


def run_memory(specs: dict, frame: Path, voxel, log_dir: Path) -> dict:
    """Peak RSS of a fresh process per method that detects on one frame."""
    out = {}
    for key, spec in specs.items():
        worker = Worker(key, spec["method"], spec["python"], spec.get("model"), log_dir)
        try:
            answer = worker.request(op="time", frame=str(frame), voxel=voxel, repeats=1)
            out[key] = {
                "peak_rss_mb": answer["peak_rss_mb"],
                "rss_after_load_mb": worker.ready["rss_mb"],
                "rss_before_detect_mb": answer["rss_before_mb"],
                "seconds_cold": answer["seconds"][0],
            }
        finally:
            worker.close()
        print(f"  memory {key}: {out[key]['peak_rss_mb']:.0f} MB", flush=True)
    return out


# ----------------------------------------------------------------------------- real data


def real_reference(mask: np.ndarray) -> np.ndarray:
    """Centroids (z, y, x) of the connected components (26-connectivity) of spotMAX's predicted mask."""
    from scipy import ndimage

    labels, n = ndimage.label(mask > 0, structure=np.ones((3, 3, 3)))
    if n == 0:
        return np.zeros((0, 3))
    return np.asarray(ndimage.center_of_mass(mask > 0, labels, range(1, n + 1)), float)


def run_real(workers: dict, scratch: Path, repeats: int) -> dict | None:
    from napari_kinetochores.analysis.matching import match_points

    image_path, mask_path = (
        REAL_DIR / "input_sample.npy",
        REAL_DIR / "output_sample_mask_PREDICTED.npy",
    )
    if not image_path.is_file():
        return None
    image = np.load(image_path).astype(np.float32)
    image = image.reshape(image.shape[-3:])
    reference = real_reference(np.load(mask_path).reshape(image.shape))
    frame = scratch / "real.npy"
    np.save(frame, image)
    keys = list(workers)
    times: dict = {key: [] for key in keys}
    found: dict = {}
    for r in range(repeats):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            out = scratch / f"real_{key.replace(':', '_')}.npy"
            answer = workers[key].request(
                op="time", frame=str(frame), voxel=REAL_VOXEL_UM, repeats=1, out=str(out)
            )
            times[key].append(answer["seconds"][0])
            points = np.load(out).reshape(-1, 3)
            found[key] = points[np.isfinite(points).all(axis=1)]  # as _table: no NaN positions
    results = {}
    for key in keys:
        match = match_points(found[key], reference, REAL_VOXEL_UM, REAL_CUTOFF_UM)
        results[key] = {
            "n": int(len(found[key])),
            "f1": match.f1,
            "precision": match.precision,
            "recall": match.recall,
            "median_s": float(np.median(times[key])),
            "runs_s": times[key],
            "median_offset_nm": float(np.median(match.distances_um) * 1000) if match.tp else None,
        }
    return {
        "shape_zyx": list(image.shape),
        "assumed_voxel_um": list(REAL_VOXEL_UM),
        "cutoff_um": REAL_CUTOFF_UM,
        "n_reference": int(len(reference)),
        "reference": "connected-component centroids of output_sample_mask_PREDICTED.npy (spotMAX)",
        "methods": results,
    }


# ----------------------------------------------------------------------------- set-up


def method_specs(args) -> dict:
    project_python = str(args.project_python)
    specs: dict = {}
    if Path(project_python).exists():
        specs["classical"] = {
            "method": "classical",
            "python": project_python,
            "env": "project .venv",
        }
        for entry in args.models:
            name, _, path = entry.partition("=")
            path = path or name
            if not (
                Path(path).is_file()
                or (REPO / "src/napari_kinetochores/models" / f"{path}.pt").is_file()
            ):
                print(f"  UNet model {entry!r} not found: skipped", flush=True)
                continue
            specs[f"unet:{name}"] = {
                "method": "unet",
                "python": project_python,
                "model": path,
                "env": "project .venv",
            }
        if project_has_stardist(project_python):
            specs["stardist"] = {
                "method": "stardist",
                "python": project_python,
                "env": "project .venv (extra [stardist])",
            }
            if args.stardist_model:  # e.g. the equal-budget run of configs/stardist_budget.yaml
                specs["stardist"]["model"] = str(args.stardist_model)
        else:
            print(
                "  StarDist skipped: the project .venv lacks the extra or the bundled model",
                flush=True,
            )
    else:
        print(f"  {project_python} missing: our detectors skipped (run `make install`)", flush=True)
    for method in PEERS:
        if method in FULL_ONLY and not args.full:
            print(f"  {method}: only with --full (one gaussian fit per spot: slow)", flush=True)
            continue
        if method == "spotiflow":
            if not (args.spotiflow_model / "config.yaml").is_file():
                print(
                    f"  no Spotiflow model in {args.spotiflow_model}: skipped "
                    "(train it with `python -m benchmarks.peers.train_spotiflow`, or `make bench-peers`)",
                    flush=True,
                )
                continue
            specs[method] = {
                "method": method,
                "python": sys.executable,
                "model": str(args.spotiflow_model),
                "env": ".venv-peers",
            }
            continue
        specs[method] = {"method": method, "python": sys.executable, "env": ".venv-peers"}
    if args.methods:
        specs = {k: v for k, v in specs.items() if k in args.methods or v["method"] in args.methods}
    for key, spec in specs.items():
        label = LABELS[spec["method"]]
        spec["label"] = label + (f" ({key.split(':', 1)[1]})" if ":" in key else "")
    return specs


def default_models() -> list[str]:
    """Every bundled model (src/napari_kinetochores/models/*.pt), by name."""
    return sorted(p.stem for p in (REPO / "src/napari_kinetochores/models").glob("*.pt"))


def versions(python: str) -> dict:
    code = (
        "import json, importlib.metadata as m\nout = {}\n"
        "for p in ['numpy', 'scipy', 'scikit-image', 'torch', 'spotiflow', 'big-fish-reloaded', 'trackpy',"
        " 'numba', 'pytorch3dunet', 'napari-kinetochores']:\n"
        "    try: out[p] = m.version(p)\n    except m.PackageNotFoundError: pass\nprint(json.dumps(out))"
    )
    try:
        done = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, check=True, timeout=120
        )
        return json.loads(done.stdout)
    except (subprocess.SubprocessError, OSError, json.JSONDecodeError):
        return {}


def machine() -> dict:
    model = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
        "niceness": os.nice(0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        help="2 movies per condition, 9 conditions, sizes up to 256² (default)",
    )
    mode.add_argument(
        "--full",
        action="store_true",
        help="5 movies per condition, every condition, 512², 1024² and a 61 × 1000 × 1000 frame",
    )
    parser.add_argument(
        "--models",
        nargs="*",
        default=None,
        help="UNet checkpoints, NAME=PATH or bundled names (default: every bundled model)",
    )
    parser.add_argument(
        "--methods", nargs="*", default=None, help="run only these methods (keys or names)"
    )
    parser.add_argument(
        "--conditions", nargs="*", default=None, help="run only these conditions (names)"
    )
    parser.add_argument(
        "--movies", type=int, default=None, help="movies per condition (default 2, --full 5)"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=None, help="xy sizes of the scaling frames"
    )
    parser.add_argument("--project-python", type=Path, default=REPO / ".venv" / "bin" / "python")
    parser.add_argument("--spotiflow-model", type=Path, default=REPO / "runs" / "spotiflow")
    parser.add_argument(
        "--stardist-model",
        type=Path,
        default=None,
        help="StarDist model folder (default: the bundled stardist_default)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per method and size (median)"
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["accuracy", "speed", "memory", "real"]
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="merge this run's methods into the existing output file instead of replacing it",
    )
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "peers.json")
    args = parser.parse_args()
    if args.models is None:
        args.models = default_models()

    began = time.perf_counter()
    full = bool(args.full)
    specs = method_specs(args)
    print("methods:", ", ".join(specs), flush=True)
    log_dir = REPO / "runs" / "bench_peers_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "mode": "full" if full else "quick",
        "machine": machine(),
        "versions": {
            "project .venv": versions(str(args.project_python)),
            ".venv-peers": versions(sys.executable),
        },
        "methods": {},
        "phase_seconds": {},
    }
    install_info = Path(sys.prefix) / "bench_install.json"
    if install_info.is_file():
        results["peers_env"] = json.loads(install_info.read_text())
    spotiflow_info = args.spotiflow_model / "benchmark_info.json"
    if "spotiflow" in specs and spotiflow_info.is_file():
        results["spotiflow_training"] = json.loads(spotiflow_info.read_text())

    workers: dict[str, Worker] = {}
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as tmp:
        scratch = Path(tmp)
        try:
            for key, spec in specs.items():
                workers[key] = Worker(
                    key, spec["method"], spec["python"], spec.get("model"), log_dir
                )
                settings = workers[key].request(op="settings", voxel=(0.30, 0.13, 0.13))["settings"]
                results["methods"][key] = {
                    **{k: v for k, v in spec.items() if k != "python"},
                    "settings": settings,
                    "load_seconds": workers[key].ready["load_seconds"],
                    # each frame filtered by its own automatic threshold (issue 21)
                    "auto_thresholds": "per frame",
                }
            if "accuracy" not in args.skip:
                started = time.perf_counter()
                conditions = dict(
                    CONDITIONS, **EXTRA_CONDITIONS, **(EXTRA_CONDITIONS_FULL if full else {})
                )
                left_out = [] if full or args.conditions else list(QUICK_SKIPS)
                conditions = {k: v for k, v in conditions.items() if k not in left_out}
                if args.conditions:
                    conditions = {k: v for k, v in conditions.items() if k in args.conditions}
                print(f"accuracy: {len(conditions)} conditions", flush=True)

                def partial(accuracy: dict) -> None:
                    results["accuracy"] = accuracy
                    save(args, results)

                results["accuracy"] = run_accuracy(
                    workers,
                    conditions,
                    args.movies or (5 if full else 2),
                    scratch,
                    check_all={"blob_log"},
                    progress=partial,
                )
                results["accuracy"]["left_out_conditions"] = left_out
                results["phase_seconds"]["accuracy"] = time.perf_counter() - started
                save(args, results)
            sizes = args.sizes or list(FULL_SIZES if full else QUICK_SIZES)
            frames = scaling_frames(sizes, scratch, full)
            timed = {k: w for k, w in workers.items() if k not in ACCURACY_ONLY}
            if "speed" not in args.skip:
                started = time.perf_counter()
                print(f"speed: {', '.join(frames)}", flush=True)
                results["speed"] = {
                    "voxel_um": [0.30, 0.13, 0.13],
                    "repeats": args.repeats,
                    "methods": run_speed(timed, frames, (0.30, 0.13, 0.13), args.repeats),
                }
                results["phase_seconds"]["speed"] = time.perf_counter() - started
                save(args, results)
            if "real" not in args.skip:
                started = time.perf_counter()
                print("real data", flush=True)
                results["real_data"] = run_real(timed, scratch, args.repeats)
                results["phase_seconds"]["real"] = time.perf_counter() - started
                save(args, results)
        finally:
            for worker in workers.values():
                worker.close()
        if "memory" not in args.skip:
            started = time.perf_counter()
            name = f"{SCALING_Z}x{sizes[-1]}x{sizes[-1]}"
            print(f"memory: fresh process per method on {name}", flush=True)
            results["memory"] = {
                "frame": name,
                "methods": run_memory(
                    {k: v for k, v in specs.items() if k not in ACCURACY_ONLY},
                    frames[name],
                    (0.30, 0.13, 0.13),
                    log_dir,
                ),
            }
            results["phase_seconds"]["memory"] = time.perf_counter() - started
            save(args, results)
    results["phase_seconds"]["total"] = time.perf_counter() - began
    save(args, results)
    print(f"wrote {args.output} ({results['phase_seconds']['total']:.0f} s)")
    return 0


def save(args, results: dict) -> None:
    """Write the results so far (after every phase, so that an interrupted run keeps its work).

    With ``--merge``, the methods of this run are merged into the results
    already in the output file (for a method added later, e.g. Spotiflow
    once trained); the file then says which methods were timed in which run.
    """
    out = results
    if args.merge and args.output.is_file():
        out = _merge(json.loads(args.output.read_text()), results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_finite(out), indent=2, default=_jsonable, allow_nan=False))
    tmp.replace(args.output)


def _merge(old: dict, new: dict) -> dict:
    merged = json.loads(json.dumps(_finite(old), default=_jsonable))
    runs = merged.setdefault(
        "runs", [{"date": old.get("date"), "methods": list(old.get("methods", {}))}]
    )
    parts = [p for p in ("accuracy", "speed", "memory", "real_data") if new.get(p)]
    if not runs or runs[-1].get("date") != new.get("date"):
        runs.append({"date": new.get("date"), "methods": list(new.get("methods", {}))})
    runs[-1]["parts"] = parts  # progress writes merge too: the last write says what ran
    merged.setdefault("methods", {}).update(new.get("methods", {}))
    for key in ("spotiflow_training", "peers_env"):
        if key in new:
            merged[key] = new[key]
    if "accuracy" in new:
        accuracy = merged.setdefault("accuracy", new["accuracy"])
        for name, row in new["accuracy"]["conditions"].items():
            accuracy["conditions"].setdefault(name, {}).update(row)
        for part in ("global_oracle", "auto_consistency", "detector_seconds"):
            accuracy.setdefault(part, {}).update(new["accuracy"].get(part, {}))
        tables = accuracy.setdefault("crosscheck", {}).setdefault("tables", {})
        tables.update(new["accuracy"]["crosscheck"]["tables"])
        accuracy["crosscheck"]["all_tp_equal"] = bool(
            accuracy["crosscheck"].get("all_tp_equal", True)
            and new["accuracy"]["crosscheck"]["all_tp_equal"]
        )
    for part in ("speed", "memory", "real_data"):
        if part in new and new[part]:
            target = merged.setdefault(part, new[part])
            target.setdefault("methods", {}).update(new[part]["methods"])
    return merged


def _finite(value):
    """NaN and infinities become None (strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        return None
    return value


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


if __name__ == "__main__":
    sys.exit(main())
