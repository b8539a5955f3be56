"""Tests of 3D peak detection with anisotropic neighbourhoods and sub-voxel refinement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_kinetochores.core.peaks import find_peaks
from napari_kinetochores.core.targets import distance_map, gaussian_heatmap
from napari_kinetochores.errors import InputError

VOXEL = (0.3, 0.13, 0.13)
SHAPE = (21, 41, 41)
SPOT_SIGMA_UM = (0.25, 0.1, 0.1)


def _blob_positions(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([10.0, 20.0, 20.0]) + rng.uniform(-0.5, 0.5, (n, 3))


@pytest.mark.parametrize(
    ("refine", "tolerance"), [("gaussian", 0.1), ("quadratic", 0.25), ("centroid", 0.25)]
)
def test_single_blob_subvoxel_position(refine, tolerance):
    for position in _blob_positions(15, seed=1):
        volume = gaussian_heatmap([position], SHAPE, VOXEL, SPOT_SIGMA_UM)
        coords, scores = find_peaks(volume, VOXEL, threshold_abs=0.1, refine=refine)
        assert coords.shape == (1, 3)
        assert np.max(np.abs(coords[0] - position)) <= tolerance, (position, coords[0])
        assert scores[0] == pytest.approx(float(volume[tuple(np.round(position).astype(int))]))


def test_gaussian_refinement_is_nearly_exact_on_gaussians():
    for position in _blob_positions(10, seed=2):
        volume = gaussian_heatmap([position], SHAPE, VOXEL, SPOT_SIGMA_UM)
        coords, _ = find_peaks(volume, VOXEL, threshold_abs=0.1, refine="gaussian")
        np.testing.assert_allclose(coords[0], position, atol=1e-3)


def test_refinement_beats_integer_positions():
    positions = _blob_positions(10, seed=3)
    errors = {}
    for refine in ("none", "quadratic"):
        err = []
        for position in positions:
            volume = gaussian_heatmap([position], SHAPE, VOXEL, SPOT_SIGMA_UM)
            coords, _ = find_peaks(volume, VOXEL, threshold_abs=0.1, refine=refine)
            err.append(np.linalg.norm(coords[0] - position))
        errors[refine] = np.mean(err)
    assert errors["quadratic"] < 0.5 * errors["none"]


def test_refine_none_returns_integer_voxels():
    volume = gaussian_heatmap([[10.3, 20.2, 19.7]], SHAPE, VOXEL, SPOT_SIGMA_UM)
    coords, _ = find_peaks(volume, VOXEL, threshold_abs=0.1, refine="none")
    np.testing.assert_array_equal(coords, [[10.0, 20.0, 20.0]])


def test_several_blobs_sorted_by_score():
    positions = np.array([[5.0, 10.0, 10.0], [15.0, 30.0, 10.0], [10.0, 20.0, 32.0]])
    amplitudes = np.array([0.5, 1.0, 0.8])
    volume = np.max(
        [
            a * gaussian_heatmap([p], SHAPE, VOXEL, SPOT_SIGMA_UM)
            for a, p in zip(amplitudes, positions, strict=True)
        ],
        axis=0,
    )
    coords, scores = find_peaks(volume, VOXEL, threshold_abs=0.1)
    np.testing.assert_allclose(scores, [1.0, 0.8, 0.5], rtol=1e-6)
    np.testing.assert_allclose(coords, positions[[1, 2, 0]], atol=1e-6)


def test_plateau_gives_one_peak_at_its_centre():
    volume = np.zeros((15, 21, 21), np.float32)
    volume[7, 10, 10:12] = 1.0  # two equal voxels
    coords, scores = find_peaks(volume, VOXEL, threshold_abs=0.1)
    np.testing.assert_allclose(coords, [[7.0, 10.0, 10.5]])
    np.testing.assert_allclose(scores, [1.0])

    volume = np.zeros((15, 21, 21), np.float32)
    volume[4:11, 6:13, 8:15] = 2.0  # a flat cube larger than the neighbourhood
    coords, scores = find_peaks(volume, VOXEL, threshold_abs=0.1)
    np.testing.assert_allclose(coords, [[7.0, 9.0, 11.0]])
    np.testing.assert_allclose(scores, [2.0])


def test_min_distance_is_anisotropic_in_um():
    """Rule: cuboid neighbourhood of half-size floor(d / voxel), then thinning at d µm."""
    # Two peaks 2 voxels apart in z = 0.6 µm.
    volume = np.zeros((11, 21, 21), np.float32)
    volume[3, 10, 10] = 1.0
    volume[5, 10, 10] = 0.9
    # 0.5 µm: half-size floor(0.5 / 0.3) = 1 voxel in z, and 0.6 µm > 0.5 µm: both kept.
    coords, _ = find_peaks(volume, VOXEL, min_distance_um=0.5, threshold_abs=0.1)
    np.testing.assert_array_equal(coords, [[3, 10, 10], [5, 10, 10]])
    # 0.6 µm: half-size 2 voxels in z covers the weaker peak: one left.
    coords, _ = find_peaks(volume, VOXEL, min_distance_um=0.6, threshold_abs=0.1)
    np.testing.assert_array_equal(coords, [[3, 10, 10]])

    # The same 0.5 µm along x is 3.8 voxels: peaks 3 voxels (0.39 µm) apart merge,
    # peaks 4 voxels (0.52 µm) apart stay separate.
    for gap, expected in ((3, 1), (4, 2)):
        volume = np.zeros((11, 21, 21), np.float32)
        volume[5, 10, 8] = 1.0
        volume[5, 10, 8 + gap] = 0.9
        coords, _ = find_peaks(volume, VOXEL, min_distance_um=0.5, threshold_abs=0.1)
        assert len(coords) == expected, gap

    # And 2 voxels in z (0.6 µm) are far apart while 2 voxels in x (0.26 µm) are close.
    volume = np.zeros((11, 21, 21), np.float32)
    volume[3, 10, 5] = 1.0
    volume[5, 10, 5] = 0.9
    volume[3, 10, 15] = 1.0
    volume[3, 10, 17] = 0.9
    coords, _ = find_peaks(volume, VOXEL, min_distance_um=0.3, threshold_abs=0.1)
    assert sorted(map(tuple, coords.tolist())) == [(3, 10, 5), (3, 10, 15), (5, 10, 5)]


def test_equal_peaks_closer_than_min_distance_are_thinned():
    volume = np.zeros((11, 21, 21), np.float32)
    volume[5, 10, 5] = 1.0
    volume[5, 10, 7] = 1.0  # 0.26 µm away, same height, not touching
    coords, _ = find_peaks(volume, VOXEL, min_distance_um=0.3, threshold_abs=0.1)
    assert len(coords) == 1
    coords, _ = find_peaks(volume, VOXEL, min_distance_um=0.2, threshold_abs=0.1)
    assert len(coords) == 2


def test_thresholds():
    positions = np.array([[5.0, 10.0, 10.0], [15.0, 30.0, 30.0]])
    volume = np.maximum(
        gaussian_heatmap(positions[:1], SHAPE, VOXEL, SPOT_SIGMA_UM),
        0.4 * gaussian_heatmap(positions[1:], SHAPE, VOXEL, SPOT_SIGMA_UM),
    )
    assert len(find_peaks(volume, VOXEL, threshold_abs=0.3)[0]) == 2
    assert len(find_peaks(volume, VOXEL, threshold_abs=0.5)[0]) == 1
    # Strictly above: a peak equal to the threshold is dropped.
    assert len(find_peaks(volume * 1.25, VOXEL, threshold_abs=0.5)[0]) == 1
    assert len(find_peaks(volume, VOXEL, threshold_rel=0.3)[0]) == 2
    assert len(find_peaks(volume, VOXEL, threshold_rel=0.5)[0]) == 1
    coords, _ = find_peaks(volume, VOXEL, threshold_abs=0.3, threshold_rel=0.5)
    np.testing.assert_allclose(coords, positions[:1], atol=1e-6)


def test_mode_min_on_distance_map_finds_centres():
    points = np.array([[5.0, 10.0, 10.0], [5.0, 10.0, 20.0], [12.0, 30.0, 15.0]])
    dist = distance_map(points, (15, 41, 41), VOXEL, clip_um=1.0)
    coords, scores = find_peaks(dist, VOXEL, mode="min", threshold_abs=0.5)
    assert len(coords) == 3
    order = np.lexsort(coords.T[::-1])
    np.testing.assert_allclose(coords[order], points, atol=1e-6)
    np.testing.assert_allclose(scores, 0.0, atol=1e-6)  # scores are the map's values


def test_mode_min_subvoxel_centres():
    points = np.array([[5.3, 9.8, 10.4], [9.0, 25.0, 25.0]])
    dist = distance_map(points, (15, 41, 41), VOXEL, clip_um=1.0)
    coords, _ = find_peaks(dist, VOXEL, mode="min", threshold_abs=0.5)
    assert len(coords) == 2
    order = np.argsort(coords[:, 0])
    assert np.max(np.abs(coords[order] - points)) <= 0.25


def test_mode_min_threshold_is_strictly_below():
    dist = distance_map([[5.0, 10.0, 10.0]], (11, 21, 21), VOXEL, clip_um=1.0)
    volume = dist + 0.2
    assert len(find_peaks(volume, VOXEL, mode="min", threshold_abs=0.3)[0]) == 1
    assert len(find_peaks(volume, VOXEL, mode="min", threshold_abs=0.1)[0]) == 0


def test_exclude_border_um():
    volume = gaussian_heatmap([[1.0, 20.0, 20.0], [10.0, 20.0, 2.0]], SHAPE, VOXEL, 0.15)
    volume = np.maximum(volume, gaussian_heatmap([[10.0, 20.0, 20.0]], SHAPE, VOXEL, 0.15))
    assert len(find_peaks(volume, VOXEL, threshold_abs=0.1)[0]) == 3
    # 0.26 µm: two x voxels (0.26 µm) from the border is just allowed.
    coords, _ = find_peaks(volume, VOXEL, threshold_abs=0.1, exclude_border_um=0.26)
    assert len(coords) == 3
    # 0.6 µm: both border peaks (0.3 µm and 0.26 µm from the border) go.
    coords, _ = find_peaks(volume, VOXEL, threshold_abs=0.1, exclude_border_um=0.6)
    np.testing.assert_allclose(coords, [[10.0, 20.0, 20.0]], atol=1e-6)
    # Per axis: excluding only along x keeps the peak near the z border.
    coords, _ = find_peaks(volume, VOXEL, threshold_abs=0.1, exclude_border_um=(0.0, 0.0, 0.6))
    assert sorted(coords[:, 0].round().tolist()) == [1.0, 10.0]


def test_exclude_border_drops_peaks_closer_than_the_distance():
    volume = gaussian_heatmap([[1.0, 20.0, 20.0], [10.0, 20.0, 20.0]], SHAPE, VOXEL, 0.15)
    coords, _ = find_peaks(volume, VOXEL, threshold_abs=0.1, exclude_border_um=0.55)
    np.testing.assert_allclose(coords, [[10.0, 20.0, 20.0]], atol=1e-6)


def test_constant_and_empty_volumes_give_no_peaks():
    for volume in (np.zeros(SHAPE), np.full(SHAPE, 3.5, np.float32), np.zeros((0, 10, 10))):
        for mode in ("max", "min"):
            coords, scores = find_peaks(volume, VOXEL, mode=mode)
            assert coords.shape == (0, 3)
            assert scores.shape == (0,)


def test_threshold_above_everything_gives_no_peaks():
    volume = gaussian_heatmap([[10.0, 20.0, 20.0]], SHAPE, VOXEL, SPOT_SIGMA_UM)
    coords, scores = find_peaks(volume, VOXEL, threshold_abs=2.0)
    assert coords.shape == (0, 3) and scores.shape == (0,)


def test_nan_voxels_are_ignored():
    volume = gaussian_heatmap([[10.0, 20.0, 20.0]], SHAPE, VOXEL, SPOT_SIGMA_UM)
    volume[0, 0, :5] = np.nan
    coords, _ = find_peaks(volume, VOXEL, threshold_abs=0.1)
    np.testing.assert_allclose(coords, [[10.0, 20.0, 20.0]], atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"volume": np.zeros((10, 10))},
        {"volume": np.zeros((2, 5, 10, 10))},
        {"voxel_size_um": (0.0, 0.13, 0.13)},
        {"voxel_size_um": (0.3, -0.13, 0.13)},
        {"voxel_size_um": (0.3, 0.13)},
        {"voxel_size_um": (0.3, np.nan, 0.13)},
        {"min_distance_um": -0.1},
        {"exclude_border_um": -1.0},
        {"mode": "maximum"},
        {"refine": "spline"},
    ],
)
def test_bad_input_raises(kwargs):
    volume = gaussian_heatmap([[10.0, 20.0, 20.0]], SHAPE, VOXEL, SPOT_SIGMA_UM)
    arguments = {"volume": volume, "voxel_size_um": VOXEL, "threshold_abs": 0.1, **kwargs}
    with pytest.raises(InputError):
        find_peaks(**arguments)


def test_thresholded_search_in_the_box_equals_the_whole_search():
    """With threshold_abs the search is cut to the box around voxels above it: same peaks."""
    rng = np.random.default_rng(11)
    volume = ndimage.gaussian_filter(rng.random((20, 80, 80)), (1, 2, 2)).astype(np.float32)
    volume[:, :30, :] *= 0.5  # peaks only in part of the volume
    threshold = float(np.quantile(volume, 0.995))
    boxed = find_peaks(volume, (0.3, 0.13, 0.13), 0.3, threshold_abs=threshold, refine="gaussian")
    # a relative threshold that removes nothing switches the box off
    whole = find_peaks(
        volume,
        (0.3, 0.13, 0.13),
        0.3,
        threshold_abs=threshold,
        threshold_rel=-1e9,
        refine="gaussian",
    )
    assert len(boxed[0]) > 3
    np.testing.assert_array_equal(boxed[0], whole[0])
    np.testing.assert_array_equal(boxed[1], whole[1])
