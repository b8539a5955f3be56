"""Realistic synthetic kinetochore movies with ground truth.

The simulator renders two-colour (EGFP, mCherry) 3D time-lapse movies of
kinetochore sister pairs in a metaphase plate, with the exact sub-voxel
ground truth of every kinetochore in every frame. It is used to train and
to benchmark detectors, so it is deterministic for a given seed (a
``numpy.random.Generator``; the global RNG is never touched) and it can be
randomised widely (:func:`sample_params`, domain randomisation).

What is modelled
----------------
Geometry
    Sister pairs in a tilted disk (the metaphase plate). Pair centres are
    spread uniformly over the disk (radius ~ ``sqrt(n_pairs)``, so the density
    matches the real annotations: nearest-neighbour distance median ~0.96 µm),
    with a gaussian thickness along the plate normal and a minimum distance
    between pair centres. The sister axis is the plate normal with a random
    orientation jitter; the sister separation is a truncated normal.
    ``layout="real"`` uses the 79 annotated real kinetochore centres instead
    (see :func:`reference_layout_um`): they are the EGFP kinetochores
    themselves, turned so that the real plate normal (their smallest PCA
    axis) becomes the simulated normal, rotated randomly about it and
    jittered slightly. Sisters are paired greedily by the smallest distance
    under a metric that counts in-plane offsets twice (so partners lie
    across the plate, along the normal), up to 2 µm apart: 37 pairs (real
    separations 0.31–1.74 µm, median 0.96 µm) and 5 kinetochores whose
    sister is missing (each has its own ``pair_id``). Pairs that do not fit
    the volume are dropped, and the ``n_pairs`` closest to the plate axis are
    kept. The sister-separation and orientation parameters do not apply.
Motion
    The whole plate oscillates along its normal (sine, given amplitude and
    period in frames); each pair does a small random walk; each kinetochore
    has a small independent jitter per frame (so the sister separation
    fluctuates but does not drift).
Channels
    Channel 0 is EGFP (the kinetochore). Channel 1 is mCherry, a second
    kinetochore protein that sits ``mcherry_offset_nm`` further out along the
    sister axis (positive: towards the spindle pole, i.e. away from the
    sister; negative: towards the centromere). It is dimmer
    (``mcherry_rel_brightness`` of the EGFP mean peak) and, being red, has a
    slightly wider PSF (``mcherry_psf_scale``).
Optics
    An anisotropic PSF integrated over each voxel (difference of erf per
    axis), at sub-voxel positions. ``render_style="gaussian"`` is a 3D
    gaussian; ``"moffat"`` is a heavier-tailed, Moffat-like (β = 2.5) xy
    profile of the same FWHM with a longer z extent, to test domain shift.
    Brightness varies between kinetochores (log-normal, given CV).
Background and clutter
    A uniform background, an out-of-focus haze (a broad smooth blob around the
    plate), and optional clutter: larger, dimmer-per-voxel blobs (out-of-focus
    aggregates) that are *not* kinetochores and are not in the ground truth.
Camera
    Photobleaching (``exp(-bleach_rate * t)``) of everything but the uniform
    background, Poisson shot noise (``noise_model="emccd"`` adds the EM
    multiplication excess noise, a factor 2 on the shot-noise variance),
    gaussian read noise, gain, camera offset, rounding and clipping to uint16.

Signal-to-noise ratio
---------------------
``snr`` is defined in frame 0 of channel 0 (EGFP), in photo-electrons, as::

    SNR = mean over kinetochores of the peak of the noise-free spot
          / noise std at the local background

where the *peak* of a spot is the value of its brightest voxel (the
voxel-integrated PSF times the spot's amplitude, so it accounts for the
spot's sub-voxel position) above the local background, and the noise std is
``sqrt(F * B + read_noise_e**2)`` with ``B`` the mean expected background
(uniform background plus haze) at the spot centres and ``F`` = 1 for
``"poisson_gaussian"`` and 2 for ``"emccd"``. The spot amplitudes are scaled so
that this holds exactly for the rendered movie (the haze, set relative to the
spot peak, enters the noise; the resulting equation is solved exactly).
mCherry has the same background, so its SNR is roughly
``mcherry_rel_brightness * snr``. Later frames are dimmer (photobleaching).

:data:`SNR_LEVELS` gives named levels. At ``"moderate"`` a simple LoG detector
finds ~95 % of spots, at ``"low"`` it starts to struggle, and ``"very_low"``
(peak / noise = 2) is hard. Measured with a LoG filter (sigma = PSF sigma),
3×5×5 local maxima and the best threshold, on default 20-pair movies (F1 at
0.3 µm / recall, gaussian style): very_low 0.29 / 0.24, low 0.80 / 0.78,
moderate 0.95 / 0.92, high 0.97 / 0.95; the ceiling of that detector is
~0.95 recall because it merges the closest pairs (< 0.75 µm).

Coordinates follow the package conventions: axes TCZYX, positions in float
voxel coordinates with the voxel centre at the integer index, physical
coordinates = voxel coordinates × voxel size (z, y, x) in µm.

Example
-------
>>> from napari_kinetochores.simulate import SimulationParams, simulate_movie
>>> movie = simulate_movie(SimulationParams(n_frames=2, shape_zyx=(16, 64, 64), n_pairs=4), seed=1)
>>> movie.image.shape, movie.image.dtype
((2, 2, 16, 64, 64), dtype('uint16'))
>>> sorted(set(movie.points["channel"]))
[0, 1]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from importlib.resources import files

import numpy as np
import pandas as pd
from scipy.special import erf

__all__ = [
    "LAYOUTS",
    "NOISE_MODELS",
    "RENDER_STYLES",
    "SNR_LEVELS",
    "SimulatedMovie",
    "SimulationParams",
    "reference_layout_um",
    "render_spots",
    "sample_params",
    "simulate_movie",
]

SNR_LEVELS: dict[str, float] = {
    "very_low": 2.0,
    "low": 4.0,
    "moderate": 7.0,
    "high": 14.0,
}
"""Named SNR levels (mean spot peak / background noise std, see the module doc)."""

RENDER_STYLES: tuple[str, ...] = ("gaussian", "moffat")
NOISE_MODELS: tuple[str, ...] = ("poisson_gaussian", "emccd")
LAYOUTS: tuple[str, ...] = ("random", "real")

# Moffat-like (beta = 2.5) radial profile with the FWHM of a unit gaussian,
# written as a mixture of isotropic 2D gaussians (fitted by NNLS on the radial
# profile; max error 0.2 % of the peak). Each component keeps the separable,
# voxel-integrated rendering. In z, component k has sigma
# sigma_z * moffat_z_scale * sqrt(scale_k) (wider tails out of focus too).
_MOFFAT_SCALES = np.array([0.7, 1.0, 1.5, 2.3, 3.5])
_MOFFAT_WEIGHTS = np.array([0.0975, 0.2914, 0.3760, 0.1281, 0.0989])
_MOFFAT_WEIGHTS = _MOFFAT_WEIGHTS / _MOFFAT_WEIGHTS.sum()

_UINT16_MAX = 65535
_POINT_COLUMNS = [
    "t",
    "z",
    "y",
    "x",
    "z_um",
    "y_um",
    "x_um",
    "channel",
    "pair_id",
    "track_id",
    "amplitude",
]
_CLUTTER_COLUMNS = [
    "t",
    "z",
    "y",
    "x",
    "z_um",
    "y_um",
    "x_um",
    "channel",
    "clutter_id",
    "amplitude",
]


# --------------------------------------------------------------------------- params


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
        self.shape_zyx = tuple(int(s) for s in self.shape_zyx)  # type: ignore[assignment]
        self.voxel_size_um = tuple(float(v) for v in self.voxel_size_um)  # type: ignore[assignment]
        self.psf_sigma_um = tuple(float(v) for v in self.psf_sigma_um)  # type: ignore[assignment]
        self.sister_sep_range_um = tuple(float(v) for v in self.sister_sep_range_um)  # type: ignore[assignment]
        self.clutter_size_range = tuple(float(v) for v in self.clutter_size_range)  # type: ignore[assignment]
        self.n_frames = int(self.n_frames)
        self.n_pairs = int(self.n_pairs)
        self.n_clutter = int(self.n_clutter)
        problems = []
        if self.n_frames < 1:
            problems.append(f"n_frames must be >= 1, got {self.n_frames}")
        if len(self.shape_zyx) != 3 or min(self.shape_zyx) < 1:
            problems.append(f"shape_zyx must be 3 positive ints, got {self.shape_zyx}")
        for name in ("voxel_size_um", "psf_sigma_um"):
            value = getattr(self, name)
            if len(value) != 3 or not all(math.isfinite(v) and v > 0 for v in value):
                problems.append(f"{name} must be 3 positive numbers (z, y, x), got {value}")
        if self.n_pairs < 0:
            problems.append(f"n_pairs must be >= 0, got {self.n_pairs}")
        if not (math.isfinite(self.snr) and self.snr > 0):
            problems.append(f"snr must be > 0, got {self.snr}")
        lo, hi = self.sister_sep_range_um
        if not (0 < lo <= hi):
            problems.append(f"sister_sep_range_um must be 0 < min <= max, got {(lo, hi)}")
        if self.n_clutter < 0:
            problems.append(f"n_clutter must be >= 0, got {self.n_clutter}")
        for name in (
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
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be >= 0, got {value}")
        for name in (
            "gain_adu_per_e",
            "oscillation_period_frames",
            "mcherry_psf_scale",
            "moffat_z_scale",
            "plate_radius_per_sqrt_pair_um",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be > 0, got {value}")
        if self.plate_radius_um is not None and not self.plate_radius_um > 0:
            problems.append(f"plate_radius_um must be > 0 or None, got {self.plate_radius_um}")
        if self.haze_sigma_um is not None and not self.haze_sigma_um > 0:
            problems.append(f"haze_sigma_um must be > 0 or None, got {self.haze_sigma_um}")
        if not (0 < self.clutter_size_range[0] <= self.clutter_size_range[1]):
            problems.append(
                f"clutter_size_range must be 0 < min <= max, got {self.clutter_size_range}"
            )
        for name, allowed in (
            ("render_style", RENDER_STYLES),
            ("noise_model", NOISE_MODELS),
            ("layout", LAYOUTS),
        ):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if problems:
            raise ValueError("invalid SimulationParams: " + "; ".join(problems))

    def plate_radius(self) -> float:
        """Radius of the plate disk in µm (``plate_radius_um`` or its default)."""
        if self.plate_radius_um is not None:
            return float(self.plate_radius_um)
        return self.plate_radius_per_sqrt_pair_um * math.sqrt(max(self.n_pairs, 1))

    def psf_sigma_vox(self, channel: int = 0) -> np.ndarray:
        """PSF sigma (z, y, x) in voxels of ``channel`` (0 EGFP, 1 mCherry), shape (3,)."""
        scale = 1.0 if channel == 0 else self.mcherry_psf_scale
        return np.asarray(self.psf_sigma_um) * scale / np.asarray(self.voxel_size_um)


@dataclass
class SimulatedMovie:
    """A simulated movie and its ground truth.

    Attributes
    ----------
    image
        (T, C, Z, Y, X) uint16 in ADU, C = 2: channel 0 EGFP, channel 1 mCherry.
    points
        Ground truth, one row per kinetochore per frame per channel, sorted by
        t, channel, track_id. Columns: ``t`` (int), ``z, y, x`` (float voxel
        coordinates, voxel centre at the integer index), ``z_um, y_um, x_um``
        (= voxel × voxel size), ``channel`` (0 EGFP, 1 mCherry), ``pair_id``
        (sisters share it), ``track_id`` (one kinetochore over time; the
        EGFP and mCherry rows of a kinetochore share it), ``amplitude``
        (integrated photo-electrons of the spot in that frame). Only spots
        whose centre lies inside [0, size - 1] on every axis are listed.
    params
        The parameters used.
    clutter
        Centres of the clutter blobs (not kinetochores), same coordinate
        columns plus ``channel, clutter_id, amplitude``; empty if none.
    """

    image: np.ndarray
    points: pd.DataFrame
    params: SimulationParams
    clutter: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_CLUTTER_COLUMNS))

    @property
    def voxel_size_um(self) -> tuple[float, float, float]:
        """Voxel size (z, y, x) in µm."""
        return self.params.voxel_size_um


# --------------------------------------------------------------------------- rendering


def _components(
    sigma: np.ndarray, style: str, moffat_z_scale: float
) -> list[tuple[float, np.ndarray]]:
    """Gaussian components (weight, sigma (N, 3)) of the PSF ``style``."""
    if style == "gaussian":
        return [(1.0, sigma)]
    if style == "moffat":
        comps = []
        for w, s in zip(_MOFFAT_WEIGHTS, _MOFFAT_SCALES, strict=True):
            scale = np.array([moffat_z_scale * math.sqrt(s), s, s])
            comps.append((float(w), sigma * scale))
        return comps
    raise ValueError(f"render style must be one of {RENDER_STYLES}, got {style!r}")


def _voxel_integral(lower: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Mass of a unit 1D gaussian (centre 0) in [lower, lower + 1]."""
    inv = 1.0 / (math.sqrt(2.0) * sigma)
    return 0.5 * (erf((lower + 1.0) * inv) - erf(lower * inv))


def _render_gaussians(out: np.ndarray, pos: np.ndarray, amp: np.ndarray, sigma: np.ndarray) -> None:
    """Add voxel-integrated gaussians to ``out`` in place (see render_spots)."""
    n = len(pos)
    if n == 0:
        return
    shape = out.shape
    starts, profiles = [], []
    for a in range(3):
        half = int(math.ceil(4.0 * float(sigma[:, a].max()) + 0.5))
        start = np.rint(pos[:, a]).astype(np.int64) - half
        idx = start[:, None] + np.arange(2 * half + 1)[None, :]
        lower = idx - 0.5 - pos[:, a, None]
        starts.append(start)
        profiles.append(_voxel_integral(lower, sigma[:, a, None]))
    for i in range(n):
        if amp[i] == 0:
            continue
        slices, parts = [], []
        for a in range(3):
            s0 = int(starts[a][i])
            width = profiles[a].shape[1]
            lo, hi = max(s0, 0), min(s0 + width, shape[a])
            if hi <= lo:
                break
            slices.append(slice(lo, hi))
            parts.append(profiles[a][i, lo - s0 : hi - s0])
        else:
            block = (amp[i] * parts[0])[:, None, None] * parts[1][None, :, None]
            out[tuple(slices)] += block * parts[2][None, None, :]


def render_spots(
    shape_zyx: Sequence[int],
    positions_zyx_vox: np.ndarray,
    amplitudes: np.ndarray | float,
    psf_sigma_vox: np.ndarray | Sequence[float],
    style: str = "gaussian",
    *,
    moffat_z_scale: float = 1.3,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Render point sources through a voxel-integrated anisotropic PSF.

    Each spot is the PSF integrated exactly over every voxel (difference of
    erf per axis; the gaussian is separable, so a spot is the outer product of
    three 1D profiles in a window of ±4 sigma around it). Positions are
    sub-voxel; the voxel centre is at the integer index. A spot well inside
    the volume sums to its amplitude.

    Parameters
    ----------
    shape_zyx
        Output shape (Z, Y, X).
    positions_zyx_vox
        (N, 3) float spot centres (z, y, x) in voxels.
    amplitudes
        (N,) integrated intensity of each spot (or a scalar for all).
    psf_sigma_vox
        (3,) gaussian sigma (z, y, x) in voxels, or (N, 3) per spot. For
        ``style="moffat"``: the sigma of the gaussian of equal FWHM.
    style
        ``"gaussian"``, or ``"moffat"``: a heavier-tailed Moffat-like
        (β = 2.5) xy profile, a mixture of gaussians, whose z sigma is further
        scaled by ``moffat_z_scale``.
    moffat_z_scale
        Extra z elongation of the ``"moffat"`` style.
    out
        Optional float32 array of shape ``shape_zyx`` to add into.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``shape_zyx``.

    Examples
    --------
    >>> img = render_spots((9, 9, 9), [[4.0, 4.25, 3.5]], [1000.0], (1.0, 0.8, 0.8))
    >>> round(float(img.sum()), 1)
    1000.0
    """
    shape = tuple(int(s) for s in shape_zyx)
    if len(shape) != 3:
        raise ValueError(f"shape_zyx must have 3 entries (Z, Y, X), got {shape_zyx}")
    pos = np.asarray(positions_zyx_vox, dtype=np.float64).reshape(-1, 3)
    n = len(pos)
    amp = np.broadcast_to(np.asarray(amplitudes, dtype=np.float64), (n,))
    sigma = np.broadcast_to(np.asarray(psf_sigma_vox, dtype=np.float64), (n, 3))
    if n and (not np.all(np.isfinite(pos)) or not np.all(np.isfinite(amp))):
        raise ValueError("render_spots: positions and amplitudes must be finite")
    if n and not np.all(sigma > 0):
        raise ValueError("render_spots: psf_sigma_vox must be > 0")
    if out is None:
        out = np.zeros(shape, dtype=np.float32)
    elif out.shape != shape:
        raise ValueError(f"render_spots: out has shape {out.shape}, expected {shape}")
    for weight, comp_sigma in _components(sigma, style, moffat_z_scale):
        _render_gaussians(out, pos, amp * weight, comp_sigma)
    return out


def _peak_fraction(
    pos: np.ndarray, sigma: np.ndarray, style: str, moffat_z_scale: float
) -> np.ndarray:
    """Brightest-voxel value of each spot per unit amplitude, shape (N,).

    The brightest voxel of a voxel-integrated, centred, unimodal separable
    profile is the voxel that contains the centre.
    """
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, 3)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), pos.shape)
    lower = np.rint(pos) - 0.5 - pos
    total = np.zeros(len(pos))
    for weight, comp_sigma in _components(sigma, style, moffat_z_scale):
        total += weight * np.prod(_voxel_integral(lower, comp_sigma), axis=1)
    return total


def _gaussian_blob(
    shape: tuple[int, ...], centre_vox: np.ndarray, sigma_vox: np.ndarray
) -> np.ndarray:
    """Separable gaussian with peak 1 at ``centre_vox``, float32 of ``shape``."""
    axes = [
        np.exp(-0.5 * ((np.arange(n) - c) / s) ** 2).astype(np.float32)
        for n, c, s in zip(shape, centre_vox, sigma_vox, strict=True)
    ]
    return axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]


# --------------------------------------------------------------------------- layout


@lru_cache(maxsize=1)
def _reference_layout() -> np.ndarray:
    resource = files("napari_kinetochores") / "data" / "reference_layout.csv"
    with resource.open("r", encoding="utf-8") as fh:
        table = pd.read_csv(fh, comment="#")
    arr = table[["z_um", "y_um", "x_um"]].to_numpy(dtype=np.float64)
    arr.setflags(write=False)
    return arr


def reference_layout_um() -> np.ndarray:
    """Real annotated kinetochore centres, centred, in µm.

    The 79 centre-of-mass annotations of one time point of a real two-colour
    kinetochore movie (40 sister pairs, one kinetochore missing), converted
    from pixels with the voxel size (0.30, 0.13, 0.13) µm and centred on
    their mean. They are shipped as package data
    (``napari_kinetochores/data/reference_layout.csv``). Nearest-neighbour
    distances: min 0.31 µm, median 0.96 µm.

    Returns
    -------
    numpy.ndarray
        (79, 3) float64 (z, y, x) in µm, mean zero (a fresh copy).

    Examples
    --------
    >>> reference_layout_um().shape
    (79, 3)
    """
    return _reference_layout().copy()


@lru_cache(maxsize=1)
def _reference_geometry() -> tuple[np.ndarray, np.ndarray, tuple[tuple[int, ...], ...]]:
    """PCA basis (rows: in-plane 1, in-plane 2, normal) and sister units of the reference.

    Sisters are paired greedily by the smallest distance under a metric that
    counts in-plane offsets twice (sister axes lie along the plate normal),
    only up to 2 µm apart; the rest are singletons (units of one).
    """
    ref = _reference_layout()
    _, _, vt = np.linalg.svd(ref - ref.mean(axis=0), full_matrices=False)
    normal = vt[2]
    diff = ref[:, None, :] - ref[None, :, :]
    along = diff @ normal
    inplane2 = np.sum(diff**2, axis=-1) - along**2
    metric = np.sqrt(along**2 + 4.0 * inplane2)
    euclid = np.sqrt(np.sum(diff**2, axis=-1))
    n = len(ref)
    iu, ju = np.triu_indices(n, k=1)
    order = np.argsort(metric[iu, ju], kind="stable")
    used = np.zeros(n, dtype=bool)
    units: list[tuple[int, ...]] = []
    for k in order:
        i, j = int(iu[k]), int(ju[k])
        if used[i] or used[j] or euclid[i, j] > 2.0:
            continue
        used[i] = used[j] = True
        units.append((i, j))
    units.extend((int(i),) for i in np.flatnonzero(~used))
    return vt.copy(), normal.copy(), tuple(units)


def _plate_basis(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two orthonormal in-plane vectors for a unit ``normal``."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(normal, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    return e1, e2


@dataclass
class _Layout:
    pos_um: np.ndarray  # (K, 3) kinetochore positions relative to the plate centre, frame 0
    pair_index: np.ndarray  # (K,) pair index 0..P-1
    outward: np.ndarray  # (K, 3) unit vectors from the pair centre towards this sister's pole


def _inside(points: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.all((points >= lo) & (points <= hi), axis=-1)


def _random_layout(
    p: SimulationParams,
    rng: np.random.Generator,
    normal: np.ndarray,
    centre: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> _Layout:
    e1, e2 = _plate_basis(normal)
    radius = p.plate_radius()
    jitter = math.radians(p.orientation_jitter_deg)
    off = p.mcherry_offset_nm / 1000.0
    smin, smax = p.sister_sep_range_um
    d_min = p.min_pair_distance_um
    batch = 256
    centres: list[np.ndarray] = []
    pos, pair_index, outward = [], [], []
    for i in range(p.n_pairs):
        placed = False
        for relax in range(12):
            r = radius * np.sqrt(rng.random(batch))
            phi = 2 * np.pi * rng.random(batch)
            h = p.plate_thickness_sd_um * rng.standard_normal(batch)
            c = (
                (r * np.cos(phi))[:, None] * e1
                + (r * np.sin(phi))[:, None] * e2
                + h[:, None] * normal
            )
            g = jitter * rng.standard_normal((batch, 2))
            axis = normal + g[:, :1] * e1 + g[:, 1:] * e2
            axis /= np.linalg.norm(axis, axis=1, keepdims=True)
            sep = p.sister_sep_mean_um + p.sister_sep_sd_um * rng.standard_normal(batch)
            bad = (sep < smin) | (sep > smax)
            sep[bad] = rng.uniform(smin, smax, size=int(bad.sum()))
            half = (sep / 2)[:, None] * axis
            ok = np.ones(batch, dtype=bool)
            if relax < 11:
                for sign in (1.0, -1.0):
                    ok &= _inside(centre + c + sign * half, lo, hi)
                    ok &= _inside(centre + c + sign * (half + off * axis), lo, hi)
                if centres:
                    prev = np.asarray(centres)
                    dist = np.sqrt(np.sum((c[:, None, :] - prev[None, :, :]) ** 2, axis=-1))
                    ok &= dist.min(axis=1) >= d_min * 0.8**relax
            hits = np.flatnonzero(ok)
            if len(hits):
                k = hits[0]
                centres.append(c[k])
                pos.extend([c[k] + half[k], c[k] - half[k]])
                outward.extend([axis[k], -axis[k]])
                pair_index.extend([i, i])
                placed = True
                break
        if not placed:  # pragma: no cover - the last relaxation always accepts
            raise RuntimeError("could not place a sister pair")
    return _Layout(
        np.asarray(pos, dtype=np.float64).reshape(-1, 3),
        np.asarray(pair_index, dtype=np.int64),
        np.asarray(outward, dtype=np.float64).reshape(-1, 3),
    )


def _real_layout(
    p: SimulationParams,
    rng: np.random.Generator,
    normal: np.ndarray,
    centre: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> _Layout:
    ref = _reference_layout()
    vt, _, units = _reference_geometry()
    e1, e2 = _plate_basis(normal)
    psi = 2 * np.pi * rng.random()
    f1 = math.cos(psi) * e1 + math.sin(psi) * e2
    f2 = -math.sin(psi) * e1 + math.cos(psi) * e2
    coords = ref @ vt.T  # (K, 3) in the reference PCA frame
    pos = coords[:, :1] * f1 + coords[:, 1:2] * f2 + coords[:, 2:3] * normal
    pos = pos + p.real_layout_jitter_um * rng.standard_normal(pos.shape)
    outward = np.zeros_like(pos)
    for unit in units:
        if len(unit) == 2:
            i, j = unit
            u = pos[i] - pos[j]
            u /= np.linalg.norm(u)
            outward[i], outward[j] = u, -u
        else:
            (i,) = unit
            outward[i] = normal if pos[i] @ normal >= 0 else -normal
    off = p.mcherry_offset_nm / 1000.0
    fits = []
    for unit in units:
        members = np.asarray(unit)
        pts = np.concatenate([pos[members], pos[members] + off * outward[members]])
        if np.all(_inside(centre + pts, lo, hi)):
            mid = pos[members].mean(axis=0)
            mid_inplane = mid - (mid @ normal) * normal
            fits.append((float(np.linalg.norm(mid_inplane)), unit))
    fits.sort(key=lambda item: item[0])
    chosen = [unit for _, unit in fits[: p.n_pairs]]
    index = [k for unit in chosen for k in unit]
    pair_index = [i for i, unit in enumerate(chosen) for _ in unit]
    return _Layout(
        pos[index].reshape(-1, 3),
        np.asarray(pair_index, dtype=np.int64),
        outward[index].reshape(-1, 3),
    )


# --------------------------------------------------------------------------- simulation


def _lognormal(rng: np.random.Generator, cv: float, size: int) -> np.ndarray:
    """Log-normal samples with mean 1 and coefficient of variation ``cv``."""
    s2 = math.log1p(cv**2)
    return np.exp(math.sqrt(s2) * rng.standard_normal(size) - s2 / 2)


def _to_adu(expected_e: np.ndarray, p: SimulationParams, rng: np.random.Generator) -> np.ndarray:
    """Camera model: photo-electron expectation (float) -> uint16 ADU."""
    counts = rng.poisson(np.maximum(expected_e, 0.0))
    if p.noise_model == "emccd":
        signal = rng.gamma(counts, 1.0).astype(np.float32)  # EM register: excess noise factor 2
    else:
        signal = counts.astype(np.float32)
    signal += np.float32(p.read_noise_e) * rng.standard_normal(signal.shape, dtype=np.float32)
    adu = np.float32(p.camera_offset_adu) + np.float32(p.gain_adu_per_e) * signal
    return np.clip(np.rint(adu), 0, _UINT16_MAX).astype(np.uint16)


def _frame_table(
    t: int,
    channel: int,
    pos_vox: np.ndarray,
    voxel: np.ndarray,
    ids: dict[str, np.ndarray],
    amplitude: np.ndarray,
) -> pd.DataFrame:
    um = pos_vox * voxel
    table = {
        "t": np.full(len(pos_vox), t, dtype=np.int64),
        "z": pos_vox[:, 0],
        "y": pos_vox[:, 1],
        "x": pos_vox[:, 2],
        "z_um": um[:, 0],
        "y_um": um[:, 1],
        "x_um": um[:, 2],
        "channel": np.full(len(pos_vox), channel, dtype=np.int64),
    }
    table.update(ids)
    table["amplitude"] = amplitude
    return pd.DataFrame(table)


def simulate_movie(params: SimulationParams | None = None, seed: int = 0) -> SimulatedMovie:
    """Simulate a two-colour 3D kinetochore movie with ground truth.

    Deterministic: the same ``params`` and ``seed`` give the same movie. See
    the module docstring for the model and the definition of SNR.

    Parameters
    ----------
    params
        Simulation parameters; ``None`` for the defaults.
    seed
        Seed of the ``numpy.random.Generator`` used for everything.

    Returns
    -------
    SimulatedMovie
        ``image`` (T, 2, Z, Y, X) uint16, ``points`` (ground truth of both
        channels, voxel and µm coordinates), ``params``, ``clutter``.

    Examples
    --------
    >>> movie = simulate_movie(SimulationParams(n_frames=1, shape_zyx=(16, 48, 48), n_pairs=3), seed=0)
    >>> movie.image.shape
    (1, 2, 16, 48, 48)
    >>> int((movie.points["channel"] == 0).sum())
    6
    """
    p = SimulationParams() if params is None else params
    rng = np.random.default_rng(seed)
    shape = p.shape_zyx
    voxel = np.asarray(p.voxel_size_um)
    n_t = p.n_frames
    extent = (np.asarray(shape) - 1) * voxel  # µm span of voxel centres

    # ---- plate orientation, centre and the box the spots must stay in
    tilt = math.radians(90.0 * rng.random() if p.plate_tilt_deg is None else p.plate_tilt_deg)
    azimuth = 2 * np.pi * rng.random()
    normal = np.array(
        [math.cos(tilt), math.sin(tilt) * math.sin(azimuth), math.sin(tilt) * math.cos(azimuth)]
    )
    walk_margin = min(3.0 * p.motion_sd_um * math.sqrt(max(n_t - 1, 0)), 1.0)
    margin = (
        p.margin_um
        + p.oscillation_amplitude_um * np.abs(normal)
        + walk_margin
        + 3.0 * p.spot_jitter_sd_um
    )
    lo, hi = margin, extent - margin
    squeezed = lo > hi
    lo = np.where(squeezed, extent / 2, lo)
    hi = np.where(squeezed, extent / 2, hi)
    centre = extent / 2 + p.plate_center_jitter_um * rng.standard_normal(3)
    centre = np.clip(centre, lo, hi)

    layout_fn = _real_layout if p.layout == "real" else _random_layout
    layout = layout_fn(p, rng, normal, centre, lo, hi)
    n_k = len(layout.pos_um)
    n_pairs = int(layout.pair_index.max()) + 1 if n_k else 0

    # ---- motion: plate oscillation + pair random walk + per-spot jitter
    times = np.arange(n_t)
    phase = 2 * np.pi * rng.random()
    osc = p.oscillation_amplitude_um * np.sin(
        2 * np.pi * times / p.oscillation_period_frames + phase
    )
    plate_centre_t = centre[None, :] + osc[:, None] * normal[None, :]  # (T, 3)
    steps = p.motion_sd_um * rng.standard_normal((n_t, n_pairs, 3))
    steps[0] = 0.0
    walk = np.cumsum(steps, axis=0)  # (T, P, 3)
    jitter = p.spot_jitter_sd_um * rng.standard_normal((n_t, n_k, 3))
    egfp_um = plate_centre_t[:, None, :] + layout.pos_um[None] + walk[:, layout.pair_index] + jitter
    off = p.mcherry_offset_nm / 1000.0
    mch_um = egfp_um + off * layout.outward[None]
    pos_vox = [egfp_um / voxel, mch_um / voxel]  # per channel, (T, K, 3)

    # ---- brightness, calibrated to the SNR definition
    sigma_vox = [p.psf_sigma_vox(0), p.psf_sigma_vox(1)]
    b_egfp = _lognormal(rng, p.brightness_cv, n_k)
    b_mch = b_egfp * _lognormal(rng, p.brightness_cv / 2, n_k)
    radius = p.plate_radius()
    haze_sigma_xy = p.haze_sigma_um if p.haze_sigma_um is not None else 0.7 * radius + 2.0
    haze_sigma_vox = np.array([1.5 * haze_sigma_xy, haze_sigma_xy, haze_sigma_xy]) / voxel
    fano = 2.0 if p.noise_model == "emccd" else 1.0
    if n_k:
        d = (pos_vox[0][0] - plate_centre_t[0] / voxel) / haze_sigma_vox
        haze_at_spots = float(np.mean(np.exp(-0.5 * np.sum(d**2, axis=1))))
    else:
        haze_at_spots = 0.0
    # P^2 = snr^2 * (F * (bg + haze_rel * P * h) + read^2), solved for the mean peak P (e-)
    a = p.snr**2 * fano * p.haze_rel * haze_at_spots
    c = p.snr**2 * (fano * p.background_e + p.read_noise_e**2)
    peak_e = (a + math.sqrt(a * a + 4 * c)) / 2
    peak_ch = [peak_e, peak_e * p.mcherry_rel_brightness]
    amps = []
    for ch, b in enumerate((b_egfp, b_mch)):
        if n_k:
            pf = _peak_fraction(pos_vox[ch][0], sigma_vox[ch], p.render_style, p.moffat_z_scale)
            amps.append(b * peak_ch[ch] / float(np.mean(b * pf)))
        else:
            amps.append(np.zeros(0))

    # ---- clutter: big, dim-per-voxel blobs that are not kinetochores
    n_c = p.n_clutter
    clutter_um0 = np.zeros((n_c, 3))
    for i in range(n_c):
        cand = lo + (hi - lo) * rng.random((64, 3))
        if n_k:
            dist = np.sqrt(np.sum((cand[:, None] - egfp_um[0][None]) ** 2, axis=-1)).min(axis=1)
            good = np.flatnonzero(dist >= 1.0)
            clutter_um0[i] = cand[good[0]] if len(good) else cand[0]
        else:
            clutter_um0[i] = cand[0]
    clutter_scale = rng.uniform(*p.clutter_size_range, size=n_c)
    clutter_peak = p.clutter_rel * _lognormal(rng, 0.3, n_c)
    clutter_in_ch1 = rng.random(n_c) < 0.5
    c_steps = p.motion_sd_um * rng.standard_normal((n_t, n_c, 3))
    c_steps[0] = 0.0
    clutter_um = clutter_um0[None] + np.cumsum(c_steps, axis=0)  # (T, n_c, 3)
    clutter_vox = clutter_um / voxel
    clutter_amp, clutter_sigma = [], []
    for ch in range(2):
        sig = clutter_scale[:, None] * sigma_vox[ch][None, :]
        pf = _peak_fraction(clutter_vox[0], sig, p.render_style, p.moffat_z_scale)
        amp = clutter_peak * peak_ch[ch] / np.maximum(pf, 1e-12)
        if ch == 1:
            amp = np.where(clutter_in_ch1, amp, 0.0)
        clutter_amp.append(amp)
        clutter_sigma.append(sig)

    # ---- render frames
    image = np.empty((n_t, 2) + shape, dtype=np.uint16)
    track_id = np.arange(n_k, dtype=np.int64)
    tables, clutter_tables = [], []
    upper = np.asarray(shape) - 1
    for t in range(n_t):
        fade = math.exp(-p.bleach_rate * t)
        haze = (
            _gaussian_blob(shape, plate_centre_t[t] / voxel, haze_sigma_vox)
            if p.haze_rel > 0
            else None
        )
        for ch in range(2):
            expected = render_spots(
                shape,
                pos_vox[ch][t],
                amps[ch] * fade,
                sigma_vox[ch],
                p.render_style,
                moffat_z_scale=p.moffat_z_scale,
            )
            if n_c:
                render_spots(
                    shape,
                    clutter_vox[t],
                    clutter_amp[ch] * fade,
                    clutter_sigma[ch],
                    p.render_style,
                    moffat_z_scale=p.moffat_z_scale,
                    out=expected,
                )
            expected += np.float32(p.background_e)
            if haze is not None:
                expected += np.float32(p.haze_rel * peak_ch[ch] * fade) * haze
            image[t, ch] = _to_adu(expected, p, rng)

            keep = np.all((pos_vox[ch][t] >= 0) & (pos_vox[ch][t] <= upper), axis=1)
            ids = {"pair_id": layout.pair_index[keep], "track_id": track_id[keep]}
            tables.append(
                _frame_table(t, ch, pos_vox[ch][t][keep], voxel, ids, amps[ch][keep] * fade)
            )
            if n_c:
                present = clutter_amp[ch] > 0
                ids = {"clutter_id": np.flatnonzero(present).astype(np.int64)}
                clutter_tables.append(
                    _frame_table(
                        t, ch, clutter_vox[t][present], voxel, ids, clutter_amp[ch][present] * fade
                    )
                )

    points = pd.concat(tables, ignore_index=True)[_POINT_COLUMNS]
    points = points.sort_values(["t", "channel", "track_id"], kind="stable").reset_index(drop=True)
    clutter = (
        pd.concat(clutter_tables, ignore_index=True)[_CLUTTER_COLUMNS]
        if clutter_tables
        else pd.DataFrame(columns=_CLUTTER_COLUMNS)
    )
    return SimulatedMovie(image=image, points=points, params=p, clutter=clutter)


# --------------------------------------------------------------------------- randomisation


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
