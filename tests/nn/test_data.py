"""Tests of napari_kinetochores.nn.data: temporal stacking, normalisation, patches."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kinetochores.errors import InputError
from napari_kinetochores.nn.data import (
    noise_statistics,
    normalize_noise,
    normalize_percentile,
    sample_patch,
    sample_rows,
    stack_input,
    temporal_indices,
)


def test_temporal_window_repeats_edge_frames():
    assert temporal_indices(0, 4, 3) == [0, 0, 1]
    assert temporal_indices(3, 4, 3) == [2, 3, 3]
    assert temporal_indices(0, 1, 3) == [0, 0, 0]
    movie = np.zeros((3, 2, 2, 4, 4), np.float32)
    for t in range(3):
        for c in range(2):
            movie[t, c] = 10 * t + c
            movie[t, c, 0, 0, 0] = 100  # gives each frame a non-constant range
    stack = stack_input(lambda t, c: movie[t, c], 0, 3, [0, 1], 3, percentiles=(0, 100))
    assert stack.shape == (6, 2, 4, 4)
    raw_order = [movie[t, c, 1, 1, 1] for c in (0, 1) for t in (0, 0, 1)]
    lows = [movie[t, c].min() for c in (0, 1) for t in (0, 0, 1)]
    expected = [(v - lo) / (100 - lo) for v, lo in zip(raw_order, lows, strict=True)]
    np.testing.assert_allclose(stack[:, 1, 1, 1], expected, rtol=1e-6)


def test_normalize_percentile():
    volume = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    normalised = normalize_percentile(volume, (0, 100))
    assert normalised.min() == 0 and normalised.max() == pytest.approx(1)
    assert not normalize_percentile(np.full((2, 3, 3), 7.0)).any()


def test_noise_normalisation_does_not_depend_on_the_empty_field(field_with_cell):
    """The defect of percentile normalisation: a large empty field stretches its noise."""
    small, spot = field_with_cell(64)
    large, spot_large = field_with_cell(512)
    peak_small = normalize_noise(small)[spot].mean()  # 60 / 10 sigmas / 10 units: about 0.6
    peak_large = normalize_noise(large)[spot_large].mean()
    assert peak_small == pytest.approx(0.6, rel=0.15)
    assert peak_large == pytest.approx(peak_small, rel=0.05)
    # noise has sigma 1 / NOISE_UNITS = 0.1 whatever the field
    assert normalize_noise(large)[:, :100, :100].std() == pytest.approx(0.1, rel=0.05)
    # whereas percentiles of the large field stretch its noise (its 99.8th percentile is noise)
    noise_small = normalize_percentile(small)[:, :16, :16].std()
    noise_large = normalize_percentile(large)[:, :16, :16].std()
    assert noise_large > 1.1 * noise_small


def test_noise_statistics_ignore_smooth_background_and_spots():
    rng = np.random.default_rng(3)
    haze = np.linspace(0, 500, 256, dtype=np.float32)[None, None, :]  # strong x gradient
    volume = rng.normal(0, 4.0, (8, 64, 256)).astype(np.float32) + haze
    volume[:, 30:34, 100:104] += 300  # bright spots do not move the medians
    background, sigma = noise_statistics(sample_rows(volume))
    assert sigma == pytest.approx(4.0, rel=0.05)
    assert background == pytest.approx(float(np.median(volume)), rel=1e-3)
    # rows of tiles give the same statistics as rows of the whole
    tiles = [sample_rows(volume[:, :, :128]), sample_rows(volume[:, :, 128:])]
    assert noise_statistics(tiles)[1] == pytest.approx(sigma, rel=0.02)
    # photon-starved data (mostly 0, MAD 0) still gets a sigma; a constant volume maps to 0
    sparse = (rng.random((4, 32, 32)) < 0.1).astype(np.float32)
    assert noise_statistics(sample_rows(sparse))[1] > 0
    assert not normalize_noise(np.full((2, 8, 8), 7.0)).any()
    with pytest.raises(InputError, match="NaN"):
        noise_statistics(np.array([[1.0, np.nan]]))


def test_sample_patch_biased_to_spots():
    rng = np.random.default_rng(0)
    image = np.zeros((1, 16, 64, 64), np.float32)
    target = np.zeros((1, 16, 64, 64), np.float32)
    target[0, 8, 50, 50] = 1
    hits = 0
    for _ in range(50):
        _, patch_target = sample_patch(
            rng, image, target, np.array([[8, 50, 50]]), (8, 16, 16), 1.0
        )
        assert patch_target.shape == (1, 8, 16, 16)
        hits += patch_target.max() == 1
    assert hits == 50
    _, padded = sample_patch(
        rng, image[:, :4], target[:, :4], np.zeros((0, 3)), (8, 16, 16), 0.0, 1.0
    )
    assert padded.shape == (1, 8, 16, 16) and padded[:, 4:].min() == 1.0
