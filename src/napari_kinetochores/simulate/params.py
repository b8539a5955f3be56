"""Simulation parameters: :class:`SimulationParams`, named SNR levels, validation.

Every length is in µm unless the name says otherwise, 3-tuples are (z, y, x),
intensities are in photo-electrons (e-) unless they are in ADU. Invalid
values raise :class:`~napari_kinetochores.errors.InputError` naming every
offending field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from napari_kinetochores.errors import InputError

__all__ = [
    "LAYOUTS",
    "NOISE_MODELS",
    "OUTPUT_DTYPES",
    "RENDER_STYLES",
    "SNR_LEVELS",
    "SimulationParams",
]

SNR_LEVELS: dict[str, float] = {
    "very_low": 2.0,
    "low": 4.0,
    "moderate": 7.0,
    "high": 14.0,
}
"""Named SNR levels (mean spot peak / background noise std, see the package doc)."""

RENDER_STYLES: tuple[str, ...] = ("gaussian", "moffat")
NOISE_MODELS: tuple[str, ...] = ("poisson_gaussian", "emccd")
LAYOUTS: tuple[str, ...] = ("random", "real", "ball")
OUTPUT_DTYPES: tuple[str, ...] = ("uint16", "uint8", "float32")

_TUPLE_FIELDS = (
    "shape_zyx",
    "voxel_size_um",
    "psf_sigma_um",
    "sister_sep_range_um",
    "clutter_size_range",
    "hot_pixel_range_e",
    "hot_column_range_adu",
)
_INT_FIELDS = ("n_frames", "n_pairs", "n_clutter", "n_hot_columns", "adc_max_adu")
_NON_NEGATIVE = (
    "sister_sep_sd_um",
    "brightness_cv",
    "read_noise_e",
    "background_e",
    "haze_rel",
    "bleach_rate",
    "clutter_rel",
    "motion_sd_um",
    "spot_jitter_sd_um",
    "real_layout_jitter_um",
    "plate_thickness_sd_um",
    "oscillation_amplitude_um",
    "mcherry_rel_brightness",
    "margin_um",
    "min_pair_distance_um",
    "plate_center_jitter_um",
    "orientation_jitter_deg",
    "pixel_offset_sd_adu",
    "pixel_gain_cv",
    "pixel_read_noise_log_sd",
    "depth_offset_um",
    "psf_z_broadening_per_um",
    "side_lobe_rel_per_um",
    "min_kinetochore_distance_um",
)
_POSITIVE = (
    "gain_adu_per_e",
    "oscillation_period_frames",
    "mcherry_psf_scale",
    "moffat_z_scale",
    "plate_radius_per_sqrt_pair_um",
    "ball_radius_per_cbrt_pair_um",
    "focal_shift_scale",
)
_POSITIVE_OR_NONE = ("plate_radius_um", "haze_sigma_um", "ball_radius_um", "full_well_e")
_CHOICES = (
    ("render_style", RENDER_STYLES),
    ("noise_model", NOISE_MODELS),
    ("layout", LAYOUTS),
    ("output_dtype", OUTPUT_DTYPES),
)


@dataclass
class SimulationParams:
    """Parameters of a simulated two-colour kinetochore movie.

    Lengths are in µm unless the name says otherwise, 3-tuples are (z, y, x),
    intensities are in photo-electrons (e-) unless they are in ADU.

    Parameters
    ----------
    n_frames
        Number of time points T.
    shape_zyx
        Volume shape (Z, Y, X) in voxels.
    voxel_size_um
        Voxel size (z, y, x) in µm.
    n_pairs
        Number of sister pairs (2 × ``n_pairs`` kinetochores). With
        ``layout="real"`` at most the ~40 real pairs that fit the volume.
    psf_sigma_um
        Gaussian sigma (z, y, x) of the EGFP PSF in µm. For ``"moffat"`` this
        is the sigma of the gaussian of equal FWHM.
    snr
        Signal-to-noise ratio of the EGFP spots in frame 0 (module docstring).
    sister_sep_mean_um, sister_sep_sd_um, sister_sep_range_um
        Sister separation (centre to centre, EGFP): normal with this mean and
        sd, truncated to the range (``layout="random"``).
    orientation_jitter_deg
        Sd (degrees, per perpendicular component) of the tilt of the sister
        axis away from the plate normal.
    plate_radius_um
        Radius of the disk holding the pair centres; ``None``:
        ``plate_radius_per_sqrt_pair_um * sqrt(n_pairs)``.
    plate_radius_per_sqrt_pair_um
        Density of the plate when ``plate_radius_um`` is ``None`` (1.0 µm gives
        ~3.1 µm² per pair, as in the real annotations).
    plate_thickness_sd_um
        Sd of the pair centres along the plate normal.
    min_pair_distance_um
        Minimum 3D distance between pair centres (relaxed if they cannot fit).
    plate_tilt_deg
        Angle between the plate normal and the z axis (0: the plate lies in
        xy; 90: it stands edge-on across z). ``None``: uniform in [0, 90].
        The azimuth of the normal is always random.
    plate_center_jitter_um
        Sd of the random offset of the plate centre from the volume centre.
    oscillation_amplitude_um, oscillation_period_frames
        Plate oscillation along its normal: ``A sin(2 pi t / period + phase)``
        with a random phase.
    motion_sd_um
        Sd per axis per frame of the random walk of each pair.
    spot_jitter_sd_um
        Sd per axis of the independent per-frame jitter of each kinetochore.
    real_layout_jitter_um
        Sd per axis of the jitter added to the real positions (``"real"``).
    mcherry_offset_nm
        Offset of the mCherry spot from its EGFP spot along the sister axis,
        in nm; positive is away from the sister (towards the spindle pole).
    mcherry_rel_brightness
        Mean mCherry spot peak / mean EGFP spot peak.
    mcherry_psf_scale
        mCherry PSF sigma / EGFP PSF sigma (longer wavelength).
    brightness_cv
        Coefficient of variation of the kinetochore brightness (log-normal).
    camera_offset_adu
        Camera offset (bias) in ADU.
    read_noise_e
        Gaussian read noise, sd in e- (referred to the input, also for EMCCD).
    gain_adu_per_e
        ADU per photo-electron (overall, including any EM gain).
    background_e
        Uniform background in e- per voxel (not bleached).
    haze_rel
        Peak of the out-of-focus haze relative to the channel's mean spot peak.
    haze_sigma_um
        Sigma (y, x) of the haze blob; its z sigma is 1.5 × this. ``None``:
        ``0.7 * plate_radius + 2 µm``.
    bleach_rate
        Photobleaching rate per frame: signal × ``exp(-bleach_rate * t)``.
    n_clutter
        Number of out-of-focus aggregates (not kinetochores, not in the
        ground truth; returned in :attr:`SimulatedMovie.clutter`).
    clutter_rel
        Mean per-voxel peak of a clutter blob relative to the mean spot peak.
    clutter_size_range
        Range of the clutter blob size, as a multiple of the PSF sigma.
    render_style
        ``"gaussian"`` or ``"moffat"``.
    moffat_z_scale
        Extra z elongation of the ``"moffat"`` PSF.
    noise_model
        ``"poisson_gaussian"`` (sCMOS-like) or ``"emccd"``.
    layout
        ``"random"`` (synthetic plate), ``"real"`` (real annotated positions,
        at most 42 pairs, some of them single kinetochores; package docstring)
        or ``"ball"`` (prometaphase: pair centres uniform in a ball, sister
        axes in random directions, kinetochores of different pairs at least
        ``min_kinetochore_distance_um`` apart).
    margin_um
        Margin kept free between the spots and the volume faces, on top of the
        expected motion.
    ball_radius_um
        Radius (µm) of the ball holding the pair centres (``layout="ball"``);
        ``None``: ``ball_radius_per_cbrt_pair_um * cbrt(n_pairs)``.
    ball_radius_per_cbrt_pair_um
        Density of the ball when ``ball_radius_um`` is ``None``, µm (the
        default 0.55 µm puts 46 pairs in a 2.0 µm ball: nearest-neighbour
        distances median 0.48 µm, 10th percentile 0.34 µm).
    min_kinetochore_distance_um
        Smallest distance (µm) between kinetochores of different pairs
        (``layout="ball"``; relaxed when they cannot fit).

    Camera fixed pattern (sCMOS; all off by default). Maps are drawn once per
    movie for each sensor pixel (y, x) and are the same in every plane and
    frame.

    pixel_offset_sd_adu
        Sd (ADU) of the per-pixel offset around ``camera_offset_adu``.
    pixel_gain_cv
        Coefficient of variation (dimensionless) of the per-pixel gain around
        ``gain_adu_per_e`` (log-normal).
    pixel_read_noise_log_sd
        Sd of the log of the per-pixel read noise (dimensionless; log-normal
        with median ``read_noise_e``, so a few pixels are much noisier).
    hot_pixel_fraction
        Fraction (0..1) of sensor pixels that are hot: they add a dark signal
        drawn log-uniformly from ``hot_pixel_range_e`` (e- per voxel, with
        its shot noise) in every plane and frame.
    hot_pixel_range_e
        (min, max) dark signal of a hot pixel in e- per voxel.
    dead_pixel_fraction
        Fraction (0..1) of sensor pixels that do not respond: they read their
        offset, without signal or noise.
    n_hot_columns
        Number of sensor columns (one x, every y) with an extra offset drawn
        uniformly from ``hot_column_range_adu``.
    hot_column_range_adu
        (min, max) extra offset of a hot column in ADU.
    full_well_e
        Saturation: photo-electrons per pixel are clipped at this full-well
        capacity (e-) before read-out; ``None``: no clipping.
    adc_max_adu
        Largest value of the analogue-to-digital converter (ADU, 1..65535);
        the output is clipped to ``[0, adc_max_adu]`` (65535: uint16).

    Depth-dependent aberration (refractive-index mismatch; all off by
    default). The depth of a point is ``depth_offset_um`` + its z in µm
    (plane 0 is nearest the coverslip).

    depth_offset_um
        Depth (µm) of plane 0 below the coverslip.
    psf_z_broadening_per_um
        Relative growth of the PSF z sigma per µm of depth (1/µm): sigma_z ×
        (1 + this × depth).
    side_lobe_rel_per_um
        Fraction of a spot's light moved into an axial side lobe, per µm of
        depth (1/µm; at most 0.5 in all). The lobe sits
        ``side_lobe_offset_um`` along z and is 1.5 × wider on every axis, so
        the PSF becomes axially asymmetric.
    side_lobe_offset_um
        Axial offset (µm) of the side lobe from its spot; positive is deeper
        (away from the coverslip).
    focal_shift_scale
        Focal shift: apparent axial distances are this × the true ones
        (dimensionless; e.g. 0.85 for an oil objective imaging into water),
        about the plate centre. Applied to every position, so the ground
        truth gives where the spots are imaged.

    Preprocessed output (all off by default)

    background_percentile
        Background subtraction: each (t, c) stack minus this percentile
        (0..100) of its values, clipped at 0; ``None``: raw camera values.
    output_dtype
        ``"uint16"`` (camera ADU), ``"uint8"`` (each channel scaled so its
        maximum over the movie is 255, then rounded: 8-bit quantised) or
        ``"float32"`` (each channel divided by its maximum over the movie:
        rescaled floats in [0, 1]).

    Examples
    --------
    >>> p = SimulationParams(n_pairs=10, snr=SNR_LEVELS["low"], render_style="moffat")
    >>> p.plate_radius()  # doctest: +ELLIPSIS
    3.16...
    """

    n_frames: int = 5
    shape_zyx: tuple[int, int, int] = (32, 128, 128)
    voxel_size_um: tuple[float, float, float] = (0.30, 0.13, 0.13)
    n_pairs: int = 20
    psf_sigma_um: tuple[float, float, float] = (0.30, 0.10, 0.10)
    snr: float = SNR_LEVELS["moderate"]
    sister_sep_mean_um: float = 0.95
    sister_sep_sd_um: float = 0.15
    sister_sep_range_um: tuple[float, float] = (0.6, 1.3)
    orientation_jitter_deg: float = 15.0
    plate_radius_um: float | None = None
    plate_radius_per_sqrt_pair_um: float = 1.0
    plate_thickness_sd_um: float = 0.5
    min_pair_distance_um: float = 0.8
    plate_tilt_deg: float | None = None
    plate_center_jitter_um: float = 0.3
    oscillation_amplitude_um: float = 0.4
    oscillation_period_frames: float = 20.0
    motion_sd_um: float = 0.03
    spot_jitter_sd_um: float = 0.01
    real_layout_jitter_um: float = 0.05
    mcherry_offset_nm: float = 60.0
    mcherry_rel_brightness: float = 0.5
    mcherry_psf_scale: float = 1.15
    brightness_cv: float = 0.3
    camera_offset_adu: float = 100.0
    read_noise_e: float = 1.6
    gain_adu_per_e: float = 2.0
    background_e: float = 10.0
    haze_rel: float = 0.3
    haze_sigma_um: float | None = None
    bleach_rate: float = 0.01
    n_clutter: int = 0
    clutter_rel: float = 0.7
    clutter_size_range: tuple[float, float] = (2.0, 4.0)
    render_style: str = "gaussian"
    moffat_z_scale: float = 1.3
    noise_model: str = "poisson_gaussian"
    layout: str = "random"
    margin_um: float = 0.5
    ball_radius_um: float | None = None
    ball_radius_per_cbrt_pair_um: float = 0.55
    min_kinetochore_distance_um: float = 0.3
    pixel_offset_sd_adu: float = 0.0
    pixel_gain_cv: float = 0.0
    pixel_read_noise_log_sd: float = 0.0
    hot_pixel_fraction: float = 0.0
    hot_pixel_range_e: tuple[float, float] = (20.0, 500.0)
    dead_pixel_fraction: float = 0.0
    n_hot_columns: int = 0
    hot_column_range_adu: tuple[float, float] = (5.0, 50.0)
    full_well_e: float | None = None
    adc_max_adu: int = 65535
    depth_offset_um: float = 0.0
    psf_z_broadening_per_um: float = 0.0
    side_lobe_rel_per_um: float = 0.0
    side_lobe_offset_um: float = 0.8
    focal_shift_scale: float = 1.0
    background_percentile: float | None = None
    output_dtype: str = "uint16"

    def __post_init__(self) -> None:
        for name in _TUPLE_FIELDS:
            setattr(self, name, tuple(getattr(self, name)))
        self.shape_zyx = tuple(int(s) for s in self.shape_zyx)  # type: ignore[assignment]
        for name in _TUPLE_FIELDS[1:]:
            setattr(self, name, tuple(float(v) for v in getattr(self, name)))
        for name in _INT_FIELDS:
            setattr(self, name, int(getattr(self, name)))
        problems = _problems(self)
        if problems:
            raise InputError("invalid SimulationParams: " + "; ".join(problems))

    def plate_radius(self) -> float:
        """Radius of the plate disk in µm (``plate_radius_um`` or its default)."""
        if self.plate_radius_um is not None:
            return float(self.plate_radius_um)
        return self.plate_radius_per_sqrt_pair_um * math.sqrt(max(self.n_pairs, 1))

    def ball_radius(self) -> float:
        """Radius of the prometaphase ball in µm (``ball_radius_um`` or its default)."""
        if self.ball_radius_um is not None:
            return float(self.ball_radius_um)
        return self.ball_radius_per_cbrt_pair_um * max(self.n_pairs, 1) ** (1.0 / 3.0)

    def has_fixed_pattern(self) -> bool:
        """Whether any per-pixel camera map (offset, gain, read noise, hot/dead pixels,
        hot columns) is on."""
        return bool(
            self.pixel_offset_sd_adu
            or self.pixel_gain_cv
            or self.pixel_read_noise_log_sd
            or self.hot_pixel_fraction
            or self.dead_pixel_fraction
            or self.n_hot_columns
        )

    def has_depth_aberration(self) -> bool:
        """Whether the PSF changes with depth (broadening or a side lobe)."""
        return bool(self.psf_z_broadening_per_um or self.side_lobe_rel_per_um)

    def mean_spot_peak_e(self, haze_at_spots: float = 0.0) -> float:
        """Mean EGFP spot peak P (e-) above background that gives ``snr`` in frame 0.

        Solves P^2 = snr^2 * (F * (background + haze_rel * P * h) + read^2)
        for P, with F = 2 for EMCCD (1 otherwise) and ``h = haze_at_spots``
        the mean relative haze (peak 1) at the spots.

        >>> round(SimulationParams(snr=7.0, background_e=10.0, read_noise_e=1.6).mean_spot_peak_e(), 2)
        24.81
        """
        fano = 2.0 if self.noise_model == "emccd" else 1.0
        a = self.snr**2 * fano * self.haze_rel * haze_at_spots
        c = self.snr**2 * (fano * self.background_e + self.read_noise_e**2)
        return (a + math.sqrt(a * a + 4 * c)) / 2

    def psf_sigma_vox(self, channel: int = 0) -> np.ndarray:
        """PSF sigma (z, y, x) in voxels of ``channel`` (0 EGFP, 1 mCherry), shape (3,)."""
        scale = 1.0 if channel == 0 else self.mcherry_psf_scale
        return np.asarray(self.psf_sigma_um) * scale / np.asarray(self.voxel_size_um)


def _finite_at_least(value: float, bound: float, strict: bool) -> bool:
    if not math.isfinite(value):
        return False
    return value > bound if strict else value >= bound


def _shape_problems(p: SimulationParams) -> list[str]:
    problems = []
    if p.n_frames < 1:
        problems.append(f"n_frames must be >= 1, got {p.n_frames}")
    if len(p.shape_zyx) != 3 or min(p.shape_zyx) < 1:
        problems.append(f"shape_zyx must be 3 positive ints, got {p.shape_zyx}")
    for name in ("voxel_size_um", "psf_sigma_um"):
        value = getattr(p, name)
        if len(value) != 3 or not all(_finite_at_least(v, 0.0, True) for v in value):
            problems.append(f"{name} must be 3 positive numbers (z, y, x), got {value}")
    if p.n_pairs < 0:
        problems.append(f"n_pairs must be >= 0, got {p.n_pairs}")
    if p.n_clutter < 0:
        problems.append(f"n_clutter must be >= 0, got {p.n_clutter}")
    return problems


def _range_problems(p: SimulationParams) -> list[str]:
    problems = []
    lo, hi = p.sister_sep_range_um
    if not (0 < lo <= hi):
        problems.append(f"sister_sep_range_um must be 0 < min <= max, got {(lo, hi)}")
    if not (0 < p.clutter_size_range[0] <= p.clutter_size_range[1]):
        problems.append(f"clutter_size_range must be 0 < min <= max, got {p.clutter_size_range}")
    if not (0 < p.hot_pixel_range_e[0] <= p.hot_pixel_range_e[1] < math.inf):
        problems.append(f"hot_pixel_range_e must be 0 < min <= max, got {p.hot_pixel_range_e}")
    if not (0 <= p.hot_column_range_adu[0] <= p.hot_column_range_adu[1] < math.inf):
        problems.append(
            f"hot_column_range_adu must be 0 <= min <= max, got {p.hot_column_range_adu}"
        )
    return problems


def _camera_problems(p: SimulationParams) -> list[str]:
    problems = []
    for name in ("hot_pixel_fraction", "dead_pixel_fraction"):
        value = getattr(p, name)
        if not (0.0 <= value <= 1.0):
            problems.append(f"{name} must be in [0, 1], got {value}")
    if not p.hot_pixel_fraction + p.dead_pixel_fraction <= 1.0:
        problems.append("hot_pixel_fraction + dead_pixel_fraction must be <= 1")
    width = p.shape_zyx[-1] if p.shape_zyx else 0
    if not 0 <= p.n_hot_columns <= width:
        problems.append(f"n_hot_columns must be in [0, X = {width}], got {p.n_hot_columns}")
    if not 1 <= p.adc_max_adu <= 65535:
        problems.append(f"adc_max_adu must be in [1, 65535], got {p.adc_max_adu}")
    if not math.isfinite(p.side_lobe_offset_um):
        problems.append(f"side_lobe_offset_um must be finite, got {p.side_lobe_offset_um}")
    if p.background_percentile is not None and not 0 <= p.background_percentile <= 100:
        problems.append(
            f"background_percentile must be in [0, 100] or None, got {p.background_percentile}"
        )
    return problems


def _value_problems(p: SimulationParams) -> list[str]:
    problems = []
    if not _finite_at_least(p.snr, 0.0, True):
        problems.append(f"snr must be > 0, got {p.snr}")
    for name in _NON_NEGATIVE:
        if not _finite_at_least(getattr(p, name), 0.0, False):
            problems.append(f"{name} must be >= 0, got {getattr(p, name)}")
    for name in _POSITIVE:
        if not _finite_at_least(getattr(p, name), 0.0, True):
            problems.append(f"{name} must be > 0, got {getattr(p, name)}")
    for name in _POSITIVE_OR_NONE:
        value = getattr(p, name)
        if value is not None and not _finite_at_least(value, 0.0, True):
            problems.append(f"{name} must be > 0 or None, got {value}")
    for name, allowed in _CHOICES:
        if getattr(p, name) not in allowed:
            problems.append(f"{name} must be one of {allowed}, got {getattr(p, name)!r}")
    return problems


def _problems(p: SimulationParams) -> list[str]:
    """Every problem with ``p``, in words (empty if it is valid)."""
    return _shape_problems(p) + _range_problems(p) + _value_problems(p) + _camera_problems(p)
