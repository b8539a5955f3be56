"""Tests for benchmarks/training_budgets.py: the learned methods' budgets and the floors of issue 21."""

import json
import sys

from benchmarks.report import _budget_floor_words
from benchmarks.training_budgets import budgets, timed


def test_budgets_flag_a_peer_below_half_our_default() -> None:
    peers = {
        "spotiflow_training": {
            "steps_done": 1800,
            "train_seconds": 55 * 60,
            "fit_seconds": 56 * 60,
            "cpu_seconds": 50 * 60,
            "torch_threads": 1,
            "load_avg_epochs": [2.0, 3.0],
        }
    }
    out = budgets(peers)
    assert out["default"]["steps"] == 3560  # docs/training_log_default*.csv × configs
    assert out["spotiflow"]["floor_steps"] == out["default"]["steps"] / 2
    assert out["spotiflow"]["floors_met"] is True
    assert out["spotiflow"]["load_avg_mean"] == 2.5
    assert out["stardist"]["floors_met"] is False  # the bundled model: 7 min
    assert _budget_floor_words(out["stardist"]) == "**no**"
    assert _budget_floor_words(out["spotiflow"]).startswith(
        "yes (1800 steps, 55.0 min, 50.0 CPU-min"
    )


def test_budgets_miss_the_minute_floor() -> None:
    peers = {"spotiflow_training": {"steps_done": 5000, "fit_seconds": 20 * 60}}
    assert budgets(peers)["spotiflow"]["floors_met"] is False


def test_timed_records_the_command(tmp_path) -> None:
    out = tmp_path / "timing.json"
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    code = timed([sys.executable, "-c", burn], out)
    record = json.loads(out.read_text())
    assert code == record["returncode"] == 0
    # this child's CPU time only (not earlier children of the test process)
    assert 0.3 <= record["cpu_seconds"] < 5 and record["wall_seconds"] >= 0.3
    assert len(record["load_avg_per_minute"]) == 1
