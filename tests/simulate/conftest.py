"""Fixtures shared by the simulator tests: small, fast parameters."""

from __future__ import annotations

import pytest

SMALL = {"n_frames": 2, "shape_zyx": (16, 64, 64), "n_pairs": 6}


@pytest.fixture
def small():
    """Factory: ``small(**fields)`` -> SimulationParams of a 2-frame 16 × 64 × 64 movie with 6
    pairs, ``fields`` overriding."""
    from napari_kinetochores.simulate import SimulationParams

    def make(**fields):
        return SimulationParams(**{**SMALL, **fields})

    return make
