"""benchmarks/common.py: the process's own peak memory, per-frame counts and their bootstrap intervals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
# benchmarks/ is a folder of the repository, not of the installed package
sys.path.insert(0, str(REPO))

from benchmarks.common import bootstrap_ci, frame_counts, peak_rss_mb  # noqa: E402

VOXEL = (0.3, 0.13, 0.13)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_peak_memory_of_a_subprocess_is_its_own_not_its_parents():
    """A child started by a 400 MB parent reports its own peak (ru_maxrss would carry 400 MB over)."""
    child = (
        f"import json, resource, sys; sys.path.insert(0, {str(REPO)!r});"
        "from benchmarks.common import peak_rss_mb;"
        "print(json.dumps([peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))"
    )
    parent = (
        "import subprocess, sys, numpy as np;"
        "block = np.ones(400 * 2**20 // 8);"
        f"print(subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True,"
        " check=True).stdout)"
    )
    done = subprocess.run(
        [sys.executable, "-c", parent], capture_output=True, text=True, check=True
    )
    own, inherited = json.loads(done.stdout.strip().splitlines()[-1])
    assert inherited > 400  # what ru_maxrss reports in the child
    assert own < 200
    assert peak_rss_mb() > 0


def test_frame_counts_and_bootstrap_interval_contain_the_pooled_figures():
    rng = np.random.default_rng(0)
    frames = []
    for movie in range(3):
        for _ in range(3):
            truth = rng.uniform(0, 60, (40, 3))
            found = truth[rng.random(40) < 0.9] + rng.normal(0, 0.2, (1, 3))
            frames.append(frame_counts(found, truth, VOXEL, movie))
    tp = sum(f["tp"] for f in frames)
    f1 = 2 * tp / sum(f["n_pred"] + f["n_gt"] for f in frames)
    median = np.median(np.concatenate([f["errors_nm"] for f in frames]))
    ci = bootstrap_ci(frames, n_resamples=300)
    assert ci["f1"][0] <= f1 <= ci["f1"][1] < 1.0
    assert ci["median_nm"][0] <= median <= ci["median_nm"][1]
    assert ci == bootstrap_ci(frames, n_resamples=300)  # a fixed seed: the report regenerates it


def test_one_movie_only_still_resamples_its_frames():
    frames = [
        {"movie": 0, "tp": tp, "n_pred": 40, "n_gt": 40, "errors_nm": [30.0]} for tp in (20, 40)
    ]
    low, high = bootstrap_ci(frames, n_resamples=400)["f1"]
    assert low == 0.5 and high == 1.0
