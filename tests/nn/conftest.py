"""Fixtures of the nn tests: a tiny UNet config and a noisy field with a cell of spots."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def tiny_config():
    """``tiny_config(**changes)``: a small 2-level ``ModelConfig`` (instant to build)."""
    from napari_kinetochores.nn.model import ModelConfig

    def make(**changes):
        values = dict(f_maps=8, num_levels=2, num_groups=8, pool_kernels=[[1, 2, 2]])
        values.update(changes)
        return ModelConfig(**values)

    return make


@pytest.fixture
def field_with_cell():
    """``field_with_cell(field_yx, seed=0)``: Poisson noise (mean 100) over a (16, field, field)
    frame with 20 spots of +60 in a 48² centre; returns the frame and the index of the spot centres.
    """

    def make(field_yx: int, seed: int = 0) -> tuple[np.ndarray, tuple]:
        rng = np.random.default_rng(seed)
        frame = rng.poisson(100, (16, field_yx, field_yx)).astype(np.float32)
        centre = field_yx // 2
        z, y, x = np.indices((5, 7, 7))
        blob = 60 * np.exp(-((z - 2) ** 2) / 2 - ((y - 3) ** 2 + (x - 3) ** 2) / 4)
        centres = []
        for k in range(20):
            cy, cx = centre - 24 + 10 * (k % 5), centre - 24 + 10 * (k // 5)
            frame[6:11, cy - 3 : cy + 4, cx - 3 : cx + 4] += blob
            centres.append((8, cy, cx))
        return frame, tuple(np.array(centres).T)

    return make
