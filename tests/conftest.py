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
