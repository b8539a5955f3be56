"""Shared pytest rules for the test suite."""

from __future__ import annotations

import os

import pytest

# Threads that do not spin, in this process and in the child processes tests start
# (isolated detection, batch workers); the results do not change. On a loaded machine
# (the suite once took 21 min instead of 6) busy-waiting threads burn the CPU the others
# need. BLAS on one thread: the tests' BLAS calls are small (the spot mixture fit's SVDs);
# test_train_tiny_config_then_detect took 48 s CPU (135 s wall) with two OpenBLAS threads
# and 21 s CPU (63 s wall) with one, at load 17 on 2 cores. Torch's OpenMP threads wait
# passively: test_flip_average_in_tiles_is_flip_invariant's process took 15.5 s CPU
# (49 s wall) spinning and 9.1 s CPU (31 s wall) passive, at load 14.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_configure(config: pytest.Config) -> None:
    """Limit BLAS to one thread here too (numpy may be loaded before this file)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # then the environment variable is all there is
        return
    threadpool_limits(limits=1, user_api="blas")


@pytest.hookimpl(trylast=True)  # after `-m` has deselected what it deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep TensorFlow tests out of a process that also runs the Qt/napari tests.

    TensorFlow and Qt (with vispy's GL) segfault when loaded into one process,
    so a session that collects both runs only the others and skips the
    TensorFlow tests with the command that runs them. ``make test`` runs the
    two groups as two pytest processes, so CI covers both.
    """
    tensorflow_items = [item for item in items if item.get_closest_marker("tensorflow")]
    if not tensorflow_items or len(tensorflow_items) == len(items):
        return
    skip = pytest.mark.skip(
        reason="TensorFlow and Qt crash in one process: run `pytest -m tensorflow` on its own "
        "(make test does)"
    )
    for item in tensorflow_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_stardist_model(tmp_path_factory):
    """A tiny StarDist3D trained on bright simulated spots (configs/stardist_tiny.yaml): (config, result).

    Trained once per pytest process and shared by the training tests
    (tests/training/test_stardist.py) and the detector tests
    (tests/backends/test_stardist.py). Skipped without the extra.
    """
    pytest.importorskip(
        "stardist",
        reason='StarDist backend not installed: pip install "napari-kinetochores[stardist]"',
    )
    pytest.importorskip(
        "tensorflow", reason='TensorFlow not installed: pip install "napari-kinetochores[stardist]"'
    )
    from pathlib import Path

    import tensorflow as tf

    from napari_kinetochores.training.stardist import load_stardist_config, train_stardist

    # Seeded and deterministic ops: the tiny run is the same on every CI run (no flaky asserts).
    tf.config.experimental.enable_op_determinism()
    repo = Path(__file__).resolve().parents[1]
    config = load_stardist_config(repo / "configs" / "stardist_tiny.yaml")
    config.output_dir = str(tmp_path_factory.mktemp("stardist") / "tiny")
    result = train_stardist(config, progress=False)
    return config, result


@pytest.fixture(scope="session")
def sample_cli_detections(tmp_path_factory):
    """``kinetochores detect sample_movie.tif --method classical``, run once per session: its CSV.

    The widget tests compare against it (Detect, Evaluate, Export, layer defaults); the file
    is read-only, so a test cannot change what the next one reads.
    """
    from _napari_helpers import SAMPLE
    from napari_kinetochores.cli import main as cli

    out = tmp_path_factory.mktemp("sample_cli") / "detections.csv"
    assert cli(["detect", str(SAMPLE), "-o", str(out), "--method", "classical", "--quiet"]) == 0
    out.chmod(0o444)
    return out
