"""Fixtures of the volume reader tests."""

from __future__ import annotations

import numpy as np
import pytest

from _io_helpers import SHAPE


@pytest.fixture
def movie() -> np.ndarray:
    """A random uint16 movie of shape SHAPE (T, C, Z, Y, X)."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 1000, size=SHAPE).astype(np.uint16)
