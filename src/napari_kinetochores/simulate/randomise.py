"""Domain randomisation: widely varied :class:`SimulationParams` for training.

:func:`sample_params` is the distribution the bundled models were trained on
(metaphase plates at about 0.30/0.13/0.13 µm, uint16 camera output; its
draws are kept stable). :func:`random_params` widens it to what real
microscopes and users' files show (:class:`DomainRandomisation`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.simulate.distributions import log_uniform
from napari_kinetochores.simulate.params import SNR_LEVELS, SimulationParams

__all__ = ["DomainRandomisation", "random_params", "sample_params"]


def _check_fields(overrides: dict[str, object], caller: str) -> None:
    known = {f.name for f in fields(SimulationParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"{caller}: unknown SimulationParams field(s): {', '.join(unknown)}")


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
    _check_fields(overrides, "sample_params")
    drawn.update(overrides)
    return SimulationParams(**drawn)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DomainRandomisation:
    """How widely :func:`random_params` varies what :func:`sample_params` leaves fixed.

    ``*_probability`` is the chance that a feature is on in a movie; ranges
    are (min, max), drawn uniformly unless the field says log-uniform.

    Attributes
    ----------
    voxel_z_range_um, voxel_xy_range_um
        Voxel size in µm (z; y = x).
    field_of_view_um
        (z, y, x) µm covered by the volume: ``shape_zyx`` = ceil(field / voxel).
        The finest sampling gives 64 × 278 × 278 voxels, whose camera noise
        takes about 1 s per channel and frame on one core: pass a smaller
        field (or override ``shape_zyx``) for cheaper training volumes.
    scmos_probability
        Chance of an sCMOS fixed pattern: per-pixel offset (sd
        ``pixel_offset_sd_range_adu``, ADU), gain (CV
        ``pixel_gain_cv_range``), read noise (log sd
        ``pixel_read_noise_log_sd_range``) and hot pixels (fraction
        ``hot_pixel_fraction_range``, log-uniform).
    dead_pixel_probability, dead_pixel_fraction_range
        Chance of dead pixels and their fraction (log-uniform).
    hot_column_probability, n_hot_columns_range
        Chance of hot sensor columns and their number (inclusive).
    saturation_probability, full_well_over_peak_range
        Chance of saturation; the full well is the background plus this
        range × the mean EGFP spot peak (e-), so the brighter spots clip.
    aberration_probability
        Chance of depth-dependent aberration with ``depth_offset_range_um``,
        ``psf_z_broadening_range_per_um`` (1/µm), ``side_lobe_rel_range_per_um``
        (1/µm), ``side_lobe_offset_range_um`` (µm; the lobe is deeper than
        the spot in 70 % of movies, shallower in the rest) and
        ``focal_shift_scale_range``.
    ball_probability
        Chance of a prometaphase ball (``layout="ball"``) instead of the layout
        :func:`sample_params` drew.
    background_subtracted_probability, background_percentile_range
        Chance of background-subtracted output and the percentile subtracted.
    uint8_probability, float32_probability
        Chances of 8-bit and of rescaled float output (else uint16).
    long_bleach_probability, long_bleach_rate_range
        Chance of strong bleaching and its rate per frame (0.128 is 12 % per
        frame), instead of :func:`sample_params`' 0..0.05.
    """

    voxel_z_range_um: tuple[float, float] = (0.15, 0.6)
    voxel_xy_range_um: tuple[float, float] = (0.06, 0.2)
    field_of_view_um: tuple[float, float, float] = (9.6, 16.64, 16.64)
    scmos_probability: float = 0.5
    pixel_offset_sd_range_adu: tuple[float, float] = (0.5, 5.0)
    pixel_gain_cv_range: tuple[float, float] = (0.005, 0.05)
    pixel_read_noise_log_sd_range: tuple[float, float] = (0.1, 0.8)
    hot_pixel_fraction_range: tuple[float, float] = (1e-4, 3e-3)
    dead_pixel_probability: float = 0.3
    dead_pixel_fraction_range: tuple[float, float] = (1e-5, 5e-4)
    hot_column_probability: float = 0.2
    n_hot_columns_range: tuple[int, int] = (1, 3)
    saturation_probability: float = 0.1
    full_well_over_peak_range: tuple[float, float] = (1.0, 4.0)
    aberration_probability: float = 0.5
    depth_offset_range_um: tuple[float, float] = (0.0, 15.0)
    psf_z_broadening_range_per_um: tuple[float, float] = (0.0, 0.06)
    side_lobe_rel_range_per_um: tuple[float, float] = (0.0, 0.03)
    side_lobe_offset_range_um: tuple[float, float] = (0.5, 1.2)
    focal_shift_scale_range: tuple[float, float] = (0.8, 1.1)
    ball_probability: float = 0.25
    background_subtracted_probability: float = 0.15
    background_percentile_range: tuple[float, float] = (50.0, 95.0)
    uint8_probability: float = 0.15
    float32_probability: float = 0.15
    long_bleach_probability: float = 0.2
    long_bleach_rate_range: tuple[float, float] = (0.05, 0.15)

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_probability") and not 0.0 <= value <= 1.0:
                problems.append(f"{f.name} must be in [0, 1], got {value}")
            if f.name.endswith("_range") or "_range_" in f.name:
                if len(value) != 2 or not value[0] <= value[1]:
                    problems.append(f"{f.name} must be (min, max) with min <= max, got {value}")
        if self.uint8_probability + self.float32_probability > 1.0:
            problems.append("uint8_probability + float32_probability must be <= 1")
        if len(self.field_of_view_um) != 3 or min(self.field_of_view_um) <= 0:
            problems.append(
                f"field_of_view_um must be 3 positive numbers, got {self.field_of_view_um}"
            )
        if problems:
            raise InputError("invalid DomainRandomisation: " + "; ".join(problems))


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(log_uniform(rng, *bounds))


def _sampling(rng: np.random.Generator, d: DomainRandomisation) -> dict[str, object]:
    """Voxel size and the shape that covers the field of view."""
    vz, vxy = _uniform(rng, d.voxel_z_range_um), _uniform(rng, d.voxel_xy_range_um)
    voxel = (vz, vxy, vxy)
    shape = tuple(
        max(int(math.ceil(f / v)), 1) for f, v in zip(d.field_of_view_um, voxel, strict=True)
    )
    return {"voxel_size_um": voxel, "shape_zyx": shape}


def _camera(rng: np.random.Generator, d: DomainRandomisation) -> dict[str, object]:
    """sCMOS fixed pattern, dead pixels, hot columns (saturation: see random_params)."""
    on = rng.random(3) < (d.scmos_probability, d.dead_pixel_probability, d.hot_column_probability)
    drawn = {
        "pixel_offset_sd_adu": _uniform(rng, d.pixel_offset_sd_range_adu),
        "pixel_gain_cv": _uniform(rng, d.pixel_gain_cv_range),
        "pixel_read_noise_log_sd": _uniform(rng, d.pixel_read_noise_log_sd_range),
        "hot_pixel_fraction": _log_uniform(rng, d.hot_pixel_fraction_range),
        "dead_pixel_fraction": _log_uniform(rng, d.dead_pixel_fraction_range),
        "n_hot_columns": int(rng.integers(d.n_hot_columns_range[0], d.n_hot_columns_range[1] + 1)),
    }
    if not on[0]:
        drawn.update(pixel_offset_sd_adu=0.0, pixel_gain_cv=0.0, pixel_read_noise_log_sd=0.0)
        drawn["hot_pixel_fraction"] = 0.0
    if not on[1]:
        drawn["dead_pixel_fraction"] = 0.0
    if not on[2]:
        drawn["n_hot_columns"] = 0
    return drawn


def _aberration(rng: np.random.Generator, d: DomainRandomisation) -> dict[str, object]:
    """Depth-dependent aberration (all zero / 1 when off)."""
    on = rng.random() < d.aberration_probability
    sign = 1.0 if rng.random() < 0.7 else -1.0
    drawn = {
        "depth_offset_um": _uniform(rng, d.depth_offset_range_um),
        "psf_z_broadening_per_um": _uniform(rng, d.psf_z_broadening_range_per_um),
        "side_lobe_rel_per_um": _uniform(rng, d.side_lobe_rel_range_per_um),
        "side_lobe_offset_um": sign * _uniform(rng, d.side_lobe_offset_range_um),
        "focal_shift_scale": _uniform(rng, d.focal_shift_scale_range),
    }
    if not on:
        drawn.update(depth_offset_um=0.0, psf_z_broadening_per_um=0.0, side_lobe_rel_per_um=0.0)
        drawn["focal_shift_scale"] = 1.0
    return drawn


def _output(rng: np.random.Generator, d: DomainRandomisation) -> dict[str, object]:
    """Background subtraction and output dtype."""
    subtract = rng.random() < d.background_subtracted_probability
    percentile = _uniform(rng, d.background_percentile_range)
    u = rng.random()
    if u < d.uint8_probability:
        dtype = "uint8"
    elif u < d.uint8_probability + d.float32_probability:
        dtype = "float32"
    else:
        dtype = "uint16"
    return {"background_percentile": percentile if subtract else None, "output_dtype": dtype}


def random_params(
    rng: np.random.Generator,
    randomisation: DomainRandomisation | None = None,
    **overrides: object,
) -> SimulationParams:
    """Draw params over the wide training distribution of real cameras and cells.

    :func:`sample_params` (SNR, PSF, density, noise model, ...) plus, as
    :class:`DomainRandomisation` says: voxel size 0.15–0.6 µm in z and
    0.06–0.2 µm in y/x with the shape covering a fixed field of view, sCMOS
    fixed pattern with hot pixels, dead pixels, hot columns, saturation,
    depth-dependent aberration, prometaphase balls, background-subtracted /
    8-bit / float output, and strong bleaching. Every call draws the same
    number of values in the same order (deterministic for a generator state;
    overrides do not change the other draws).

    Parameters
    ----------
    rng
        The generator to draw from.
    randomisation
        Ranges and probabilities; ``None`` for the defaults.
    **overrides
        Fields of :class:`SimulationParams` to set instead of drawing them.

    Returns
    -------
    SimulationParams

    Examples
    --------
    >>> p = random_params(np.random.default_rng(3), n_frames=3)
    >>> p.n_frames, 0.15 <= p.voxel_size_um[0] <= 0.6, 0.06 <= p.voxel_size_um[1] <= 0.2
    (3, True, True)
    """
    d = DomainRandomisation() if randomisation is None else randomisation
    _check_fields(overrides, "random_params")
    drawn: dict[str, object] = dataclasses.asdict(sample_params(rng))
    drawn.update(_sampling(rng, d))
    drawn.update(_camera(rng, d))
    drawn.update(_aberration(rng, d))
    drawn.update(_output(rng, d))
    if rng.random() < d.ball_probability:
        drawn["layout"] = "ball"
    long_bleach = rng.random() < d.long_bleach_probability
    bleach_rate = _uniform(rng, d.long_bleach_rate_range)
    if long_bleach:
        drawn["bleach_rate"] = bleach_rate
    saturate = rng.random() < d.saturation_probability
    well = _uniform(rng, d.full_well_over_peak_range)
    drawn.update(overrides)
    params = SimulationParams(**drawn)  # type: ignore[arg-type]
    if saturate and "full_well_e" not in overrides:
        params.full_well_e = params.background_e + well * params.mean_spot_peak_e()
    return params
