"""Tests of napari_kinetochores.simulate.camera: sCMOS fixed pattern, saturation, preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kinetochores.simulate import simulate_movie
from napari_kinetochores.simulate.camera import draw_camera, preprocess

# no spots, no background: a pixel reads its offset plus read noise only
DARK = {"n_pairs": 0, "background_e": 0.0, "haze_rel": 0.0, "n_frames": 3}


def test_uniform_camera_draws_nothing(small):
    rng = np.random.default_rng(0)
    camera = draw_camera(small(), rng)
    assert np.ndim(camera.offset_adu) == 0 and camera.dark_e is None
    assert rng.random() == np.random.default_rng(0).random()


def test_offset_map_is_the_same_in_every_plane_and_frame(small):
    p = small(**DARK, read_noise_e=0.0, pixel_offset_sd_adu=10.0)
    image = simulate_movie(p, seed=1).image
    assert (image == image[0, 0, 0]).all()  # one sensor pixel, one value: every z, t, channel
    assert image[0, 0, 0].std() > 5  # but it differs between pixels
    other = simulate_movie(p, seed=2).image[0, 0, 0]
    assert not np.array_equal(other, image[0, 0, 0])  # drawn per movie


def test_gain_and_read_noise_maps_are_fixed_through_time(small):
    p = small(**{**DARK, "n_frames": 4, "background_e": 50.0}, pixel_gain_cv=0.3)
    p.read_noise_e, p.pixel_read_noise_log_sd = 3.0, 1.0
    image = simulate_movie(p, seed=3).image[:, 0].astype(np.float64)  # (T, Z, Y, X)
    mean = image.mean(axis=1)  # per frame, per sensor pixel: offset + gain × 50 e-
    std = image.std(axis=1)
    for t in range(1, 4):
        assert np.corrcoef(mean[0].ravel(), mean[t].ravel())[0, 1] > 0.9
        assert np.corrcoef(std[0].ravel(), std[t].ravel())[0, 1] > 0.8
    without = simulate_movie(small(**{**DARK, "background_e": 50.0}), seed=3).image
    plain = without[:, 0].astype(np.float64).mean(axis=1)
    assert abs(np.corrcoef(plain[0].ravel(), plain[1].ravel())[0, 1]) < 0.2


def test_hot_pixels_are_bright_in_every_plane(small):
    p = small(hot_pixel_fraction=0.005, hot_pixel_range_e=(400.0, 600.0), n_frames=2)
    image = simulate_movie(p, seed=4).image
    floor = p.camera_offset_adu + p.gain_adu_per_e * 200.0
    hot = [image[t, c].min(axis=0) > floor for t in range(2) for c in range(2)]
    assert 0.3 * 0.005 * 64 * 64 <= hot[0].sum() <= 3 * 0.005 * 64 * 64
    for mask in hot[1:]:
        np.testing.assert_array_equal(
            mask, hot[0]
        )  # the same sensor pixels, every frame and channel
    # spots are bright in a few planes only, never in all 16
    assert not (simulate_movie(small(n_frames=1), seed=4).image[0, 0].min(axis=0) > floor).any()


def test_dead_pixels_read_their_offset(small):
    p = small(dead_pixel_fraction=0.01, background_e=30.0)
    image = simulate_movie(p, seed=5).image
    flat = (image == p.camera_offset_adu).all(axis=(0, 1, 2))
    assert 0.3 * 0.01 * 64 * 64 <= flat.sum() <= 3 * 0.01 * 64 * 64


def test_hot_columns_raise_one_x_along_every_y(small):
    p = small(n_hot_columns=2, hot_column_range_adu=(40.0, 40.0))
    image = simulate_movie(p, seed=6).image.astype(np.float64)
    column_mean = np.median(image, axis=(0, 1, 2)).mean(axis=0)  # (X,)
    excess = column_mean - np.median(column_mean)
    assert (excess > 35).sum() == 2
    hot_x = np.flatnonzero(excess > 35)
    rows = np.median(image[..., hot_x], axis=(0, 1, 2))  # (Y, 2): raised along all of y
    assert (rows > np.median(image) + 30).mean() > 0.9


def test_saturation_at_full_well_and_adc_max(small):
    p = small(full_well_e=40.0, snr=30.0, read_noise_e=0.0)
    image = simulate_movie(p, seed=7).image
    assert image.max() == p.camera_offset_adu + p.gain_adu_per_e * 40.0
    assert (image == image.max()).sum() > 10
    q = small(adc_max_adu=150, snr=30.0)
    assert simulate_movie(q, seed=7).image.max() == 150


def test_background_subtraction_leaves_most_voxels_zero(small):
    p = small(background_percentile=77.0, snr=14.0)
    movie = simulate_movie(p, seed=8)
    zeros = (movie.image == 0).mean(axis=(2, 3, 4))  # per (t, c) stack
    assert zeros.min() >= 0.77
    assert movie.image.dtype == np.uint16
    g = movie.points[movie.points.channel == 0]
    z, y, x = np.rint(g[["z", "y", "x"]].to_numpy()).astype(int).T
    at_spots = movie.image[g.t.to_numpy(), 0, z, y, x]
    assert (at_spots > 0).mean() > 0.9  # the spots survive


def test_uint8_output_has_at_most_256_levels(small):
    raw = simulate_movie(small(), seed=9).image
    movie = simulate_movie(small(output_dtype="uint8"), seed=9)
    assert movie.image.dtype == np.uint8
    assert len(np.unique(movie.image)) <= 256
    assert (movie.image.max(axis=(0, 2, 3, 4)) == 255).all()
    expected = np.rint(raw[:, 0] * (255.0 / raw[:, 0].max()))
    np.testing.assert_allclose(movie.image[:, 0], expected, atol=1)


def test_float32_output_is_rescaled(small):
    raw = simulate_movie(small(), seed=9).image
    movie = simulate_movie(small(output_dtype="float32", background_percentile=50.0), seed=9)
    assert movie.image.dtype == np.float32
    assert movie.image.min() == 0.0
    np.testing.assert_allclose(movie.image.max(axis=(0, 2, 3, 4)), 1.0)
    assert (movie.image == 0).mean() >= 0.5
    level = np.percentile(raw[0, 1], 50.0)
    peak = np.max(np.maximum(raw[:, 1].astype(np.float64) - level, 0))  # frame 0 is brightest
    np.testing.assert_allclose(
        movie.image[0, 1], np.maximum(raw[0, 1] - level, 0) / peak, atol=1e-2
    )


def test_preprocess_off_returns_the_camera_image(small):
    image = np.arange(24, dtype=np.uint16).reshape(1, 2, 1, 3, 4)
    assert preprocess(image, small()) is image
    out = preprocess(image, small(background_percentile=100.0))
    assert out.dtype == np.uint16 and not out.any()


@pytest.mark.parametrize("noise_model", ["poisson_gaussian", "emccd"])
def test_fixed_pattern_with_both_noise_models(small, noise_model):
    p = small(noise_model=noise_model, pixel_offset_sd_adu=3.0, hot_pixel_fraction=0.001)
    movie = simulate_movie(p, seed=10)
    assert movie.image.dtype == np.uint16 and movie.image.shape == (2, 2, 16, 64, 64)
