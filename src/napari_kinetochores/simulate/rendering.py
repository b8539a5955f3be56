"""Optics: voxel-integrated point-spread functions.

A spot is a sum of anisotropic gaussians integrated exactly over every voxel
(difference of erf per axis), at a sub-voxel position; sigmas are in voxels
here (:meth:`SimulationParams.psf_sigma_vox` converts the µm PSF, so the
physical PSF width holds at any voxel size). :func:`psf_lobes` adds the
depth-dependent aberration (axial broadening and an axial side lobe).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import erf

from napari_kinetochores.simulate.params import RENDER_STYLES, SimulationParams

__all__ = ["psf_lobes", "render_spots"]

# Moffat-like (beta = 2.5) radial profile with the FWHM of a unit gaussian,
# written as a mixture of isotropic 2D gaussians (fitted by NNLS on the radial
# profile; max error 0.2 % of the peak). Each component keeps the separable,
# voxel-integrated rendering. In z, component k has sigma
# sigma_z * moffat_z_scale * sqrt(scale_k) (wider tails out of focus too).
_MOFFAT_SCALES = np.array([0.7, 1.0, 1.5, 2.3, 3.5])
_MOFFAT_WEIGHTS = np.array([0.0975, 0.2914, 0.3760, 0.1281, 0.0989])
_MOFFAT_WEIGHTS = _MOFFAT_WEIGHTS / _MOFFAT_WEIGHTS.sum()


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


def peak_fraction(
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


def gaussian_blob(
    shape: tuple[int, ...], centre_vox: np.ndarray, sigma_vox: np.ndarray
) -> np.ndarray:
    """Separable gaussian with peak 1 at ``centre_vox``, float32 of ``shape``."""
    axes = [
        np.exp(-0.5 * ((np.arange(n) - c) / s) ** 2).astype(np.float32)
        for n, c, s in zip(shape, centre_vox, sigma_vox, strict=True)
    ]
    return axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]


PsfLobe = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One part of the spots' light: positions (N, 3) vox, amplitudes (N,), sigmas (N, 3) or (3,) vox."""


def psf_lobes(
    p: SimulationParams, pos_vox: np.ndarray, amp: np.ndarray, sigma_vox: np.ndarray
) -> list[PsfLobe]:
    """Split spots into the lobes of the depth-aberrated PSF of ``p``, main lobe first.

    Without depth aberration (:meth:`SimulationParams.has_depth_aberration`)
    the inputs come back unchanged as the one lobe. Otherwise the main lobe's
    z sigma grows by ``psf_z_broadening_per_um`` per µm of depth and a share
    ``min(side_lobe_rel_per_um * depth, 0.5)`` of the light moves into a side
    lobe ``side_lobe_offset_um`` deeper, 1.5 × wider on every axis. Depth is
    ``depth_offset_um`` + z in µm, at least 0.

    Parameters
    ----------
    p
        Simulation parameters (aberration fields, voxel size).
    pos_vox
        (N, 3) spot centres in voxels.
    amp
        (N,) integrated intensities.
    sigma_vox
        (3,) or (N, 3) PSF sigma in voxels without aberration.

    Returns
    -------
    list of (positions (N, 3), amplitudes (N,), sigmas)
        Render each with :func:`render_spots`.

    Examples
    --------
    >>> p = SimulationParams(voxel_size_um=(0.5, 0.1, 0.1), psf_z_broadening_per_um=0.1,
    ...                      side_lobe_rel_per_um=0.05)
    >>> lobes = psf_lobes(p, np.array([[10.0, 5.0, 5.0]]), np.array([100.0]), np.ones(3))
    >>> [(float(a[0]), float(s[0, 0])) for _, a, s in lobes]  # depth 5 µm
    [(75.0, 1.5), (25.0, 2.25)]
    """
    if not p.has_depth_aberration():
        return [(pos_vox, amp, sigma_vox)]
    voxel_z = p.voxel_size_um[0]
    depth = np.maximum(p.depth_offset_um + pos_vox[:, 0] * voxel_z, 0.0)
    sigma = np.array(np.broadcast_to(sigma_vox, pos_vox.shape), dtype=np.float64)
    sigma[:, 0] *= 1.0 + p.psf_z_broadening_per_um * depth
    share = np.minimum(p.side_lobe_rel_per_um * depth, 0.5)
    main = (pos_vox, amp * (1.0 - share), sigma)
    if not p.side_lobe_rel_per_um:
        return [main]
    lobe_pos = pos_vox + np.array([p.side_lobe_offset_um / voxel_z, 0.0, 0.0])
    return [main, (lobe_pos, amp * share, 1.5 * sigma)]


def main_peak_fraction(
    p: SimulationParams, pos_vox: np.ndarray, sigma_vox: np.ndarray
) -> np.ndarray:
    """(N,) brightest-voxel value per unit amplitude of the main PSF lobe of each spot.

    The calibration of spot peaks (SNR) counts only the main lobe.
    """
    pos, weight, sigma = psf_lobes(p, pos_vox, np.ones(len(pos_vox)), sigma_vox)[0]
    return peak_fraction(pos, sigma, p.render_style, p.moffat_z_scale) * weight
