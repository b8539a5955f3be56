"""The held-out renderer of the robustness benchmark: shape, reproducibility, fixed sCMOS pattern."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# benchmarks/ is a folder of the repository, not of the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.independent_renderer import (  # noqa: E402
    MovieSpec,
    Optics,
    background_subtracted_8bit,
    psf_table,
    render_movie,
)

SMALL = MovieSpec(shape_zyx=(10, 40, 40), n_frames=2, n_pairs=4, optics=Optics())


def test_shape_dtype_and_ground_truth_inside_the_volume():
    movie = render_movie(SMALL, seed=5_000_000)
    assert movie.image.shape == (2, 1, 10, 40, 40)
    assert movie.image.dtype == np.uint16
    assert set(movie.points["t"]) == {0, 1}
    zyx = movie.points[["z", "y", "x"]].to_numpy()
    assert np.all(zyx >= -0.5) and np.all(zyx <= np.array([9.5, 39.5, 39.5]))
    np.testing.assert_allclose(movie.points["y_um"], movie.points["y"] * 0.13)


def test_same_seed_same_movie_other_seed_other_movie():
    first, again = render_movie(SMALL, 5_000_000), render_movie(SMALL, 5_000_000)
    other = render_movie(SMALL, 5_000_001)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.points.to_numpy(), again.points.to_numpy())
    assert not np.array_equal(first.image, other.image)


def test_scmos_pattern_is_fixed_through_z_and_time():
    spec = MovieSpec(
        shape_zyx=(8, 32, 32), n_frames=2, n_pairs=2, camera="scmos", optics=Optics(), snr=4.0
    )
    movie = render_movie(spec, seed=5_000_002)
    hot = movie.pattern.dark_e > 40
    assert hot.any()
    image = movie.image[:, 0].astype(float)
    # every plane of every frame is brighter at the hot pixels than the median pixel
    hot_values = image[:, :, hot]
    assert np.all(hot_values.min(axis=-1) > np.median(image) + 10)
    # the per-pixel offset shows in the mean over planes and frames: a correlation with the map
    cold = ~hot
    mean_image = image.mean(axis=(0, 1))[cold]
    assert np.corrcoef(mean_image, movie.pattern.offset_adu[cold])[0, 1] > 0.5


def test_psf_is_normalised_and_depth_aberration_shifts_the_focus():
    clean = psf_table(Optics())
    assert clean.values.max() == pytest.approx(1.0, abs=1e-6)
    assert clean.focal_shift_um == pytest.approx(0.0, abs=0.03)
    deep = psf_table(Optics(n_sample=1.38), 8.0)
    assert deep.focal_shift_um > 0.5  # the focus moves deeper than the emitter
    assert deep.values.max() < 0.6


def test_background_subtraction_leaves_most_voxels_zero_in_8_bit():
    frame = np.random.default_rng(0).poisson(100, (4, 48, 48)).astype(float)
    out = background_subtracted_8bit(frame)
    assert out.dtype == np.uint8
    assert 0.7 < (out == 0).mean() < 0.85
    assert out.max() == 255
