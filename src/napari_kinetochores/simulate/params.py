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

__all__ = ["LAYOUTS", "NOISE_MODELS", "RENDER_STYLES", "SNR_LEVELS", "SimulationParams"]

SNR_LEVELS: dict[str, float] = {
    "very_low": 2.0,
    "low": 4.0,
    "moderate": 7.0,
    "high": 14.0,
}
"""Named SNR levels (mean spot peak / background noise std, see the package doc)."""

RENDER_STYLES: tuple[str, ...] = ("gaussian", "moffat")
NOISE_MODELS: tuple[str, ...] = ("poisson_gaussian", "emccd")
LAYOUTS: tuple[str, ...] = ("random", "real")

_TUPLE_FIELDS = (
    "shape_zyx",
    "voxel_size_um",
    "psf_sigma_um",
    "sister_sep_range_um",
    "clutter_size_range",
)
_INT_FIELDS = ("n_frames", "n_pairs", "n_clutter")
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
)
_POSITIVE = (
    "gain_adu_per_e",
    "oscillation_period_frames",
    "mcherry_psf_scale",
    "moffat_z_scale",
    "plate_radius_per_sqrt_pair_um",
)
_POSITIVE_OR_NONE = ("plate_radius_um", "haze_sigma_um")
_CHOICES = (("render_style", RENDER_STYLES), ("noise_model", NOISE_MODELS), ("layout", LAYOUTS))


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
        ``"random"`` (synthetic plate) or ``"real"`` (real annotated positions,
        at most 42 pairs, some of them single kinetochores; module docstring).
    margin_um
        Margin kept free between the spots and the volume faces, on top of the
        expected motion.

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
    return _shape_problems(p) + _range_problems(p) + _value_problems(p)
