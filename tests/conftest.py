"""Shared pytest rules for the test suite."""

from __future__ import annotations

import pytest


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
