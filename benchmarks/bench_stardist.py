"""StarDist 3D benchmark: the bundled StarDist model on the detection benchmark's held-out movies.

Same conditions, movies (seeds) and metric as ``bench_detection``: the
``CONDITIONS``, ``make_movies`` and ``evaluate_method`` of
:mod:`benchmarks.common` (the full ``detect_movie`` pipeline, then one-to-one
matching F1 at 0.3 and 0.15 µm pooled over the movies). Adds the F1 against
the probability threshold per condition, and optionally the time and peak
memory of one 61 × 1000 × 1000 frame (``common.run_speed``, own subprocess).

Writes ``benchmarks/results/stardist.json`` and the "StarDist 3D" section of
``docs/benchmarks.md`` (between ``<!-- stardist:begin -->`` and
``<!-- stardist:end -->``; the rest of the file is left alone). Where
``results/detection.json`` holds the same movies, the UNet and classical F1
are shown next to StarDist's.

Needs the extra: ``pip install "napari-kinetochores[stardist]"``.

Usage (from the repository root)::

    nice -n 19 python -m benchmarks.bench_stardist [--quick] [--model PATH] [--skip-speed]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import (
    CONDITIONS,
    REPO,
    evaluate_method,
    make_movies,
    num,
    run_speed,
    threshold_sweep,
)
from benchmarks.report import HEADER, replace_section

HERE = Path(__file__).resolve().parent
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
DATE = time.strftime("%Y-%m-%d")


def project_has_stardist(python: str | Path) -> bool:
    """Whether that interpreter has the ``[stardist]`` extra and the bundled StarDist model.

    Asked in a subprocess: ``run_all.py`` and ``run_peers.py`` (which runs in
    ``.venv-peers``) both decide with it whether StarDist can be benchmarked.
    """
    code = (
        "from napari_kinetochores.backends.stardist import require_stardist, stardist_model_path\n"
        "require_stardist(); stardist_model_path(None)"
    )
    try:
        done = subprocess.run([str(python), "-c", code], capture_output=True, timeout=300, cwd=REPO)
    except (subprocess.SubprocessError, OSError):
        return False
    return done.returncode == 0


def _cache_detector_loads() -> None:
    """Load each StarDist model once per run (``detect_movie`` loads per call)."""
    from napari_kinetochores.backends import stardist as stardist_backend

    original = stardist_backend.StarDistDetector.load
    cache: dict = {}

    def load(name_or_path=None, tile_shape=None):
        key = (
            None if name_or_path is None else str(name_or_path),
            None if tile_shape is None else tuple(tile_shape),
        )
        if key not in cache:
            cache[key] = original(name_or_path, tile_shape)
        return cache[key]

    stardist_backend.StarDistDetector.load = staticmethod(load)


def stardist_threshold_sweep(
    model: str | None, movies_by_condition: dict, thresholds=THRESHOLDS
) -> dict:
    """F1 at 0.3 µm against StarDist's probability threshold, per condition (pooled counts)."""
    from napari_kinetochores.backends.stardist import StarDistDetector

    detector = StarDistDetector.load(model)

    def candidates(name, movie, volume, t):
        return detector.detect_volume(volume.frame(t, 0), volume.voxel_size_um, min(thresholds))

    return threshold_sweep(movies_by_condition, candidates, thresholds, inclusive=True)


def section(results: dict) -> str:
    """Markdown of the StarDist 3D section."""
    info = results["model_info"]
    lines = [
        "## StarDist 3D",
        "",
        f"Date {results['date']}; machine: {results['machine']}. Model: `{results['model']}` "
        f"(StarDist3D, {info.get('n_rays')} rays with anisotropy {info.get('anisotropy')}, grid "
        f"{info.get('grid')}; default probability threshold {num(info.get('threshold'), 2)}; "
        f"detections at the {info.get('center')}-weighted centre of each polyhedron). "
        f"Held-out movies of the detection benchmark (`benchmarks.common.make_movies`; "
        f"{results['n_movies_per_condition']} per condition, 3 frames, 32 × 128 × 128), F1 pooled "
        "over the movies, matching cutoff 0.3 µm unless stated. Produced by "
        "`python -m benchmarks.bench_stardist` (needs the `[stardist]` extra); see "
        "[stardist.md](stardist.md).",
        "",
    ]
    others = results.get("same_movies_from_detection_json") or {}
    other_names = sorted({name for row in others.values() for name in row})
    header = "| condition | StarDist F1 | F1 @0.15 µm | precision | recall | median error (nm) |"
    rule = "|---|---|---|---|---|---|"
    for name in other_names:
        header += f" {name} F1 |"
        rule += "---|"
    lines += [header, rule]
    for condition, row in results["accuracy"].items():
        line = (
            f"| {condition} | {num(row['f1@0.3'])} | {num(row['f1@0.15'])} | {num(row['precision@0.3'])} "
            f"| {num(row['recall@0.3'])} | {num(row['median_nm'], 1)} |"
        )
        for name in other_names:
            line += f" {num(others.get(condition, {}).get(name))} |"
        lines.append(line)
    if other_names:
        lines += [
            "",
            f"UNet / classical columns: `results/detection.json` of {results['detection_json_date']}, "
            "same movies (same seeds and count).",
        ]
    sweep = results.get("threshold_sweep")
    if sweep:
        thresholds = list(next(iter(sweep.values())))
        lines += [
            "",
            "F1 at 0.3 µm against the probability threshold (how flat the default is):",
            "",
            "| condition | " + " | ".join(thresholds) + " |",
            "|---|" + "---|" * len(thresholds),
        ]
        for condition, row in sweep.items():
            lines.append(f"| {condition} | " + " | ".join(num(row[t]) for t in thresholds) + " |")
    speed = results.get("speed")
    if speed:
        lines += [
            "",
            "One 61 × 1000 × 1000 frame (cell in the centre), 2-core CPU"
            + (f", measured {results['speed_measured']}" if "speed_measured" in results else "")
            + f": {speed['seconds']:.0f} s, "
            f"peak RSS {speed['peak_rss_mb']:.0f} MB, {speed['n']} detections "
            f"(tiles {results['model_info'].get('tile_shape')}, StarDist `n_tiles`)"
            + (
                "."
                if speed.get("memory") == "VmHWM"
                else "; peak RSS measured as `ru_maxrss`, which includes the benchmark driver's "
                "peak inherited over fork + exec: an upper bound (now VmHWM; updates with the "
                "next run)."
            ),
        ]
    return "\n".join(lines) + "\n"


def write_doc(doc: Path, body: str) -> None:
    text = doc.read_text() if doc.is_file() else HEADER
    doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(replace_section(text, "stardist", body))
    tmp.replace(doc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 movies per condition instead of 5")
    parser.add_argument(
        "--model", help="StarDist model folder (default: the bundled stardist_default)"
    )
    parser.add_argument("--output", type=Path, default=HERE / "results" / "stardist.json")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--skip-speed", action="store_true", help="no 61 × 1000 × 1000 timing")
    parser.add_argument("--skip-sweep", action="store_true", help="no threshold sweep")
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="re-measure only the 61 × 1000 × 1000 timing and memory into the stored results",
    )
    args = parser.parse_args()
    if args.speed_only:
        results = json.loads(args.output.read_text())
        results["speed"] = run_speed("stardist", args.model, "cell")
        results["speed_measured"] = time.strftime("%Y-%m-%d")
        print("speed", results["speed"], flush=True)
        args.output.write_text(json.dumps(results, indent=2, default=float))
        write_doc(args.doc, section(results))
        return 0

    from napari_kinetochores.backends.stardist import StarDistDetector, require_stardist

    require_stardist()
    _cache_detector_loads()
    detector = StarDistDetector.load(args.model)
    config = json.loads((detector.path / "config.json").read_text())
    n_movies = 2 if args.quick else 5
    results = {
        "date": DATE,
        "measured": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, 2-core CPU ({os.cpu_count()} logical), shared",
        "model": str(detector.path.relative_to(REPO))
        if detector.path.is_relative_to(REPO)
        else str(detector.path),
        "model_info": {
            "n_rays": config.get("n_rays"),
            "grid": config.get("grid"),
            "anisotropy": config.get("anisotropy"),
            "threshold": detector.threshold,
            "nms_threshold": detector.nms_threshold,
            "center": detector.center,
            "tile_shape": list(detector.tile_shape),
        },
        "n_movies_per_condition": n_movies,
        "accuracy": {},
    }
    movies_by_condition = {}
    started = time.perf_counter()
    for name, condition in CONDITIONS.items():
        movies_by_condition[name] = make_movies(condition, n_movies, n_frames=3)
        results["accuracy"][name] = evaluate_method(
            "stardist", args.model, movies_by_condition[name]
        )
        print(name, round(results["accuracy"][name]["f1@0.3"], 3), flush=True)
    results["accuracy_seconds"] = time.perf_counter() - started
    if not args.skip_sweep:
        results["threshold_sweep"] = stardist_threshold_sweep(args.model, movies_by_condition)
    detection_json = HERE / "results" / "detection.json"
    if detection_json.is_file():
        other = json.loads(detection_json.read_text())
        if other.get("n_movies_per_condition") == n_movies:
            results["detection_json_date"] = other.get("date")
            results["same_movies_from_detection_json"] = {
                condition: {name: (row or {}).get("f1@0.3") for name, row in rows.items() if row}
                for condition, rows in other.get("accuracy", {}).items()
            }
    if not args.skip_speed:
        results["speed"] = run_speed("stardist", args.model, "cell")
        print("speed", results["speed"], flush=True)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=float))
    write_doc(args.doc, section(results))
    print(f"wrote {args.output} and the StarDist section of {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
