"""Tests of napari_kinetochores.simulate.randomise: sample_params and random_params."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_kinetochores.errors import InputError
from napari_kinetochores.simulate import (
    SNR_LEVELS,
    DomainRandomisation,
    SimulationParams,
    random_params,
    sample_params,
    simulate_movie,
)

VOX = ["z", "y", "x"]


def test_sample_params_varied_and_valid():
    rng = np.random.default_rng(0)
    draws = [sample_params(rng) for _ in range(40)]
    assert all(isinstance(p, SimulationParams) for p in draws)
    snr = np.array([p.snr for p in draws])
    assert snr.min() >= SNR_LEVELS["very_low"] and snr.max() <= SNR_LEVELS["high"]
    assert snr.max() / snr.min() > 3
    n_pairs = np.array([p.n_pairs for p in draws])
    assert n_pairs.min() >= 5 and n_pairs.max() <= 46 and len(set(n_pairs)) > 10
    psf = np.array([p.psf_sigma_um for p in draws]) / np.array(SimulationParams().psf_sigma_um)
    assert psf.min() >= 0.7 and psf.max() <= 1.3 and psf.std() > 0.1
    vox = np.array([p.voxel_size_um for p in draws]) / np.array(SimulationParams().voxel_size_um)
    assert vox.min() >= 0.85 and vox.max() <= 1.15
    assert {p.render_style for p in draws} == {"gaussian", "moffat"}
    assert {p.noise_model for p in draws} == {"poisson_gaussian", "emccd"}
    assert {p.layout for p in draws} == {"random", "real"}
    assert {p.n_clutter > 0 for p in draws} == {True, False}
    assert len({p.haze_rel for p in draws}) == 40


def test_sample_params_deterministic_and_overrides():
    a = sample_params(np.random.default_rng(5))
    b = sample_params(np.random.default_rng(5))
    assert a == b
    c = sample_params(np.random.default_rng(5), n_frames=2, shape_zyx=(16, 64, 64), snr=4.0)
    assert (c.n_frames, c.shape_zyx, c.snr) == (2, (16, 64, 64), 4.0)
    # overrides do not change the other draws
    rest = {f.name for f in dataclasses.fields(a)} - {"n_frames", "shape_zyx", "snr"}
    assert all(getattr(a, k) == getattr(c, k) for k in rest)
    with pytest.raises(TypeError, match="no_such_field"):
        sample_params(np.random.default_rng(0), no_such_field=1)


def test_sampled_params_simulate():
    rng = np.random.default_rng(11)
    for i in range(3):
        p = sample_params(rng, n_frames=2, shape_zyx=(16, 64, 64))
        movie = simulate_movie(p, seed=i)
        assert movie.image.shape == (2, 2, 16, 64, 64)
        assert movie.image.dtype == np.uint16
        coords = movie.points[VOX].to_numpy()
        assert np.all((coords >= 0) & (coords <= np.array([15, 63, 63])))
        assert len(movie.points) > 0


def test_random_params_cover_every_option():
    rng = np.random.default_rng(0)
    draws = [random_params(rng) for _ in range(80)]
    vox = np.array([p.voxel_size_um for p in draws])
    assert vox[:, 0].min() >= 0.15 and vox[:, 0].max() <= 0.6 and np.ptp(vox[:, 0]) > 0.3
    assert vox[:, 1].min() >= 0.06 and vox[:, 1].max() <= 0.2 and np.ptp(vox[:, 1]) > 0.1
    np.testing.assert_array_equal(vox[:, 1], vox[:, 2])
    field = (
        np.array([p.shape_zyx for p in draws]) * vox
    )  # the same field of view at every voxel size
    assert np.all(field >= np.array(DomainRandomisation().field_of_view_um) - 1e-9)
    assert np.all(field < np.array(DomainRandomisation().field_of_view_um) + vox)
    assert {p.layout for p in draws} == {"random", "real", "ball"}
    assert {p.output_dtype for p in draws} == {"uint16", "uint8", "float32"}
    assert {p.background_percentile is None for p in draws} == {True, False}
    assert {p.has_fixed_pattern() for p in draws} == {True, False}
    assert any(p.hot_pixel_fraction > 0 for p in draws)
    assert any(p.dead_pixel_fraction > 0 for p in draws) and any(p.n_hot_columns for p in draws)
    assert {p.has_depth_aberration() for p in draws} == {True, False}
    assert {p.focal_shift_scale == 1.0 for p in draws} == {True, False}
    assert {p.full_well_e is None for p in draws} == {True, False}
    assert max(p.bleach_rate for p in draws) > 0.1
    assert {p.noise_model for p in draws} == {"poisson_gaussian", "emccd"}


def test_random_params_deterministic_and_overrides():
    a = random_params(np.random.default_rng(5))
    assert a == random_params(np.random.default_rng(5))
    c = random_params(np.random.default_rng(5), n_frames=2, output_dtype="uint8", layout="ball")
    assert (c.n_frames, c.output_dtype, c.layout) == (2, "uint8", "ball")
    rest = {f.name for f in dataclasses.fields(a)} - {"n_frames", "output_dtype", "layout"}
    assert all(getattr(a, k) == getattr(c, k) for k in rest)
    with pytest.raises(TypeError, match="no_such_field"):
        random_params(np.random.default_rng(0), no_such_field=1)


def test_saturation_is_relative_to_the_spot_peak():
    always = DomainRandomisation(saturation_probability=1.0, full_well_over_peak_range=(2.0, 2.0))
    p = random_params(np.random.default_rng(2), always)
    assert p.full_well_e == pytest.approx(p.background_e + 2.0 * p.mean_spot_peak_e())


def test_random_params_simulate():
    small_field = DomainRandomisation(field_of_view_um=(4.8, 8.0, 8.0))
    rng = np.random.default_rng(11)
    for seed in range(4):
        p = random_params(rng, small_field, n_frames=2, n_pairs=4)
        movie = simulate_movie(p, seed=seed)
        assert movie.image.shape == (2, 2, *p.shape_zyx)
        assert movie.image.dtype == np.dtype(p.output_dtype)
        coords = movie.points[VOX].to_numpy()
        assert np.all((coords >= 0) & (coords <= np.array(p.shape_zyx) - 1))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("scmos_probability", 1.5),
        ("voxel_z_range_um", (0.6, 0.15)),
        ("field_of_view_um", (0.0, 10.0, 10.0)),
        ("uint8_probability", 0.9),
    ],
)
def test_domain_randomisation_is_validated(field, value):
    with pytest.raises(InputError, match=field):
        DomainRandomisation(**{field: value})
