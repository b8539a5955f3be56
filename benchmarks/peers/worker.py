"""A long-lived process that runs one detector on request (JSON lines on stdin / stdout).

run_peers.py starts one worker per method, with the interpreter of the
environment the method lives in (the project's ``.venv`` for our detectors,
``.venv-peers`` for the peers), and sends it requests, so that timings of
different methods can be interleaved (A/B) with warm processes. Frames and
movies travel as ``.npy`` files; results come back as ``.npz`` files.

Requests (one JSON object per line; the answer is one JSON line)::

    {"op": "settings", "voxel": [z, y, x]}
    {"op": "accuracy", "movie": "m.npy", "voxel": [...], "out": "r.npz", "check_auto": true}
    {"op": "time", "frame": "f.npy", "voxel": [...], "repeats": 1, "out": "d.npz"}
    {"op": "quit"}

Every answer carries ``rss_mb`` (now) and ``peak_rss_mb`` (the process's own
high-water mark, VmHWM: :func:`benchmarks.common.peak_rss_mb`).

Usage (from the repository root)::

    python -m benchmarks.peers.worker METHOD [--model PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from benchmarks.common import peak_rss_mb, rss_mb
from benchmarks.peers.detectors import make_detector


def accuracy(detector, request: dict) -> dict:
    """Candidates (and optionally the automatic result) of channel 0 of every frame of a movie.

    Each frame's automatic threshold is kept (``auto_thresholds``, one per
    frame): Big-FISH, trackpy and blob_log choose theirs per image.
    """
    movie = np.load(request["movie"])
    voxel = request["voxel"]
    start = time.perf_counter()
    rows, auto_rows, thresholds = [], [], []
    if detector.name == "unet":
        if detector.needs_channels() > movie.shape[1]:
            return {"skipped": f"model needs {detector.needs_channels()} channels"}
        found = detector.detect_movie(movie, voxel, detector.candidate_threshold())
        for t, (coords, scores) in enumerate(found):
            rows.append(np.column_stack([np.full(len(coords), t), coords, scores]))
            thresholds.append(detector.auto_score())
        if request.get("check_auto"):
            for t, (coords, scores) in enumerate(detector.detect_movie(movie, voxel)):
                auto_rows.append(np.column_stack([np.full(len(coords), t), coords, scores]))
    else:
        for t in range(movie.shape[0]):
            coords, scores, auto_threshold = detector.candidates(movie[t, 0], voxel)
            rows.append(np.column_stack([np.full(len(coords), t), coords, scores]))
            thresholds.append(auto_threshold)
            if request.get("check_auto"):
                coords, scores = detector.detect(movie[t, 0], voxel)
                auto_rows.append(np.column_stack([np.full(len(coords), t), coords, scores]))
    seconds = time.perf_counter() - start
    table = np.concatenate(rows) if rows else np.zeros((0, 5))
    auto_table = np.concatenate(auto_rows) if auto_rows else np.zeros((0, 5))
    per_frame = np.array([np.nan if v is None else float(v) for v in thresholds], np.float64)
    np.savez(
        request["out"],
        candidates=table.reshape(-1, 5),
        auto=auto_table.reshape(-1, 5),
        auto_thresholds=per_frame,
    )
    return {
        "seconds": seconds,
        "n_candidates": len(table),
        "auto_thresholds": per_frame.tolist(),
    }


def timing(detector, request: dict) -> dict:
    """Wall time of ``detect`` on one frame, ``repeats`` times (the automatic-threshold run)."""
    frame = np.load(request["frame"])
    voxel = request["voxel"]
    rss_before = rss_mb()
    seconds = []
    coords = np.zeros((0, 3))
    for _ in range(int(request.get("repeats", 1))):
        start = time.perf_counter()
        coords, _ = detector.detect(frame, voxel)
        seconds.append(time.perf_counter() - start)
    if request.get("out"):
        np.save(request["out"], np.asarray(coords, float).reshape(-1, 3))
    return {
        "seconds": seconds,
        "n": len(coords),
        "voxels": int(frame.size),
        "rss_before_mb": rss_before,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method")
    parser.add_argument("--model", default=None, help="UNet checkpoint or Spotiflow model folder")
    args = parser.parse_args()

    # Libraries print progress and warnings; keep stdout for the answers only.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        detector = make_detector(args.method, args.model)
    answers.write(
        json.dumps(
            {
                "ready": True,
                "load_seconds": time.perf_counter() - started,
                "rss_mb": rss_mb(),
                "peak_rss_mb": peak_rss_mb(),
            }
        )
        + "\n"
    )
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.get("op")
        if op == "quit":
            break
        try:
            with contextlib.redirect_stdout(sys.stderr):
                if op == "settings":
                    answer = {"settings": detector.settings(request["voxel"])}
                elif op == "accuracy":
                    answer = accuracy(detector, request)
                elif op == "time":
                    answer = timing(detector, request)
                else:
                    answer = {"error": f"unknown op {op!r}"}
        except Exception as error:  # report, keep serving
            answer = {
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
            }
        answer.update(rss_mb=rss_mb(), peak_rss_mb=peak_rss_mb())
        answers.write(json.dumps(answer, default=_jsonable) + "\n")
    return 0


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


if __name__ == "__main__":
    sys.exit(main())
