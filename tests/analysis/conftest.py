"""Fixtures shared by the analysis tests: a simulated movie's ground truth, and noisy detections."""

from __future__ import annotations

import pytest

VOXEL = (0.3, 0.13, 0.13)


@pytest.fixture(scope="session")
def movie():
    """Ground truth of a 6-frame movie: 24 pairs in a tilted, oscillating plate."""
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    params = SimulationParams(n_frames=6, shape_zyx=(36, 112, 112), n_pairs=24, plate_tilt_deg=35.0)
    return simulate_movie(params, seed=11)


@pytest.fixture(scope="session")
def noisy(movie):
    """40 nm 3D-RMS localisation noise (23 nm per axis) and 3 % dropouts."""
    from napari_kinetochores.analysis.measurements import perturb_points

    return perturb_points(movie.points, VOXEL, noise_nm=23.0, dropout=0.03, seed=5)
