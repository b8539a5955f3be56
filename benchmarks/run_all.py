"""Run every benchmark and regenerate docs/benchmarks.md (what ``make bench`` calls).

Every step is a module of this package, run in its own process from the
repository root; a failed step is reported and the others still run. A step
that cannot run here is skipped with a line that says why, and the summary
lists it again.

Quick set (default; how long each step took on 2 cores is not recorded in
benchmarks/results, so it is not quoted here):

1. ``matching``: ``bench_matching --quick``, matching scaling, 1e2 … 1e5 points;
2. ``detection``: ``bench_detection --quick``, our UNet against our classical
   detector (needs the bundled ``default`` model);
3. ``batch``: ``bench_batch --quick``, and
4. ``pairing_tracking``: ``bench_pairing_tracking --quick``: tiny sizes that
   check the scripts end to end. Their sections of docs/benchmarks.md are
   generated from full runs, so the quick runs write to ``runs/bench_quick/``
   and leave ``results/batch.json`` and ``results/pairing_tracking.json``
   alone;
5. ``robustness``: ``bench_robustness --quick`` (``--full`` with ``--full``),
   held-out movies of an independent renderer, when that module exists;
6. ``stardist``: only with ``--full`` or ``--only stardist`` (in the quick set
   StarDist is measured by the peer step);
7. ``finetune`` and ``review``: ``bench_finetune --quick`` and
   ``bench_review --quick``, the correction loop (fine-tuning on corrected
   frames; review by uncertainty) on tiny movies. They check the scripts end to
   end and leave ``results/finetune.json``, ``results/review.json`` and the
   docs alone; ``--full`` runs them at full size (about 60 and 8 CPU-minutes);
8. ``peers``: ``peers.run_peers --quick`` in ``.venv-peers``, when that
   environment exists (``make bench-peers`` creates it; otherwise it prints
   how): the peers, our detectors and StarDist 3D side by side;
9. ``report``: tables and plots into docs/benchmarks.md and docs/images/.

``--full`` runs the whole grid (hours on 2 cores): more movies, extra
conditions, larger frames, more repeats, the batch and pairing benchmarks at
their full size (into ``results/``), and ``bench_stardist`` (the bundled
StarDist model alone, with its threshold sweep and the large frame).
``--only`` picks steps.

Usage (from the repository root)::

    python -m benchmarks.run_all [--full] [--only matching detection batch ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_stardist import project_has_stardist
from benchmarks.common import REPO

PEERS_PYTHON = REPO / ".venv-peers" / "bin" / "python"
QUICK_OUTPUT = REPO / "runs" / "bench_quick"
"""Where the quick checks of the batch and pairing benchmarks write (their figures come from --full)."""
STEPS = (
    "matching",
    "detection",
    "batch",
    "pairing_tracking",
    "robustness",
    "stardist",
    "finetune",
    "review",
    "peers",
    "report",
)


def module(name: str, *args, python: str | Path = sys.executable) -> list:
    """The command that runs ``benchmarks.<name>`` as a module with ``python``."""
    return [python, "-m", f"benchmarks.{name}", *args]


def run(name: str, command: list) -> tuple[str, str, float]:
    """Run one step from the repository root: (name, outcome, seconds)."""
    print(f"\n=== {name}: {' '.join(str(c) for c in command)}", flush=True)
    started = time.perf_counter()
    code = subprocess.call([str(c) for c in command], cwd=REPO)
    seconds = time.perf_counter() - started
    print(f"=== {name}: exit {code} after {seconds:.0f} s", flush=True)
    return name, "ok" if code == 0 else f"FAILED ({code})", seconds


def skip(name: str, why: str) -> tuple[str, str, float]:
    print(f"\n=== {name}: skipped, {why}", flush=True)
    return name, "skipped", 0.0


def check_run(name: str, full: bool) -> tuple[str, str, float]:
    """The batch or pairing benchmark: full size into results/, or a quick check elsewhere."""
    if full:
        return run(name, module(f"bench_{name}"))
    QUICK_OUTPUT.mkdir(parents=True, exist_ok=True)
    return run(name, module(f"bench_{name}", "--quick", "--output", QUICK_OUTPUT / f"{name}.json"))


def stardist_step(args, asked: list[str], quick: list[str]) -> tuple[str, str, float]:
    if not (args.full or "stardist" in asked):
        return skip(
            "stardist",
            "only with --full (or --only stardist); the quick set's StarDist figures come "
            "from the peer step",
        )
    if not project_has_stardist(sys.executable):
        return skip(
            "stardist",
            'the extra (pip install ".[stardist]") or the bundled StarDist model is missing',
        )
    return run("stardist", module("bench_stardist", *quick))


def peers_step(args) -> tuple[str, str, float]:
    if not args.peers_python.is_file():
        return skip(
            "peers",
            f"{args.peers_python} does not exist. Create it (and train the equal-budget "
            "Spotiflow and StarDist models, about an hour each) "
            "with\n    make bench-peers\nwhich downloads the standard torch build with its CUDA "
            "wheels (several GB).",
        )
    mode = "--full" if args.full else "--quick"
    command = module(
        "peers.run_peers",
        mode,
        "--spotiflow-model",
        args.spotiflow_model,
        *(["--stardist-model", args.stardist_model] if args.stardist_model.is_dir() else []),
        python=args.peers_python,
    )
    return run("peers", ["nice", "-n", "19", *command])


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
        default=REPO / "runs" / "spotiflow_budget",
        help="the Spotiflow model trained by make bench-peers",
    )
    parser.add_argument(
        "--stardist-model",
        type=Path,
        default=REPO / "runs" / "stardist_budget",
        help="the equal-budget StarDist model trained by make bench-peers (when absent: the "
        "bundled one)",
    )
    args = parser.parse_args()
    asked = args.only or []
    steps = asked or list(STEPS)
    quick = [] if args.full else ["--quick"]
    done = []

    if "matching" in steps:
        done.append(run("matching", module("bench_matching", *quick)))
    if "detection" in steps:
        if (REPO / "src" / "napari_kinetochores" / "models" / "default.pt").is_file():
            done.append(run("detection", module("bench_detection", *quick)))
        else:
            done.append(
                skip("detection", "no bundled model src/napari_kinetochores/models/default.pt")
            )
    for name in ("batch", "pairing_tracking"):
        if name in steps:
            done.append(check_run(name, args.full))
    if "robustness" in steps:
        if importlib.util.find_spec("benchmarks.bench_robustness") is None:
            done.append(skip("robustness", "benchmarks/bench_robustness.py does not exist yet"))
        else:
            size = "--full" if args.full else "--quick"
            done.append(run("robustness", module("bench_robustness", size)))
    if "stardist" in steps:
        done.append(stardist_step(args, asked, quick))
    if "finetune" in steps:
        done.append(run("finetune", module("bench_finetune", *quick)))
    if "review" in steps:
        done.append(run("review", module("bench_review", *quick)))
    if "peers" in steps:
        done.append(peers_step(args))
    if "report" in steps:
        done.append(run("report", module("report")))

    print("\nsummary:")
    for name, outcome, seconds in done:
        print(f"  {name:17s} {outcome:12s} {seconds:7.0f} s")
    return 0 if all(outcome in ("ok", "skipped") for _, outcome, _ in done) else 1


if __name__ == "__main__":
    sys.exit(main())
