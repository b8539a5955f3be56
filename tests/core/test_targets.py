"""Tests of training targets built from centre-of-mass points (sizes in µm)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_kinetochores.core.targets import distance_map, gaussian_heatmap, sphere_mask
from napari_kinetochores.errors import InputError

VOXEL = (0.3, 0.13, 0.13)
SHAPE = (15, 41, 41)


def _physical_distances(points: np.ndarray, shape, voxel) -> np.ndarray:
    """(N, Z, Y, X) physical distance (µm) of every voxel to every point."""
    grid = np.indices(shape, dtype=float)
    diff = grid[None] - np.asarray(points, float)[:, :, None, None, None]
    return np.sqrt(np.sum((diff * np.asarray(voxel)[None, :, None, None, None]) ** 2, axis=1))


# --------------------------------------------------------------------------
# gaussian heatmap


def test_heatmap_is_one_at_voxel_centred_points():
    points = np.array([[3.0, 10.0, 10.0], [10.0, 30.0, 25.0]])
    heat = gaussian_heatmap(points, SHAPE, VOXEL, 0.15)
    assert heat.shape == SHAPE and heat.dtype == np.float32
    np.testing.assert_allclose(heat[tuple(points.astype(int).T)], 1.0)
    assert heat.max() == pytest.approx(1.0)
    assert heat.min() >= 0.0


def test_heatmap_sigma_is_in_um():
    centre = (7, 20, 20)
    sigma_um = 0.3  # one voxel in z, 0.3 / 0.13 voxels in x
    heat = gaussian_heatmap([centre], SHAPE, VOXEL, sigma_um)
    assert heat[8, 20, 20] == pytest.approx(math.exp(-0.5), rel=1e-6)  # 1 sigma along z
    assert heat[6, 20, 20] == pytest.approx(math.exp(-0.5), rel=1e-6)
    # Along x, 1 sigma = 0.3 µm = 2.31 voxels: check at 3 voxels.
    expected_x = math.exp(-0.5 * (3 * 0.13 / sigma_um) ** 2)
    assert heat[7, 20, 23] == pytest.approx(expected_x, rel=1e-6)

    # With sigma = one x voxel, the value one voxel away along x is exp(-0.5).
    heat = gaussian_heatmap([centre], SHAPE, VOXEL, 0.13)
    assert heat[7, 20, 21] == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert heat[7, 21, 20] == pytest.approx(math.exp(-0.5), rel=1e-6)


def test_heatmap_per_axis_sigma_and_physical_isotropy():
    centre = (7, 20, 20)
    heat = gaussian_heatmap([centre], SHAPE, VOXEL, (0.3, 0.26, 0.13))
    assert heat[8, 20, 20] == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert heat[7, 22, 20] == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert heat[7, 20, 21] == pytest.approx(math.exp(-0.5), rel=1e-6)
    # Isotropic sigma: equal physical distance gives equal value (0.39 µm in z and x).
    voxel = (0.39, 0.13, 0.13)
    heat = gaussian_heatmap([centre], SHAPE, voxel, 0.2)
    assert heat[8, 20, 20] == pytest.approx(heat[7, 20, 23], rel=1e-6)


def test_heatmap_matches_formula_at_subvoxel_points():
    points = np.array([[6.3, 18.7, 21.2]])
    sigma = 0.2
    heat = gaussian_heatmap(points, SHAPE, VOXEL, sigma)
    expected = np.exp(-0.5 * (_physical_distances(points, SHAPE, VOXEL)[0] / sigma) ** 2)
    # Only the window of 4 sigma is drawn; values beyond are below exp(-8).
    np.testing.assert_allclose(heat, expected, atol=math.exp(-8) + 1e-7)
    assert np.argmax(heat) == np.ravel_multi_index((6, 19, 21), SHAPE)
    assert heat.max() < 1.0


def test_heatmap_overlapping_spots_combine_by_maximum():
    points = np.array([[7.0, 20.0, 18.0], [7.0, 20.0, 22.0]])  # 0.52 µm apart in x
    sigma = 0.2
    heat = gaussian_heatmap(points, SHAPE, VOXEL, sigma)
    distances = _physical_distances(points, SHAPE, VOXEL)
    expected = np.exp(-0.5 * (distances / sigma) ** 2).max(axis=0)
    np.testing.assert_allclose(heat, expected, atol=math.exp(-8) + 1e-7)
    # The midpoint is not brighter than either gaussian alone (no summing).
    assert heat[7, 20, 20] == pytest.approx(math.exp(-0.5 * (0.26 / sigma) ** 2), rel=1e-6)
    assert heat[7, 20, 20] < heat[7, 20, 18]
    # Coincident points still give 1, not 2.
    heat = gaussian_heatmap(np.array([[7.0, 20.0, 20.0]] * 2), SHAPE, VOXEL, sigma)
    assert heat.max() == pytest.approx(1.0)


def test_heatmap_empty_points_and_points_outside():
    heat = gaussian_heatmap(np.zeros((0, 3)), SHAPE, VOXEL, 0.15)
    assert heat.shape == SHAPE and not heat.any()
    heat = gaussian_heatmap([[100.0, 20.0, 20.0], [-50.0, 0.0, 0.0]], SHAPE, VOXEL, 0.15)
    assert not heat.any()


# --------------------------------------------------------------------------
# sphere mask


def test_sphere_mask_membership_in_um():
    rng = np.random.default_rng(4)
    points = rng.uniform([2, 5, 5], [12, 35, 35], (6, 3))
    for radius in (0.2, 0.35, 0.5):
        mask = sphere_mask(points, SHAPE, VOXEL, radius)
        assert mask.dtype == bool and mask.shape == SHAPE
        expected = (_physical_distances(points, SHAPE, VOXEL) <= radius).any(axis=0)
        nearest = np.round(points).astype(int)
        expected[tuple(nearest.T)] = True  # every point marks its own nearest voxel
        np.testing.assert_array_equal(mask, expected)


def test_sphere_mask_known_shape():
    mask = sphere_mask([[7.0, 20.0, 20.0]], SHAPE, VOXEL, 0.3)
    # 0.3 µm reaches one voxel in z and two in x or y (0.26 µm), not three (0.39 µm).
    assert mask[8, 20, 20] and mask[6, 20, 20] and not mask[9, 20, 20]
    assert mask[7, 20, 22] and not mask[7, 20, 23]
    assert mask[7, 22, 20] and not mask[7, 23, 20]
    assert not mask[8, 20, 22]  # sqrt(0.3² + 0.26²) = 0.40 µm
    assert mask.sum() == 23  # as in the docstring example


def test_sphere_mask_tiny_radius_marks_nearest_voxel():
    mask = sphere_mask([[7.4, 20.6, 19.5001]], SHAPE, VOXEL, 0.01)
    assert mask.sum() == 1
    assert mask[7, 21, 20]


def test_sphere_mask_empty_points():
    mask = sphere_mask(np.zeros((0, 3)), SHAPE, VOXEL, 0.3)
    assert mask.shape == SHAPE and not mask.any()


def test_sphere_mask_point_outside_volume_marks_nothing():
    mask = sphere_mask([[-5.0, 20.0, 20.0]], SHAPE, VOXEL, 0.3)
    assert not mask.any()


# --------------------------------------------------------------------------
# distance map


def test_distance_map_voxel_centred_points():
    points = np.array([[3.0, 10.0, 10.0], [3.0, 10.0, 14.0], [11.0, 30.0, 25.0]])
    clip = 0.8
    dist = distance_map(points, SHAPE, VOXEL, clip_um=clip)
    assert dist.dtype == np.float32 and dist.shape == SHAPE
    np.testing.assert_array_equal(dist[tuple(points.astype(int).T)], 0.0)
    physical = _physical_distances(points, SHAPE, VOXEL).min(axis=0)
    np.testing.assert_allclose(dist, np.minimum(physical, clip) / clip, atol=1e-5)
    assert np.all(dist[physical >= clip] == 1.0)
    inside = physical < clip
    np.testing.assert_allclose(dist[inside], physical[inside] / clip, atol=1e-5)
    assert 0.0 <= dist.min() and dist.max() <= 1.0


def test_distance_map_known_values():
    dist = distance_map([[7.0, 20.0, 20.0]], SHAPE, VOXEL, clip_um=1.0)
    assert dist[8, 20, 20] == pytest.approx(0.3, rel=1e-5)
    assert dist[7, 20, 21] == pytest.approx(0.13, rel=1e-5)
    assert dist[8, 21, 21] == pytest.approx(math.sqrt(0.09 + 2 * 0.0169), rel=1e-5)
    assert dist[0, 0, 0] == 1.0
    dist = distance_map([[7.0, 20.0, 20.0]], SHAPE, VOXEL, clip_um=0.5)
    assert dist[8, 20, 20] == pytest.approx(0.6, rel=1e-5)
    assert dist[9, 20, 20] == 1.0  # 0.6 µm > clip


def test_distance_map_subvoxel_points_measure_true_distance():
    points = np.array([[6.4, 18.7, 21.2], [6.0, 30.2, 10.0]])
    dist = distance_map(points, SHAPE, VOXEL, clip_um=1.0)
    physical = _physical_distances(points, SHAPE, VOXEL).min(axis=0)
    near = physical < 0.5  # close to a point the nearest voxel seed is the nearest point
    np.testing.assert_allclose(dist[near], physical[near], atol=1e-5)
    assert dist.min() > 0.0


def test_distance_map_empty_points():
    dist = distance_map(np.zeros((0, 3)), SHAPE, VOXEL)
    assert dist.shape == SHAPE and dist.dtype == np.float32
    assert np.all(dist == 1.0)


# --------------------------------------------------------------------------
# bad input


TARGETS = [
    (gaussian_heatmap, {"sigma_um": 0.15}),
    (sphere_mask, {"radius_um": 0.3}),
    (distance_map, {"clip_um": 1.0}),
]


@pytest.mark.parametrize(("function", "extra"), TARGETS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"voxel_size_um": (0.0, 0.13, 0.13)},
        {"voxel_size_um": (0.3, -0.13, 0.13)},
        {"voxel_size_um": (0.3, 0.13)},
        {"shape_zyx": (41, 41)},
        {"points_zyx": [[7.0, np.nan, 20.0]]},
        {"points_zyx": [[7.0, np.inf, 20.0]]},
    ],
)
def test_bad_input_raises(function, extra, kwargs):
    arguments = {"points_zyx": [[7.0, 20.0, 20.0]], "shape_zyx": SHAPE, "voxel_size_um": VOXEL}
    arguments.update(extra)
    arguments.update(kwargs)
    with pytest.raises(InputError):
        function(**arguments)


@pytest.mark.parametrize(
    ("function", "kwargs"),
    [
        (gaussian_heatmap, {"sigma_um": 0.0}),
        (gaussian_heatmap, {"sigma_um": -0.1}),
        (sphere_mask, {"radius_um": 0.0}),
        (distance_map, {"clip_um": -1.0}),
    ],
)
def test_bad_size_raises(function, kwargs):
    with pytest.raises(InputError):
        function([[7.0, 20.0, 20.0]], SHAPE, VOXEL, **kwargs)


@pytest.mark.parametrize(("function", "extra"), TARGETS)
def test_nan_voxel_size_raises(function, extra):
    with pytest.raises(InputError):
        function([[7.0, 20.0, 20.0]], SHAPE, (np.nan, 0.13, 0.13), **extra)


@pytest.mark.parametrize(("function", "extra"), TARGETS)
def test_points_with_two_columns_raise(function, extra):
    with pytest.raises(InputError):
        function([[7.0, 20.0], [8.0, 21.0], [9.0, 22.0]], SHAPE, VOXEL, **extra)
