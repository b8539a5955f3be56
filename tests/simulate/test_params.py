"""Tests of napari_kinetochores.simulate.params: SNR levels, defaults, validation."""

from __future__ import annotations

import math

import pytest

from napari_kinetochores.errors import InputError
from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams


def test_snr_levels_ordered():
    assert list(SNR_LEVELS) == ["very_low", "low", "moderate", "high"]
    values = list(SNR_LEVELS.values())
    assert values == sorted(values)
    assert 1.5 <= SNR_LEVELS["very_low"] <= 2.0


def test_invalid_params():
    with pytest.raises(ValueError, match="snr"):
        SimulationParams(snr=0)
    with pytest.raises(ValueError, match="render_style"):
        SimulationParams(render_style="airy")
    with pytest.raises(ValueError, match="voxel_size_um"):
        SimulationParams(voxel_size_um=(0.3, 0.0, 0.13))
    with pytest.raises(ValueError, match="noise_model"):
        SimulationParams(noise_model="none")
    with pytest.raises(ValueError, match="layout"):
        SimulationParams(layout="grid")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pixel_offset_sd_adu", -1.0),
        ("pixel_gain_cv", math.inf),
        ("pixel_read_noise_log_sd", -0.1),
        ("hot_pixel_fraction", 1.5),
        ("hot_pixel_range_e", (100.0, 10.0)),
        ("dead_pixel_fraction", -0.01),
        ("n_hot_columns", 1000),
        ("hot_column_range_adu", (-5.0, 10.0)),
        ("full_well_e", 0.0),
        ("adc_max_adu", 70000),
        ("depth_offset_um", -2.0),
        ("psf_z_broadening_per_um", math.nan),
        ("side_lobe_rel_per_um", -0.01),
        ("side_lobe_offset_um", math.inf),
        ("focal_shift_scale", 0.0),
        ("ball_radius_um", -1.0),
        ("ball_radius_per_cbrt_pair_um", 0.0),
        ("min_kinetochore_distance_um", -0.3),
        ("background_percentile", 101.0),
        ("output_dtype", "int8"),
    ],
)
def test_invalid_new_options_name_the_field(field, value):
    with pytest.raises(InputError, match=field):
        SimulationParams(**{field: value})


def test_hot_and_dead_fractions_together_at_most_one():
    with pytest.raises(InputError, match="hot_pixel_fraction \\+ dead_pixel_fraction"):
        SimulationParams(hot_pixel_fraction=0.6, dead_pixel_fraction=0.5)


def test_new_options_off_by_default():
    p = SimulationParams()
    assert not p.has_fixed_pattern()
    assert not p.has_depth_aberration()
    assert (p.full_well_e, p.adc_max_adu, p.focal_shift_scale) == (None, 65535, 1.0)
    assert (p.background_percentile, p.output_dtype, p.layout) == (None, "uint16", "random")
    assert SimulationParams(n_hot_columns=1).has_fixed_pattern()
    assert SimulationParams(side_lobe_rel_per_um=0.01).has_depth_aberration()


@pytest.mark.parametrize("noise_model", ["poisson_gaussian", "emccd"])
def test_mean_spot_peak_solves_the_snr_equation(noise_model):
    p = SimulationParams(snr=5.0, background_e=20.0, read_noise_e=2.0, haze_rel=0.4)
    p.noise_model = noise_model
    fano = 2.0 if noise_model == "emccd" else 1.0
    for haze in (0.0, 0.6):
        peak = p.mean_spot_peak_e(haze)
        noise = math.sqrt(fano * (p.background_e + p.haze_rel * peak * haze) + p.read_noise_e**2)
        assert peak / noise == pytest.approx(p.snr, rel=1e-12)


def test_ball_radius_grows_with_cube_root_of_pairs():
    assert SimulationParams(n_pairs=8, ball_radius_per_cbrt_pair_um=0.5).ball_radius() == 1.0
    assert SimulationParams(n_pairs=8, ball_radius_um=3.0).ball_radius() == 3.0
