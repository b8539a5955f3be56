"""Tests of the classical DoG spot detector."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kinetochores.analysis.matching import match_points
from napari_kinetochores.backends.classical import (
    DEFAULT_THRESHOLD_SIGMAS,
    detect_spots_classical,
    dog_response,
    robust_noise_sigma,
)
from napari_kinetochores.core.targets import gaussian_heatmap
from napari_kinetochores.errors import InputError
from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams, simulate_movie

VOXEL = (0.3, 0.13, 0.13)


def _simulated_frame(seed: int, **overrides):
    params = SimulationParams(
        n_frames=1,
        shape_zyx=(24, 80, 80),
        n_pairs=12,
        snr=SNR_LEVELS["moderate"],
        **overrides,
    )
    movie = simulate_movie(params, seed=seed)
    points = movie.points
    gt = points[(points["t"] == 0) & (points["channel"] == 0)][["z", "y", "x"]].to_numpy()
    return movie.image[0, 0], gt, movie.voxel_size_um


def test_finds_simulated_kinetochores_at_moderate_snr():
    """Every spot at the moderate SNR (no brightness spread): F1 >= 0.9 on each frame."""
    tp = n_pred = n_gt = 0
    for seed in range(3):
        frame, gt, voxel = _simulated_frame(seed, brightness_cv=0.0)
        assert len(gt) >= 20
        coords, scores = detect_spots_classical(frame, voxel)
        result = match_points(coords, gt, voxel, cutoff_um=0.3)
        assert result.f1 >= 0.9, (seed, result.tp, result.fp, result.fn)
        assert np.all(scores > DEFAULT_THRESHOLD_SIGMAS)
        # Sub-voxel positions: the median error is well below the cutoff.
        assert np.median(result.distances_um) < 0.1
        tp, n_pred, n_gt = tp + result.tp, n_pred + result.n_pred, n_gt + result.n_gt
    assert 2 * tp / (n_pred + n_gt) >= 0.95


def test_moderate_snr_with_brightness_spread_is_mostly_found():
    """Default simulator settings (brightness CV 0.3): few false positives, most spots found."""
    tp = n_pred = n_gt = 0
    for seed in range(3):
        frame, gt, voxel = _simulated_frame(seed)
        coords, _ = detect_spots_classical(frame, voxel)
        result = match_points(coords, gt, voxel, cutoff_um=0.3)
        tp, n_pred, n_gt = tp + result.tp, n_pred + result.n_pred, n_gt + result.n_gt
    assert tp / n_pred >= 0.95  # precision
    assert 2 * tp / (n_pred + n_gt) >= 0.85  # F1 pooled over frames


def test_constant_frame_gives_no_detections():
    for value in (0.0, 100.0, 65535.0):
        coords, scores = detect_spots_classical(np.full((16, 48, 48), value, np.float32), VOXEL)
        assert coords.shape == (0, 3) and scores.shape == (0,)


def test_pure_noise_gives_almost_no_detections():
    rng = np.random.default_rng(7)
    total = 0
    for _ in range(3):
        gaussian = rng.normal(100.0, 5.0, (24, 96, 96)).astype(np.float32)
        poisson = rng.poisson(20.0, (24, 96, 96)).astype(np.uint16)
        for frame in (gaussian, poisson):
            coords, scores = detect_spots_classical(frame, VOXEL)
            total += len(coords)
            assert np.all(scores > DEFAULT_THRESHOLD_SIGMAS)
    assert total <= 2  # over six noise frames of 221 184 voxels


def test_score_is_in_noise_sigmas():
    rng = np.random.default_rng(3)
    position = np.array([12.0, 40.0, 40.0])
    spot = gaussian_heatmap([position], (24, 80, 80), VOXEL, (0.25, 0.1, 0.1))
    noise = rng.normal(0.0, 1.0, spot.shape).astype(np.float32)
    frame = 100.0 + 30.0 * spot + 2.0 * noise
    coords, scores = detect_spots_classical(frame, VOXEL, refine="none")
    assert len(coords) == 1
    np.testing.assert_array_equal(coords[0], position)
    response = dog_response(frame, VOXEL)
    expected = response[tuple(position.astype(int))] / robust_noise_sigma(response)
    assert scores[0] == pytest.approx(expected, rel=1e-5)

    # Invariant to gain and offset: the same spots and scores.
    coords2, scores2 = detect_spots_classical(7.0 * frame + 1000.0, VOXEL, refine="none")
    np.testing.assert_array_equal(coords2, coords)
    np.testing.assert_allclose(scores2, scores, rtol=1e-3)

    # Twice the noise halves the score (roughly: the spot is the same).
    frame_noisier = 100.0 + 30.0 * spot + 4.0 * noise
    _, scores3 = detect_spots_classical(frame_noisier, VOXEL, refine="none")
    assert scores3[0] == pytest.approx(scores[0] / 2, rel=0.1)


def test_threshold_in_sigmas_controls_detections():
    rng = np.random.default_rng(5)
    positions = np.array([[8.0, 20.0, 20.0], [16.0, 60.0, 60.0]])
    frame = 100.0 + rng.normal(0.0, 2.0, (24, 80, 80))
    frame += 40.0 * gaussian_heatmap(positions[:1], frame.shape, VOXEL, (0.25, 0.1, 0.1))
    frame += 12.0 * gaussian_heatmap(positions[1:], frame.shape, VOXEL, (0.25, 0.1, 0.1))
    _, scores = detect_spots_classical(frame, VOXEL, threshold=3.0)
    strong, weak = np.sort(scores)[::-1][:2]
    between = (strong + weak) / 2
    coords, _ = detect_spots_classical(frame, VOXEL, threshold=between)
    assert len(coords) == 1
    np.testing.assert_allclose(coords[0], positions[0], atol=0.5)
    coords, _ = detect_spots_classical(frame, VOXEL, threshold=weak - 0.01)
    assert len(coords) >= 2


def test_sister_spots_separated_in_xy():
    """Two spots 0.6 µm apart in x with min_distance 0.3 µm are both found."""
    positions = np.array([[12.0, 40.0, 37.7], [12.0, 40.0, 42.3]])
    frame = 100.0 + 40.0 * gaussian_heatmap(positions, (24, 80, 80), VOXEL, (0.25, 0.1, 0.1))
    frame += np.random.default_rng(0).normal(0.0, 1.0, frame.shape)
    coords, _ = detect_spots_classical(frame, VOXEL)
    result = match_points(coords, positions, VOXEL, cutoff_um=0.1)
    assert result.tp == 2 and result.fp == 0


def test_dog_response_peaks_on_spots():
    position = (10, 30, 30)
    frame = 100.0 + 50.0 * gaussian_heatmap([position], (20, 60, 60), VOXEL, (0.25, 0.1, 0.1))
    response = dog_response(frame, VOXEL)
    assert response.shape == frame.shape and response.dtype == np.float32
    assert np.unravel_index(np.argmax(response), response.shape) == position
    assert response[position] > 0
    np.testing.assert_allclose(dog_response(np.full((8, 20, 20), 5.0), VOXEL), 0.0, atol=1e-4)


def test_robust_noise_sigma():
    rng = np.random.default_rng(1)
    values = rng.normal(10.0, 3.0, 200_000)
    assert robust_noise_sigma(values) == pytest.approx(3.0, rel=0.02)
    values[:2000] = 1e6  # 1 % outliers barely move it
    assert robust_noise_sigma(values) == pytest.approx(3.0, rel=0.05)
    assert robust_noise_sigma(np.full(100, 4.0)) == 0.0
    assert robust_noise_sigma(np.array([np.nan, np.inf])) == 0.0
    with_nan = rng.normal(0.0, 2.0, 100_000)
    with_nan[::10] = np.nan
    assert robust_noise_sigma(with_nan) == pytest.approx(2.0, rel=0.03)
    big = rng.normal(0.0, 1.5, 3_000_000).astype(np.float32)  # subsampled path
    assert robust_noise_sigma(big) == pytest.approx(1.5, rel=0.02)


@pytest.mark.parametrize("frame", [np.zeros((40, 40)), np.zeros((2, 8, 40, 40)), np.zeros(10)])
def test_bad_frame_dimensions_raise(frame):
    with pytest.raises(InputError, match="Z, Y, X"):
        detect_spots_classical(frame, VOXEL)


@pytest.mark.parametrize("voxel", [(-0.3, 0.13, 0.13), (0.3, np.nan, 0.13)])
def test_bad_voxel_size_raises(voxel):
    frame = np.random.default_rng(0).normal(100.0, 5.0, (8, 32, 32))
    with pytest.raises(InputError, match="voxel size"):
        detect_spots_classical(frame, voxel)


@pytest.mark.parametrize("voxel", [(0.0, 0.13, 0.13), (0.3, 0.13)])
def test_zero_or_short_voxel_size_raises_input_error(voxel):
    frame = np.random.default_rng(0).normal(100.0, 5.0, (8, 32, 32))
    with pytest.raises(InputError):
        detect_spots_classical(frame, voxel)
