"""Training budgets of the learned methods, from their stored logs, into results/peers.json ``training``.

The steps and wall minutes that produced each method's benchmarked weights:

- ours (``default``, ``single_frame``, ``stardist``): the training logs in
  ``docs/training_log_*.csv`` (``seconds`` is cumulative within a stage)
  times ``steps_per_epoch`` of the stage's ``configs/*.yaml``, summed over
  the stages up to the epoch whose weights are bundled (docs/models.md,
  docs/stardist.md);
- Spotiflow: ``steps_done`` and ``fit_seconds`` that ``train_spotiflow.py``
  recorded (``peers.json`` ``spotiflow_training``).

Usage (from the repository root)::

    python -m benchmarks.training_budgets [--peers benchmarks/results/peers.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
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


def steps_per_epoch(config: Path) -> int:
    """``steps_per_epoch`` of a training config (a top-level YAML key)."""
    import yaml

    return int(yaml.safe_load(config.read_text())["steps_per_epoch"])


def stage_budget(log: Path, config: Path, last_epoch: int | None) -> tuple[int, float]:
    """(steps, seconds) of one stage up to ``last_epoch`` (None: the whole log)."""
    with log.open() as handle:
        rows = [row for row in csv.DictReader(handle)]
    if last_epoch is not None:
        rows = [row for row in rows if int(row["epoch"]) <= last_epoch]
    return len(rows) * steps_per_epoch(config), float(rows[-1]["seconds"])


def budgets(peers: dict) -> dict:
    """``{method: {"steps": N, "minutes": M, "source": ...}}`` for every learned method."""
    out = {}
    for method, stages in STAGES.items():
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
    spotiflow = peers.get("spotiflow_training")
    if spotiflow:
        out["spotiflow"] = {
            "steps": int(spotiflow["steps_done"]),
            "minutes": round(spotiflow["fit_seconds"] / 60, 1),
            "source": "peers.json spotiflow_training (train_spotiflow.py)",
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--peers", type=Path, default=REPO / "benchmarks" / "results" / "peers.json"
    )
    args = parser.parse_args()
    peers = json.loads(args.peers.read_text())
    peers["training"] = budgets(peers)
    args.peers.write_text(json.dumps(peers, indent=2))  # as run_peers writes it
    print(json.dumps(peers["training"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
