"""Run every benchmark and regenerate docs/benchmarks.md (what ``make bench`` calls).

Quick set (default; target: under 15 minutes on 2 cores, measured end to end in
docs/benchmarks.md):

1. ``bench_matching.py --quick``: matching scaling, 1e2 … 1e5 points;
2. ``bench_detection.py --quick``: our UNet against our classical detector
   (needs the bundled ``default`` model; skipped with a note when it is absent);
3. ``peers/run_peers.py --quick`` in ``.venv-peers``, when that environment
   exists (``make bench-peers`` creates it; otherwise it prints how): the
   peers, our detectors and StarDist 3D side by side;
4. ``report.py``: tables and plots into docs/benchmarks.md and docs/images/.

``--full`` runs the whole grid: more movies, extra conditions, larger
frames, more repeats, and ``bench_stardist.py`` (the bundled StarDist model
alone, with its threshold sweep and the large frame; in the quick set StarDist
is measured by the peer step). ``--only`` picks steps. Each step runs in its
own process; a failed step is reported and the others still run.

Usage::

    python benchmarks/run_all.py [--full] [--only matching detection stardist peers report]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS_PYTHON = REPO / ".venv-peers" / "bin" / "python"
STEPS = ("matching", "detection", "stardist", "peers", "report")


def run(name: str, command: list[str]) -> tuple[str, int, float]:
    print(f"\n=== {name}: {' '.join(str(c) for c in command)}", flush=True)
    started = time.perf_counter()
    code = subprocess.call([str(c) for c in command], cwd=REPO)
    seconds = time.perf_counter() - started
    print(f"=== {name}: exit {code} after {seconds:.0f} s", flush=True)
    return name, code, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the whole grid (hours on 2 cores)")
    parser.add_argument("--only", nargs="*", choices=STEPS, default=None)
    parser.add_argument(
        "--peers-python",
        type=Path,
        default=PEERS_PYTHON,
        help="interpreter of the peers environment (default .venv-peers/bin/python)",
    )
    parser.add_argument(
        "--spotiflow-model",
        type=Path,
        default=REPO / "runs" / "spotiflow",
        help="the Spotiflow model trained by make bench-peers",
    )
    args = parser.parse_args()
    asked = args.only or []
    args.only = asked or list(STEPS)
    quick = [] if args.full else ["--quick"]
    python = sys.executable
    done = []

    if "matching" in args.only:
        done.append(run("matching", [python, HERE / "bench_matching.py", *quick]))
    if "detection" in args.only:
        if (REPO / "src" / "napari_kinetochores" / "models" / "default.pt").is_file():
            done.append(run("detection", [python, HERE / "bench_detection.py", *quick]))
        else:
            print(
                "\n=== detection: skipped, no bundled model src/napari_kinetochores/models/default.pt"
            )
    if "stardist" in args.only:
        from bench_stardist import project_has_stardist

        if not (args.full or "stardist" in asked):
            print(
                "\n=== stardist: only with --full (or --only stardist); the quick set's StarDist "
                "figures come from the peer step"
            )
        elif project_has_stardist(python):
            done.append(run("stardist", [python, HERE / "bench_stardist.py", *quick]))
        else:
            print(
                '\n=== stardist: skipped, the extra (pip install ".[stardist]") or the bundled '
                "StarDist model is missing"
            )
    if "peers" in args.only:
        if args.peers_python.is_file():
            mode = ["--full"] if args.full else ["--quick"]
            done.append(
                run(
                    "peers",
                    [
                        "nice",
                        "-n",
                        "19",
                        args.peers_python,
                        HERE / "peers" / "run_peers.py",
                        *mode,
                        "--spotiflow-model",
                        args.spotiflow_model,
                    ],
                )
            )
        else:
            print(
                f"\n=== peers: skipped, {args.peers_python} does not exist. Create it (and train Spotiflow, about "
                "20 min) with\n    make bench-peers\n"
                "which downloads the standard torch build with its CUDA wheels (several GB)."
            )
    if "report" in args.only:
        done.append(run("report", [python, HERE / "report.py"]))

    print("\nsummary:")
    for name, code, seconds in done:
        print(f"  {name:10s} {'ok' if code == 0 else f'FAILED ({code})':12s} {seconds:7.0f} s")
    return 0 if all(code == 0 for _, code, _ in done) else 1


if __name__ == "__main__":
    sys.exit(main())
