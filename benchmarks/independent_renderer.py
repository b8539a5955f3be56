"""A held-out renderer of kinetochore movies, written independently of ``napari_kinetochores.simulate``.

It shares no code, no layouts and no noise chain with the project's simulator,
so that the validation suite (:mod:`benchmarks.bench_robustness`) measures the
detectors on images that their training data did not shape. What it does, and
how that differs from the simulator:

Optics
    A spinning-disk confocal PSF from a scalar pupil integral (Born & Wolf,
    with the Gibson & Lanni refractive-index-mismatch phase), not a gaussian
    or a mixture of gaussians: the emission PSF (520 nm) blurred laterally by
    the back-projected pinhole, times the excitation PSF (488 nm), plus a
    little pinhole crosstalk (a widefield emission term that gives the
    out-of-focus haze its cone and rings), blurred by the kinetochore's own
    size (a gaussian blob of fluorophores, sd 60 nm). With a sample index
    below the immersion index the PSF changes with depth below the
    coverslip: it broadens axially, becomes asymmetric with side lobes, and
    its focus shifts (the focal shift). The clean baseline
    (:data:`BASELINE_OPTICS`) has a residual spherical aberration that is the
    same everywhere, so its PSF is as wide as measured on real spinning disks.
    The PSF is tabulated as I(r, dz), sampled 4 × 4 times per pixel in y and
    x and averaged (pixel integration), and sampled at the plane in z (a z
    step is an optical section, not an integral).
Layouts
    Metaphase plates placed on a jittered sunflower (Vogel) spiral inside an
    ellipse whose normal (the spindle axis) lies near the image plane, or a
    prometaphase ball (pair centres in a spherical shell, sister axes in all
    directions); over time the plate oscillates, rotates slightly, pairs
    random-walk and sister separations breathe.
Background
    A cell (smooth-edged ellipsoid) with low-frequency texture, a spindle haze
    around the kinetochores, a medium level outside the cell.
Camera
    CCD: Poisson photo-electrons plus dark charge, gaussian read noise, gain,
    offset, ADC truncation (floor) and a 14-bit ceiling. sCMOS: per-pixel
    offset, gain and read-noise maps (with a tail of noisy pixels) and hot
    pixels (dark charge hundreds of e⁻), all fixed through z and time.

Ground truth is the apparent position of every kinetochore: its true
position plus the focal shift of the PSF at its depth, measured as the
centre of mass of the on-axis profile above half its peak (reference labels
are centre-of-mass points; for an asymmetric PSF the brightest plane lies
20–40 nm from it). Positions
are float voxel coordinates (voxel centre at the integer index) of a (T, 1,
Z, Y, X) movie; physical = voxel × voxel size (z, y, x) in µm.

The signal-to-noise ratio ``snr`` is, in frame 0, the mean over kinetochores
of the noise-free peak voxel of each spot divided by
``sqrt(background e⁻ at the spot + read noise²)``.

Examples
--------
>>> movie = render_movie(MovieSpec(shape_zyx=(12, 48, 48), n_frames=2, n_pairs=4), seed=5_000_000)
>>> movie.image.shape, movie.image.dtype
((2, 1, 12, 48, 48), dtype('uint16'))
>>> sorted(movie.points.columns)[:4]
['pair_id', 't', 'x', 'x_um']
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import ndimage, signal, special

__all__ = [
    "ABERRATED_OPTICS",
    "BASELINE_OPTICS",
    "CameraPattern",
    "MovieSpec",
    "Optics",
    "RenderedMovie",
    "psf_table",
    "render_movie",
    "scmos_pattern",
]

_GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))
_OVERSAMPLE_YX = 4
_BOX_HALF_UM = (2.5, 1.3, 1.3)  # rendered extent of one spot around its centre (z, y, x)


# --------------------------------------------------------------------------- optics


@dataclass(frozen=True)
class Optics:
    """A spinning-disk confocal microscope with an oil objective.

    Attributes
    ----------
    na : float
        Numerical aperture.
    n_immersion, n_sample : float
        Refractive indices of the immersion oil and of the sample. Equal: no
        depth-dependent aberration.
    excitation_um, emission_um : float
        Wavelengths in µm.
    pinhole_radius_um : float
        Pinhole radius back-projected to the sample, in µm.
    crosstalk : float
        Weight of the widefield emission term (pinhole crosstalk).
    object_sigma_um : float
        A kinetochore is not a point: a gaussian blob of fluorophores of this sd.
    first_plane_depth_um : float
        Depth of the plane z = 0 below the coverslip, in µm.
    fixed_depth_um : float or None
        Give every spot the PSF of this depth (a residual spherical aberration
        that is the same over the field); None: each spot's own depth.
    """

    na: float = 1.4
    n_immersion: float = 1.518
    n_sample: float = 1.518
    excitation_um: float = 0.488
    emission_um: float = 0.52
    pinhole_radius_um: float = 0.35
    crosstalk: float = 0.02
    object_sigma_um: float = 0.06
    first_plane_depth_um: float = 1.5
    fixed_depth_um: float | None = None

    @property
    def aberrated(self) -> bool:
        return self.n_sample != self.n_immersion


@dataclass(frozen=True)
class PsfTable:
    """I(r, dz) on a regular grid: ``values[dz index, r index]``, peak 1 at zero depth."""

    r_step_um: float
    dz_start_um: float
    dz_step_um: float
    values: np.ndarray
    focal_shift_um: float


def _pupil_psf(
    r_um: np.ndarray, dz_um: np.ndarray, wavelength_um: float, optics: Optics, depth_um: float
) -> np.ndarray:
    """Widefield intensity (len(dz), len(r)) of a point at ``depth_um``, from the pupil integral."""
    rho, weight = np.polynomial.legendre.leggauss(160)
    rho, weight = (rho + 1) / 2, weight / 2
    k = 2 * np.pi / wavelength_um
    sin_na = optics.na * rho
    cos_imm = np.sqrt((optics.n_immersion**2 - sin_na**2).astype(complex))
    # beyond the critical angle the sample side is evanescent: this branch decays with depth
    cos_sample = np.conj(np.sqrt((optics.n_sample**2 - sin_na**2).astype(complex)))
    apodisation = np.sqrt(np.real(cos_imm) / optics.n_immersion)  # sine condition
    # Gibson & Lanni: the path through ``depth_um`` of sample instead of immersion oil
    # (sign: the focus moves deeper than the emitter, as imaging from oil into water does)
    mismatch = k * depth_um * (cos_imm - cos_sample)
    radial = special.j0(k * np.outer(r_um, sin_na)) * (weight * rho * apodisation)
    phase = np.exp(1j * (k * np.outer(dz_um, cos_imm) + mismatch))
    amplitude = phase @ radial.T
    return np.abs(amplitude) ** 2


def _lateral_blur(radial: np.ndarray, r_step_um: float, kernel) -> np.ndarray:
    """Convolve each plane of a radial PSF (dz, r) with a radial ``kernel(r_um)`` in y and x."""
    step = 2 * r_step_um
    n = radial.shape[1] * r_step_um / step
    coords = np.arange(-int(n) + 1, int(n)) * step
    rr = np.hypot(coords[:, None], coords[None, :])
    r_grid = np.arange(radial.shape[1]) * r_step_um
    planes = np.stack([np.interp(rr, r_grid, row, right=0.0) for row in radial])
    weights = kernel(rr)
    weights = weights[np.any(weights > 0, axis=1)][:, np.any(weights > 0, axis=0)]
    blurred = signal.fftconvolve(planes, weights[None] / weights.sum(), mode="same", axes=(1, 2))
    centre = len(coords) // 2
    return np.stack([np.interp(r_grid, coords[centre:], p[centre, centre:]) for p in blurred])


@lru_cache(maxsize=64)
def psf_table(optics: Optics, depth_um: float = 0.0) -> PsfTable:
    """Tabulate the confocal PSF I(r, dz) of a point ``depth_um`` below the coverslip.

    ``dz`` is the plane's z minus the point's true z, in µm. The table is
    normalised to a peak of 1 for a point at the coverslip; ``focal_shift_um``
    is the apparent z of the point minus its true z: the centre of mass of
    the on-axis profile above half its peak (the focal shift, measured the way
    centre-of-mass labels measure a spot).

    Examples
    --------
    >>> table = psf_table(Optics())
    >>> abs(table.focal_shift_um) < 0.01, round(float(table.values.max()), 2)
    (True, 1.0)
    """
    r_step, dz_step = 0.01, 0.025
    r_um = np.arange(0.0, 1.6 + r_step / 2, r_step)
    dz_um = np.arange(-4.0, 4.0 + dz_step / 2, dz_step)
    emission = _pupil_psf(r_um, dz_um, optics.emission_um, optics, depth_um)
    excitation = _pupil_psf(r_um, dz_um, optics.excitation_um, optics, depth_um)
    confocal = excitation * _lateral_blur(emission, r_step, _disk(optics.pinhole_radius_um))
    reference = _reference_peaks(optics)
    values = (1 - optics.crosstalk) * confocal / reference[0] + optics.crosstalk * (
        emission / reference[1]
    )
    values = _object_blur(values, r_step, dz_step, optics.object_sigma_um)
    values[:, -1] = 0.0  # nothing beyond the table's radius
    return PsfTable(
        r_step, float(dz_um[0]), dz_step, values, _centre_of_mass_z(values[:, 0], dz_um)
    )


def _centre_of_mass_z(on_axis: np.ndarray, dz_um: np.ndarray) -> float:
    """Intensity-weighted mean dz of the contiguous on-axis stretch above half the peak."""
    peak = int(np.argmax(on_axis))
    above = on_axis >= on_axis[peak] / 2
    lo = peak - int(np.argmin(above[peak::-1])) + 1 if not above[0] else 0
    hi = peak + int(np.argmin(above[peak:])) if not above[-1] else len(on_axis)
    weights = on_axis[lo:hi]
    return float(np.sum(weights * dz_um[lo:hi]) / np.sum(weights))


@lru_cache(maxsize=8)
def _reference_peaks(optics: Optics) -> tuple[float, float]:
    """Peaks of the confocal and the widefield term for a point at the coverslip (normalisers)."""
    r_um, dz_um = np.array([0.0, 0.01]), np.linspace(-0.3, 0.3, 25)
    emission = _pupil_psf(r_um, dz_um, optics.emission_um, optics, 0.0)
    excitation = _pupil_psf(r_um, dz_um, optics.excitation_um, optics, 0.0)
    wide = _pupil_psf(np.arange(0.0, 1.6, 0.01), dz_um, optics.emission_um, optics, 0.0)
    blurred = _lateral_blur(wide, 0.01, _disk(optics.pinhole_radius_um))[:, :2]
    return float(np.max(excitation * blurred)), float(np.max(emission))


def _disk(radius_um: float):
    return lambda r_um: (r_um <= radius_um).astype(float)


def _object_blur(values: np.ndarray, r_step: float, dz_step: float, sigma_um: float) -> np.ndarray:
    """The image of a gaussian blob of fluorophores (sd ``sigma_um``) instead of a point."""
    if sigma_um <= 0:
        return values
    blurred = _lateral_blur(values, r_step, lambda r_um: np.exp(-(r_um**2) / (2 * sigma_um**2)))
    blurred = ndimage.gaussian_filter1d(blurred, sigma_um / dz_step, axis=0, mode="constant")
    return blurred / _point_to_object_peak(sigma_um)


@lru_cache(maxsize=8)
def _point_to_object_peak(sigma_um: float) -> float:
    """Peak of the blurred reference PSF (so that a point-like kinetochore at the coverslip peaks at 1)."""
    table = psf_table(Optics(object_sigma_um=0.0))
    values = _lateral_blur(
        table.values, table.r_step_um, lambda r: np.exp(-(r**2) / (2 * sigma_um**2))
    )
    return float(ndimage.gaussian_filter1d(values, sigma_um / table.dz_step_um, axis=0).max())


def _table_at_depth(optics: Optics, depth_um: float) -> PsfTable:
    """The PSF table of the nearest tabulated depth (0.5 µm steps; one table without mismatch)."""
    if not optics.aberrated:
        return psf_table(optics, 0.0)
    if optics.fixed_depth_um is not None:
        depth_um = optics.fixed_depth_um
    return psf_table(optics, round(max(depth_um, 0.0) * 2) / 2)


# --------------------------------------------------------------------------- rendering


def _render_spot(
    out: np.ndarray, centre_um: np.ndarray, table: PsfTable, voxel: np.ndarray, scale: float
) -> float:
    """Add one spot (true centre in µm) to ``out`` × ``scale``; return its unit-scale peak voxel."""
    shape = np.asarray(out.shape)
    apparent = centre_um + np.array([table.focal_shift_um, 0.0, 0.0])
    lo = np.maximum(np.ceil((apparent - _BOX_HALF_UM) / voxel), 0).astype(int)
    hi = np.minimum(np.floor((apparent + _BOX_HALF_UM) / voxel) + 1, shape).astype(int)
    if np.any(hi <= lo):
        return 0.0
    sub = ((np.arange(_OVERSAMPLE_YX) + 0.5) / _OVERSAMPLE_YX - 0.5)[None, :]
    dz = np.arange(lo[0], hi[0]) * voxel[0] - centre_um[0]
    dy = ((np.arange(lo[1], hi[1])[:, None] + sub) * voxel[1] - centre_um[1]).ravel()
    dx = ((np.arange(lo[2], hi[2])[:, None] + sub) * voxel[2] - centre_um[2]).ravel()
    r_index = np.hypot(dy[:, None], dx[None, :]) / table.r_step_um
    r_index = np.minimum(r_index, table.values.shape[1] - 1)
    dz_index = (dz - table.dz_start_um) / table.dz_step_um
    coords = np.broadcast_arrays(dz_index[:, None, None], r_index[None])
    samples = ndimage.map_coordinates(table.values, coords, order=1, mode="constant", cval=0.0)
    n_z, n_y, n_x = hi - lo
    spot = samples.reshape(n_z, n_y, _OVERSAMPLE_YX, n_x, _OVERSAMPLE_YX).mean(axis=(2, 4))
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] += scale * spot
    return float(spot.max())


def render_spots(
    centres_um: np.ndarray,
    brightness: np.ndarray,
    shape_zyx: tuple[int, int, int],
    voxel_size_um: tuple[float, float, float],
    optics: Optics,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free image of point emitters.

    Parameters
    ----------
    centres_um : (N, 3) array
        True positions (z, y, x) in µm (z = 0 is the first plane).
    brightness : (N,) array
        Scale of each spot (peak 1 for an in-focus point at the coverslip).
    shape_zyx, voxel_size_um
        Output shape and voxel size (z, y, x) in µm.
    optics : Optics

    Returns
    -------
    image : (Z, Y, X) float64
    unit_peaks : (N,) array
        Peak voxel of each spot at brightness 1.
    focal_shift_um : (N,) array
        Apparent minus true z of each spot, in µm.
    """
    image = np.zeros(shape_zyx)
    voxel = np.asarray(voxel_size_um, dtype=float)
    peaks, shifts = np.zeros(len(centres_um)), np.zeros(len(centres_um))
    for i, (centre, scale) in enumerate(zip(centres_um, brightness, strict=True)):
        table = _table_at_depth(optics, optics.first_plane_depth_um + centre[0])
        peaks[i] = _render_spot(image, centre, table, voxel, scale)
        shifts[i] = table.focal_shift_um
    return image, peaks, shifts


# --------------------------------------------------------------------------- layouts


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def _tilted(axis: np.ndarray, rng: np.random.Generator, sd_rad: float) -> np.ndarray:
    """Unit vectors near ``axis`` (N, 3), tilted by gaussian angles."""
    return _unit(axis + rng.normal(0.0, sd_rad, axis.shape))


@dataclass
class _Pairs:
    centres_um: np.ndarray  # (P, 3) relative to the cell centre
    axes: np.ndarray  # (P, 3) unit sister axes
    separation_um: np.ndarray  # (P,)
    plate_normal: np.ndarray | None  # (3,) for plates


def _sisters(pairs: _Pairs) -> np.ndarray:
    half = (pairs.axes * pairs.separation_um[:, None] / 2)[:, None, :]
    return (pairs.centres_um[:, None, :] + np.array([-1.0, 1.0])[None, :, None] * half).reshape(
        -1, 3
    )


def _far_enough(points: np.ndarray, min_um: float) -> bool:
    from scipy.spatial import cKDTree

    return len(cKDTree(points).query_pairs(min_um)) == 0


def metaphase_plate(rng: np.random.Generator, n_pairs: int) -> _Pairs:
    """Sister pairs on a jittered sunflower spiral in an elliptic plate near-vertical in z."""
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.normal(0.0, np.radians(12))
    normal = np.array(
        [
            np.sin(elevation),
            np.cos(elevation) * np.sin(azimuth),
            np.cos(elevation) * np.cos(azimuth),
        ]
    )
    up = _unit(np.array([1.0, 0.0, 0.0]) - normal[0] * normal)
    across = np.cross(normal, up)
    size = np.sqrt(n_pairs / 46.0)
    semi_up, semi_across = 4.0 * size, 6.0 * size
    k = np.arange(n_pairs) + 0.5
    radius, angle = np.sqrt(k / n_pairs), k * _GOLDEN_ANGLE + rng.uniform(0, 2 * np.pi)
    for _ in range(200):
        in_plane = np.stack(
            [radius * np.sin(angle) * semi_up, radius * np.cos(angle) * semi_across]
        )
        in_plane = in_plane + rng.normal(0.0, 0.15, in_plane.shape)
        depth = rng.normal(0.0, 0.15, n_pairs)
        centres = in_plane[0][:, None] * up + in_plane[1][:, None] * across
        centres = centres + depth[:, None] * normal
        pairs = _Pairs(
            centres,
            _tilted(np.tile(normal, (n_pairs, 1)), rng, np.radians(20)),
            np.clip(rng.normal(0.95, 0.15, n_pairs), 0.6, 1.4),
            normal,
        )
        if _far_enough(_sisters(pairs), 0.4):
            return pairs
    raise RuntimeError("could not place the plate's pairs 0.4 µm apart")  # pragma: no cover


def prometaphase_ball(rng: np.random.Generator, n_pairs: int, radius_um: float = 3.6) -> _Pairs:
    """Sister pairs in a spherical shell, sister axes uniformly in every direction."""
    centres: list[np.ndarray] = []
    sisters: list[np.ndarray] = []
    axes, separations = [], []
    while len(centres) < n_pairs:
        direction = _unit(rng.normal(size=3))
        centre = direction * radius_um * rng.uniform(0.35, 1.0) ** (1 / 3)
        axis = _unit(rng.normal(size=3))
        separation = float(np.clip(rng.normal(0.75, 0.1), 0.5, 1.0))
        pair = centre + np.outer([-0.5, 0.5], axis * separation)
        if sisters and not _far_enough(np.concatenate([*sisters, pair]), 0.35):
            continue
        centres.append(centre)
        sisters.append(pair)
        axes.append(axis)
        separations.append(separation)
    return _Pairs(np.array(centres), np.array(axes), np.array(separations), None)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    x = _unit(axis)
    cross = np.array([[0, -x[2], x[1]], [x[2], 0, -x[0]], [-x[1], x[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def _movie_positions(pairs: _Pairs, n_frames: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Kinetochore positions (2P, 3) relative to the cell centre, one array per frame."""
    n_pairs = len(pairs.centres_um)
    amplitude, period = rng.uniform(0.15, 0.4), rng.uniform(5, 10)
    phase = rng.uniform(0, 2 * np.pi)
    spin_axis = _unit(rng.normal(size=3))
    breathing = rng.uniform(0, 2 * np.pi, n_pairs)
    walk_sd = 0.04 if pairs.plate_normal is not None else 0.08
    walk = np.cumsum(rng.normal(0.0, walk_sd, (n_frames, n_pairs, 3)), axis=0)
    frames = []
    for t in range(n_frames):
        rotation = _rotation(spin_axis, np.radians(0.6) * t)
        centres = pairs.centres_um + walk[t]
        if pairs.plate_normal is not None:
            centres = (
                centres + amplitude * np.sin(2 * np.pi * t / period + phase) * pairs.plate_normal
            )
        separation = pairs.separation_um * (1 + 0.08 * np.sin(2 * np.pi * t / 7 + breathing))
        moved = _Pairs(centres @ rotation.T, pairs.axes @ rotation.T, separation, None)
        frames.append(_sisters(moved))
    return frames


# --------------------------------------------------------------------------- background, camera


def _cell_background(
    shape_zyx: tuple[int, int, int],
    voxel: np.ndarray,
    centre_um: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Relative cell fluorescence (≈ 1 in the cell) and a medium level, each (Z, Y, X)."""
    grids = np.meshgrid(
        *[np.arange(n) * v for n, v in zip(shape_zyx, voxel, strict=True)], indexing="ij"
    )
    offset = [g - c for g, c in zip(grids, centre_um, strict=True)]
    semi = np.array([5.5, rng.uniform(7.5, 9.5), rng.uniform(7.5, 9.5)])
    ellipsoid = np.sqrt(sum((o / s) ** 2 for o, s in zip(offset, semi, strict=True)))
    cell = 1.0 / (1.0 + np.exp((ellipsoid - 1.0) * 12.0))
    sigma = 0.8 / voxel
    texture = ndimage.gaussian_filter(rng.normal(size=shape_zyx), sigma)
    texture /= texture.std() + 1e-12
    haze = np.exp(-sum(o**2 for o in offset) / (2 * 2.5**2))
    fluorescence = cell * (1 + 0.1 * texture) + 0.5 * haze
    return fluorescence, np.full(shape_zyx, 0.25)


@dataclass(frozen=True)
class CameraPattern:
    """Per-pixel sCMOS maps (Y, X), fixed through z and time.

    Attributes
    ----------
    offset_adu, gain_adu_per_e, read_noise_e, dark_e : (Y, X) arrays
        Offset, gain, read noise (gaussian sd) and mean dark charge per
        exposure (the hot pixels) of each pixel.
    """

    offset_adu: np.ndarray
    gain_adu_per_e: np.ndarray
    read_noise_e: np.ndarray
    dark_e: np.ndarray


def scmos_pattern(shape_yx: tuple[int, int], rng: np.random.Generator) -> CameraPattern:
    """A random sCMOS sensor: offset ~ 100 ± 3 ADU, gain 0.46 ADU/e⁻ ± 4 %, read noise ~1.4 e⁻
    (0.5 % noisy pixels at 4–15 e⁻), 0.1 % hot pixels with 50–3000 e⁻ of dark charge.

    Examples
    --------
    >>> pattern = scmos_pattern((64, 64), np.random.default_rng(5_000_001))
    >>> pattern.offset_adu.shape, bool((pattern.dark_e > 40).sum() >= 1)
    ((64, 64), True)
    """
    offset = rng.normal(100.0, 3.0, shape_yx)
    gain = 0.46 * rng.lognormal(0.0, 0.04, shape_yx)
    read = 1.4 * rng.lognormal(0.0, 0.35, shape_yx)
    noisy = rng.random(shape_yx) < 0.005
    read[noisy] = rng.uniform(4.0, 15.0, int(noisy.sum()))
    dark = np.full(shape_yx, 0.05)
    n_hot = max(2, int(round(0.001 * dark.size)))
    hot = rng.choice(dark.size, n_hot, replace=False)
    dark.flat[hot] = np.exp(rng.uniform(np.log(50.0), np.log(3000.0), n_hot))
    return CameraPattern(offset, gain, read, dark)


def _ccd(expected_e: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Interline CCD: shot noise with dark charge, 6 e⁻ read noise, 0.5 ADU/e⁻, offset 500, 14 bit."""
    electrons = rng.poisson(expected_e + 0.5) + rng.normal(0.0, 6.0, expected_e.shape)
    return np.clip(np.floor(electrons * 0.5 + 500.0), 0, 2**14 - 1).astype(np.uint16)


def _scmos(expected_e: np.ndarray, pattern: CameraPattern, rng: np.random.Generator) -> np.ndarray:
    """sCMOS with fixed per-pixel maps (broadcast over z)."""
    electrons = rng.poisson(expected_e + pattern.dark_e) + rng.normal(size=expected_e.shape) * (
        pattern.read_noise_e
    )
    adu = np.floor(electrons * pattern.gain_adu_per_e + pattern.offset_adu)
    return np.clip(adu, 0, 65535).astype(np.uint16)


def background_subtracted_8bit(frame: np.ndarray, zero_fraction: float = 0.77) -> np.ndarray:
    """What users do before they share data: a rolling-ball-like background subtraction per
    plane, a threshold that leaves ``zero_fraction`` of the voxels exactly 0, then 8 bit.

    Examples
    --------
    >>> frame = np.random.default_rng(0).normal(100, 5, (4, 32, 32))
    >>> out = background_subtracted_8bit(frame)
    >>> out.dtype, 0.7 < float((out == 0).mean()) < 0.85
    (dtype('uint8'), True)
    """
    planes = frame.astype(float)
    background = ndimage.grey_opening(planes, size=(1, 15, 15))
    background = ndimage.uniform_filter(background, size=(1, 15, 15))
    residual = planes - background
    residual = np.maximum(residual - np.quantile(residual, zero_fraction), 0.0)
    top = residual.max()
    scaled = residual * (255.0 / top) if top > 0 else residual
    return np.floor(scaled).astype(np.uint8)


# --------------------------------------------------------------------------- movies

#: The clean baseline: a residual spherical aberration, the same over the field (as if
#: every spot were 5 µm deep in a medium of index 1.44), so the PSF is as wide as measured
#: on real spinning disks (FWHM about 0.24 µm in y/x, 0.65 µm in z) but does not vary.
BASELINE_OPTICS = Optics(n_sample=1.44, fixed_depth_um=5.0)
#: Depth-dependent aberration: an oil objective into cytoplasm (index 1.38); from 1.5 µm to
#: 11 µm below the coverslip the axial FWHM grows from 0.6 to 1.0 µm, the focus shifts
#: 0.4–1.9 µm deeper and an axial side lobe grows to 25 % of the peak.
ABERRATED_OPTICS = Optics(n_sample=1.38)


@dataclass(frozen=True)
class MovieSpec:
    """What to render.

    Attributes
    ----------
    shape_zyx, voxel_size_um : tuple
        Volume shape and voxel size (z, y, x) in µm.
    n_frames : int
    n_pairs : int
        Sister pairs (2 × kinetochores).
    layout : {"plate", "ball"}
    snr : float
        See the module doc (frame 0).
    camera : {"ccd", "scmos"}
    optics : Optics
    bleach_per_frame : float
        Fraction of the fluorescence lost per frame.
    independent_frames : bool
        Every frame a new cell (layout, background, brightness), as when
        unrelated 3D images are stacked along T.
    background_subtracted : bool
        Apply :func:`background_subtracted_8bit` to every frame (uint8).
    flat_background : bool
        A control: the same mean background everywhere (no cell edge, dark
        medium, texture or haze).
    """

    shape_zyx: tuple[int, int, int] = (32, 128, 128)
    voxel_size_um: tuple[float, float, float] = (0.30, 0.13, 0.13)
    n_frames: int = 4
    n_pairs: int = 38
    layout: str = "plate"
    snr: float = 7.0
    camera: str = "ccd"
    optics: Optics = BASELINE_OPTICS
    bleach_per_frame: float = 0.0
    independent_frames: bool = False
    background_subtracted: bool = False
    flat_background: bool = False


@dataclass
class RenderedMovie:
    """A rendered movie and its ground truth.

    Attributes
    ----------
    image : (T, 1, Z, Y, X) array
        uint16 (uint8 when background-subtracted).
    points : DataFrame
        Columns ``t, z, y, x`` (voxels), ``z_um, y_um, x_um``, ``pair_id``:
        the apparent position of every kinetochore inside the volume.
    voxel_size_um : tuple
    seed : int
    pattern : CameraPattern or None
        The sCMOS maps, when the camera is sCMOS.
    """

    image: np.ndarray
    points: pd.DataFrame
    voxel_size_um: tuple[float, float, float]
    seed: int
    pattern: CameraPattern | None = None


def _cell(spec: MovieSpec, rng: np.random.Generator, n_frames: int):
    """One cell: kinetochore positions per frame (µm, volume coordinates), brightness, background."""
    voxel = np.asarray(spec.voxel_size_um, dtype=float)
    extent = (np.asarray(spec.shape_zyx) - 1) * voxel
    centre = extent / 2 + rng.uniform(-0.5, 0.5, 3) * np.array([0.3, 1.0, 1.0])
    if spec.layout == "plate":
        pairs = metaphase_plate(rng, spec.n_pairs)
    elif spec.layout == "ball":
        pairs = prometaphase_ball(rng, spec.n_pairs)
    else:
        raise ValueError(f"unknown layout {spec.layout!r}: use 'plate' or 'ball'")
    positions = [p + centre for p in _movie_positions(pairs, n_frames, rng)]
    brightness = rng.lognormal(0.0, 0.25, len(positions[0]))
    fluorescence, medium = _cell_background(spec.shape_zyx, voxel, centre, rng)
    if spec.flat_background:
        fluorescence = np.ones(spec.shape_zyx)
    pair_id = np.repeat(np.arange(len(pairs.centres_um)), 2)
    return positions, brightness, fluorescence, medium, pair_id


def _frame_rows(
    t: int, apparent_um: np.ndarray, pair_id: np.ndarray, spec: MovieSpec
) -> pd.DataFrame:
    voxel = np.asarray(spec.voxel_size_um, dtype=float)
    zyx = apparent_um / voxel
    inside = np.all((zyx >= -0.5) & (zyx <= np.asarray(spec.shape_zyx) - 0.5), axis=1)
    zyx, um = zyx[inside], apparent_um[inside]
    return pd.DataFrame(
        {
            "t": t,
            "z": zyx[:, 0],
            "y": zyx[:, 1],
            "x": zyx[:, 2],
            "z_um": um[:, 0],
            "y_um": um[:, 1],
            "x_um": um[:, 2],
            "pair_id": pair_id[inside],
        }
    )


def render_movie(spec: MovieSpec, seed: int) -> RenderedMovie:
    """Render a movie and its ground truth; the same ``seed`` gives the same movie.

    Parameters
    ----------
    spec : MovieSpec
    seed : int
        Seeds a ``numpy.random.Generator``; the global RNG is not touched.

    Returns
    -------
    RenderedMovie
    """
    rng = np.random.default_rng(seed)
    pattern = scmos_pattern(spec.shape_zyx[1:], rng) if spec.camera == "scmos" else None
    read_e = 6.0 if pattern is None else float(np.sqrt(np.mean(pattern.read_noise_e**2)))
    background_e = rng.uniform(40.0, 120.0)
    frames, tables = [], []
    amplitude = None
    for t in range(spec.n_frames):
        if t == 0 or spec.independent_frames:
            positions, brightness, fluorescence, medium, pair_id = _cell(
                spec, rng, 1 if spec.independent_frames else spec.n_frames
            )
            amplitude = None
        true_um = positions[0 if spec.independent_frames else t]
        spots, peaks, shift = render_spots(
            true_um, brightness, spec.shape_zyx, spec.voxel_size_um, spec.optics
        )
        apparent = true_um + shift[:, None] * np.array([1.0, 0.0, 0.0])
        if amplitude is None:
            amplitude = _amplitude(
                spec, apparent, brightness * peaks, fluorescence, background_e, read_e
            )
        bleach = (1.0 - spec.bleach_per_frame) ** t
        expected = background_e * (bleach * fluorescence + medium) + bleach * amplitude * spots
        frame = _ccd(expected, rng) if pattern is None else _scmos(expected, pattern, rng)
        if spec.background_subtracted:
            frame = background_subtracted_8bit(frame)
        frames.append(frame)
        tables.append(_frame_rows(t, apparent, pair_id, spec))
    image = np.stack(frames)[:, None]
    points = pd.concat(tables, ignore_index=True)
    return RenderedMovie(image, points, tuple(spec.voxel_size_um), seed, pattern)


def _amplitude(
    spec: MovieSpec,
    apparent_um: np.ndarray,
    unit_peaks: np.ndarray,
    fluorescence: np.ndarray,
    background_e: float,
    read_e: float,
) -> float:
    """Photo-electrons per unit spot so that the mean peak / noise equals ``spec.snr``."""
    voxel = np.asarray(spec.voxel_size_um, dtype=float)
    index = np.clip(np.round(apparent_um / voxel).astype(int), 0, np.asarray(spec.shape_zyx) - 1)
    local = background_e * (fluorescence[tuple(index.T)] + 0.25)
    noise = np.sqrt(np.mean(local) + read_e**2)
    return float(spec.snr * noise / max(np.mean(unit_peaks), 1e-12))
