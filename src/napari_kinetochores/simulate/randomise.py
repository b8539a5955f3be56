"""Domain randomisation: widely varied :class:`SimulationParams` for training."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np

from napari_kinetochores.simulate.params import SNR_LEVELS, SimulationParams

__all__ = ["sample_params"]


def sample_params(rng: np.random.Generator, **overrides: object) -> SimulationParams:
    """Draw widely varied simulation parameters (domain randomisation).

    Every call draws the same number of random values in the same order, so
    the result is deterministic for a given generator state, and overrides do
    not change the other draws.

    Ranges: SNR log-uniform from ``very_low`` to ``high``; PSF sigma ±30 % (xy
    and z independently); voxel size ±15 % (xy and z independently);
    ``n_pairs`` 5..46; plate density ±20 %; brightness CV 0.1..0.6; haze
    0..1; clutter (none in 40 %, else 1..8 blobs, 0.3..1.5 × the spot peak per
    voxel); render style (35 % ``"moffat"``, z elongation 1.1..1.6); noise
    model (30 % ``"emccd"``); layout (20 % ``"real"``); background 2..100 e-
    (log-uniform); read noise 0.3..3 e-; gain 0.5..5 ADU/e- (log-uniform);
    bleaching 0..0.05 per frame; sister separation mean 0.75..1.05 µm;
    orientation jitter 5..30°; mCherry offset 20..100 nm, brightness
    0.3..0.9; oscillation 0..1 µm, period 8..40 frames; random walk
    0..0.05 µm per frame. ``n_frames`` and ``shape_zyx`` keep their defaults
    unless overridden.

    Parameters
    ----------
    rng
        The generator to draw from.
    **overrides
        Fields of :class:`SimulationParams` to set instead of drawing them.

    Returns
    -------
    SimulationParams

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = sample_params(rng, n_frames=3, shape_zyx=(24, 96, 96))
    >>> p.n_frames, 5 <= p.n_pairs <= 46
    (3, True)
    """
    defaults = SimulationParams()
    lo_snr, hi_snr = SNR_LEVELS["very_low"], SNR_LEVELS["high"]
    psf_xy, psf_z = rng.uniform(0.7, 1.3, size=2)
    vox_xy, vox_z = rng.uniform(0.85, 1.15, size=2)
    has_clutter = rng.random() >= 0.4
    drawn: dict[str, object] = {
        "snr": float(math.exp(rng.uniform(math.log(lo_snr), math.log(hi_snr)))),
        "psf_sigma_um": (
            defaults.psf_sigma_um[0] * psf_z,
            defaults.psf_sigma_um[1] * psf_xy,
            defaults.psf_sigma_um[2] * psf_xy,
        ),
        "voxel_size_um": (
            defaults.voxel_size_um[0] * vox_z,
            defaults.voxel_size_um[1] * vox_xy,
            defaults.voxel_size_um[2] * vox_xy,
        ),
        "n_pairs": int(rng.integers(5, 47)),
        "plate_radius_per_sqrt_pair_um": float(rng.uniform(0.8, 1.2)),
        "plate_thickness_sd_um": float(rng.uniform(0.2, 1.0)),
        "brightness_cv": float(rng.uniform(0.1, 0.6)),
        "haze_rel": float(rng.uniform(0.0, 1.0)),
        "n_clutter": int(rng.integers(1, 9)) if has_clutter else 0,
        "clutter_rel": float(rng.uniform(0.3, 1.5)),
        "render_style": "moffat" if rng.random() < 0.35 else "gaussian",
        "moffat_z_scale": float(rng.uniform(1.1, 1.6)),
        "noise_model": "emccd" if rng.random() < 0.3 else "poisson_gaussian",
        "layout": "real" if rng.random() < 0.2 else "random",
        "background_e": float(math.exp(rng.uniform(math.log(2.0), math.log(100.0)))),
        "read_noise_e": float(rng.uniform(0.3, 3.0)),
        "gain_adu_per_e": float(math.exp(rng.uniform(math.log(0.5), math.log(5.0)))),
        "bleach_rate": float(rng.uniform(0.0, 0.05)),
        "sister_sep_mean_um": float(rng.uniform(0.75, 1.05)),
        "orientation_jitter_deg": float(rng.uniform(5.0, 30.0)),
        "mcherry_offset_nm": float(rng.uniform(20.0, 100.0)),
        "mcherry_rel_brightness": float(rng.uniform(0.3, 0.9)),
        "oscillation_amplitude_um": float(rng.uniform(0.0, 1.0)),
        "oscillation_period_frames": float(rng.uniform(8.0, 40.0)),
        "motion_sd_um": float(rng.uniform(0.0, 0.05)),
    }
    known = {f.name for f in fields(SimulationParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"sample_params: unknown SimulationParams field(s): {', '.join(unknown)}")
    drawn.update(overrides)
    return SimulationParams(**drawn)  # type: ignore[arg-type]
