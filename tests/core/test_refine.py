"""Tests of sub-voxel refinement of detections on the image (refine.refine_detections)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kinetochores.core.refine import (
    MIXTURE_MAX_SHIFT_UM,
    fit_spot_mixture,
    refine_detections,
)
from napari_kinetochores.errors import InputError

VOXEL = np.array((0.3, 0.13, 0.13))


def _spots(seed: int, n: int = 40, snr: float = 10.0):
    """Gaussian spots (sigma 0.25, 0.12, 0.12 µm) at random sub-voxel positions, noise sigma 1."""
    rng = np.random.default_rng(seed)
    shape = (20, 96, 96)
    truth = rng.uniform((3, 6, 6), np.array(shape) - (3, 6, 6), (n, 3))
    truth = truth[np.argsort(truth[:, 1])]
    image = rng.normal(100, 1.0, shape).astype(np.float32)
    grid = np.indices(shape).reshape(3, -1).T
    sigma = np.array((0.25, 0.12, 0.12)) / VOXEL
    for point in truth:
        near = np.all(np.abs(grid - point) < 4 * sigma + 1, axis=1)
        d2 = (((grid[near] - point) / sigma) ** 2).sum(axis=1)
        image.reshape(-1)[np.flatnonzero(near)] += snr * np.exp(-d2 / 2)
    return image, truth


def _error_nm(coords, truth):
    return np.linalg.norm((coords - truth) * VOXEL, axis=1) * 1000


def test_refinement_recovers_sub_voxel_centres():
    image, truth = _spots(0)
    start = np.round(truth)  # a detector's peak voxel
    refined = refine_detections(image, start, VOXEL)
    assert np.all(np.abs(refined - start) <= 0.5)  # never further than half a voxel
    assert refined.shape == truth.shape
    assert np.median(_error_nm(refined, truth)) < 35  # a voxel is 300 nm in z, 130 nm in y, x
    assert np.median(_error_nm(refined, truth)) < 0.5 * np.median(_error_nm(np.round(truth), truth))


def test_refinement_keeps_points_without_signal_and_handles_edges():
    image = np.random.default_rng(2).normal(0, 1, (8, 32, 32)).astype(np.float32)
    image[...] = 0.0
    points = np.array([[0, 0, 0], [7, 31, 31], [4.2, 10.3, 20.7]])
    np.testing.assert_array_equal(refine_detections(image, points, VOXEL), points)
    assert refine_detections(image, np.zeros((0, 3)), VOXEL).shape == (0, 3)
    with pytest.raises(InputError, match="3-D"):
        refine_detections(image[0], points, VOXEL)


def test_refinement_stays_inside_the_volume():
    rng = np.random.default_rng(4)
    image = rng.normal(0, 0.1, (6, 24, 24)).astype(np.float32)
    image[0, 0, 0] = image[5, 23, 23] = 50.0  # bright spots in opposite corners
    refined = refine_detections(image, [[0, 0, 0], [5, 23, 23], [0, 1, 1]], VOXEL)
    assert np.all(refined >= -0.5) and np.all(refined <= np.array(image.shape) - 0.5)
    # two neighbouring detections of one spot do not collapse onto one position
    both = refine_detections(image, [[5, 23, 23], [5, 22, 23]], VOXEL)
    assert np.abs(both[0] - both[1]).max() > 0.5


def _stacked_pair(seed: int):
    """A dim spot 0.66 µm below a 3x brighter one along z (PSF sigma 0.3, 0.1, 0.1 µm)."""
    rng = np.random.default_rng(seed)
    truth = np.array([[8.3, 20.4, 19.7], [10.5, 20.6, 19.9]])
    z, y, x = np.indices((20, 40, 40)).astype(float)
    sigma = np.array((0.3, 0.1, 0.1)) / VOXEL
    image = rng.normal(100.0, 2.0, z.shape)
    for amplitude, (pz, py, px) in zip((30.0, 90.0), truth, strict=True):
        image += amplitude * np.exp(
            -0.5
            * (((z - pz) / sigma[0]) ** 2 + ((y - py) / sigma[1]) ** 2 + ((x - px) / sigma[2]) ** 2)
        )
    return image, truth


def test_joint_fit_is_not_pulled_by_a_brighter_neighbour():
    errors_alone, errors_joint = [], []
    for seed in range(5):
        image, truth = _stacked_pair(seed)
        start = np.round(truth)
        alone = refine_detections(image, start, VOXEL)
        joint = fit_spot_mixture(image, alone, VOXEL)
        errors_alone.append(_error_nm(alone, truth)[0])
        errors_joint.append(_error_nm(joint, truth)[0])
    # the dim spot: the brighter one's tail pulls a lone fit towards it, not a joint one
    assert np.median(errors_joint) < 40
    assert np.median(errors_joint) < 0.6 * np.median(errors_alone)


def test_joint_fit_bounds_and_degenerate_input():
    image, truth = _stacked_pair(0)
    start = truth + np.array([0.9, 0.0, -1.2])  # far from the centre: the move is bounded
    fitted = fit_spot_mixture(image, start, VOXEL)
    assert np.all(np.abs(fitted - start) <= np.asarray(MIXTURE_MAX_SHIFT_UM) / VOXEL + 1e-9)
    assert fit_spot_mixture(image, np.zeros((0, 3)), VOXEL).shape == (0, 3)
    flat = np.full((10, 20, 20), 7.0)  # no spot: no amplitude, the start is kept
    np.testing.assert_allclose(fit_spot_mixture(flat, [[5, 10, 10]], VOXEL), [[5, 10, 10]])
    with pytest.raises(InputError, match="3-D"):
        fit_spot_mixture(image[0], start, VOXEL)


def test_a_long_chain_of_neighbours_keeps_its_start():
    image, _ = _stacked_pair(1)
    chain = np.array([[10.0, 20.0, 5.0 + 3 * i] for i in range(10)])  # 0.39 µm apart
    np.testing.assert_array_equal(fit_spot_mixture(image, chain, VOXEL), chain)
