"""Training budgets of the learned methods, from their stored logs, into results/peers.json ``training``.

The steps and wall minutes that produced each method's benchmarked weights:

- ours (``default``, ``single_frame``, ``stardist``): the training logs in
  ``docs/training_log_*.csv`` (``seconds`` is cumulative within a stage)
  times ``steps_per_epoch`` of the stage's ``configs/*.yaml``, summed over
  the stages up to the epoch whose weights are bundled (docs/models.md,
  docs/stardist.md). When the peer benchmark ran StarDist from the
  equal-budget run (``configs/stardist_budget.yaml``, model folder
  ``stardist_budget``), its whole log (``docs/training_log_stardist_budget.csv``)
  is a third stage, and its CPU minutes and load come from
  ``peers.json`` ``stardist_training`` (``--stardist-timing``);
- Spotiflow: ``steps_done``, ``train_seconds`` (``fit_seconds`` for runs
  before the step/minute floors) and ``cpu_seconds`` that
  ``train_spotiflow.py`` recorded (``peers.json`` ``spotiflow_training``).

Issue 21 asks each peer's training for at least half our ``default``'s steps
and minutes (``floor_steps``, ``floor_minutes``, ``floors_met`` per peer).

``python -m benchmarks.training_budgets timed --out FILE -- COMMAND ...`` runs a
training command and writes its wall and CPU seconds (``getrusage`` of the
child), the load average sampled every minute and the exit status to FILE
(JSON): how the equal-budget StarDist run (configs/stardist_budget.yaml) was
timed.

Usage (from the repository root)::

    python -m benchmarks.training_budgets [--peers benchmarks/results/peers.json]
        [--stardist-timing runs/stardist_budget_logs/timing.json]
    python -m benchmarks.training_budgets timed --out runs/x/timing.json -- kinetochores train ...
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import REPO

STAGES = {
    # method: [(log, config, last epoch used or None for the whole log)]
    "default": [
        ("training_log_default.csv", "default.yaml", None),
        ("training_log_default_stage2.csv", "default_stage2.yaml", None),
        ("training_log_default_stage3.csv", "default_stage3.yaml", 40),  # bundled: epoch 40
    ],
    "single_frame": [
        ("training_log_single_frame.csv", "single_frame.yaml", None),
        # bundled: the best checkpoint of stage 2 (validation F1 0.909, epoch 4)
        ("training_log_single_frame_stage2.csv", "single_frame_stage2.yaml", 4),
    ],
    "stardist": [
        ("training_log_stardist_stage1.csv", "stardist.yaml", None),
        ("training_log_stardist_stage2.csv", "stardist_stage2.yaml", 3),  # bundled: epoch 3
    ],
}


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def steps_per_epoch(config: Path) -> int:
    """``steps_per_epoch`` of a training config (a top-level YAML key)."""
    return int(_yaml(config)["steps_per_epoch"])


def stage_budget(log: Path, config: Path, last_epoch: int | None) -> tuple[int, float]:
    """(steps, seconds) of one stage up to ``last_epoch`` (None: the whole log)."""
    with log.open() as handle:
        rows = [row for row in csv.DictReader(handle)]
    if last_epoch is not None:
        rows = [row for row in rows if int(row["epoch"]) <= last_epoch]
    return len(rows) * steps_per_epoch(config), float(rows[-1]["seconds"])


STARDIST_BUDGET_STAGE = ("training_log_stardist_budget.csv", "stardist_budget.yaml", None)
"""The equal-budget StarDist run: a third stage from the bundled weights (configs/stardist_budget.yaml)."""


def budgets(peers: dict) -> dict:
    """``{method: {"steps": N, "minutes": M, "source": ...}}`` for every learned method."""
    stages_by_method = dict(STAGES)
    stardist_model = peers.get("methods", {}).get("stardist", {}).get("settings", {}).get("model")
    if stardist_model == "stardist_budget":
        stages_by_method["stardist"] = [*STAGES["stardist"], STARDIST_BUDGET_STAGE]
    out = {}
    for method, stages in stages_by_method.items():
        steps = seconds = 0.0
        for log, config, last in stages:
            s, sec = stage_budget(REPO / "docs" / log, REPO / "configs" / config, last)
            steps, seconds = steps + s, seconds + sec
        out[method] = {
            "steps": int(steps),
            "minutes": round(seconds / 60, 1),
            "source": ", ".join(
                f"docs/{log} × configs/{config}" + ("" if last is None else f" to epoch {last}")
                for log, config, last in stages
            ),
        }
    timing = peers.get("stardist_training")
    if stardist_model == "stardist_budget" and timing:
        log, config, _ = STARDIST_BUDGET_STAGE
        steps, seconds = stage_budget(REPO / "docs" / log, REPO / "configs" / config, None)
        out["stardist"]["last_stage"] = {
            "steps": steps,
            "minutes": round(seconds / 60, 1),
            "cpu_minutes": round(timing["cpu_seconds"] / 60, 1),
            "process_wall_minutes": round(timing["wall_seconds"] / 60, 1),
            "threads": timing.get("threads"),
            "load_avg_mean": _mean(timing.get("load_avg_per_minute")),
        }
    spotiflow = peers.get("spotiflow_training")
    if spotiflow:
        seconds = spotiflow.get("train_seconds") or spotiflow["fit_seconds"]
        out["spotiflow"] = {
            "steps": int(spotiflow["steps_done"]),
            "minutes": round(seconds / 60, 1),
            "source": "peers.json spotiflow_training (train_spotiflow.py)",
        }
        if "cpu_seconds" in spotiflow:
            out["spotiflow"].update(
                cpu_minutes=round(spotiflow["cpu_seconds"] / 60, 1),
                threads=spotiflow.get("torch_threads"),
                load_avg_mean=_mean(spotiflow.get("load_avg_epochs")),
            )
    floor_steps, floor_minutes = out["default"]["steps"] / 2, out["default"]["minutes"] / 2
    for method in ("stardist", "spotiflow"):
        if method in out:
            out[method].update(
                floor_steps=floor_steps,
                floor_minutes=floor_minutes,
                floors_met=bool(
                    out[method]["steps"] >= floor_steps and out[method]["minutes"] >= floor_minutes
                ),
            )
    return out


def stardist_log_summary(log: Path) -> dict:
    """Steps, minutes and best validation epoch of the equal-budget StarDist log.

    ``bundled_val_f1``: the validation F1 of the bundled weights (stage 2, epoch 3),
    the same validation set (configs/stardist*.yaml ``validation``).
    """
    steps, seconds = stage_budget(log, REPO / "configs" / STARDIST_BUDGET_STAGE[1], None)
    with log.open() as handle:
        rows = list(csv.DictReader(handle))
    best = max(rows, key=lambda row: float(row["val_f1"]))
    with (REPO / "docs" / "training_log_stardist_stage2.csv").open() as handle:
        bundled = [row for row in csv.DictReader(handle) if int(row["epoch"]) == 3][0]
    return {
        "steps": steps,
        "log_minutes": round(seconds / 60, 1),
        "best_epoch": int(best["epoch"]),
        "best_val_f1": float(best["val_f1"]),
        "best_threshold": float(best["threshold"]),
        "bundled_val_f1": float(bundled["val_f1"]),
    }


def _mean(values: list | None) -> float | None:
    """The mean of a list of load averages, to 2 decimals (None when there is none)."""
    return round(sum(values) / len(values), 2) if values else None


def timed(command: list[str], out: Path) -> int:
    """Run ``command``; write its wall / CPU seconds and the load average per minute to ``out``."""

    def children_cpu() -> float:  # of every child waited for so far: take differences
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    cpu_before, started = children_cpu(), time.perf_counter()
    process = subprocess.Popen(command)
    loads = []
    while True:  # at least one sample, then one a minute
        loads.append(round(os.getloadavg()[0], 2))
        try:
            process.wait(timeout=60)
            break
        except subprocess.TimeoutExpired:
            pass
    record = {
        "command": command,
        "returncode": process.returncode,
        "wall_seconds": round(time.perf_counter() - started, 3),
        "cpu_seconds": round(children_cpu() - cpu_before, 3),
        "load_avg_per_minute": loads,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    return process.returncode


def main() -> int:
    if sys.argv[1:2] == ["timed"]:
        parser = argparse.ArgumentParser(description=timed.__doc__)
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("command", nargs=argparse.REMAINDER)
        args = parser.parse_args(sys.argv[2:])
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        return timed(command, args.out)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--peers", type=Path, default=REPO / "benchmarks" / "results" / "peers.json"
    )
    parser.add_argument(
        "--stardist-timing",
        type=Path,
        default=None,
        help="timing.json of the equal-budget StarDist run (`timed`), kept as peers.json stardist_training",
    )
    args = parser.parse_args()
    peers = json.loads(args.peers.read_text())
    if args.stardist_timing:
        timing = json.loads(args.stardist_timing.read_text())
        peers["stardist_training"] = {
            **timing,
            "config": "configs/stardist_budget.yaml",
            "threads": _yaml(REPO / "configs" / "stardist_budget.yaml")["num_threads"],
            "log": "docs/training_log_stardist_budget.csv",
            **stardist_log_summary(REPO / "docs" / STARDIST_BUDGET_STAGE[0]),
        }
    peers["training"] = budgets(peers)
    args.peers.write_text(json.dumps(peers, indent=2))  # as run_peers writes it
    print(json.dumps(peers["training"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
