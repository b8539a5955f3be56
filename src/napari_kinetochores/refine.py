"""Snap hand-placed points to the local intensity centre of their spot.

Clicking in a 3D view is imprecise, above all along z. :func:`snap_to_centre`
moves a point to the sub-voxel centre of the nearest spot within a small
window (in µm, so anisotropy is respected). Only the window is read
from the volume, so it works on lazy (dask, zarr, memory-mapped) frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.io.volumes import validate_voxel_size

__all__ = ["DEFAULT_SNAP_WINDOW_UM", "snap_points", "snap_to_centre"]

#: Default half-width (µm) of the search window around a clicked point.
DEFAULT_SNAP_WINDOW_UM = 0.5
#: Spots closer than this (µm) are one spot for snapping.
MIN_SPOT_DISTANCE_UM = 0.25
#: Spots dimmer than this fraction of the brightest one in the window are ignored.
RELATIVE_THRESHOLD = 0.3
#: Gaussian sigma (z, y, x) in µm of the smoothing (about a kinetochore's PSF).
SMOOTHING_SIGMA_UM = (0.3, 0.1, 0.1)


def _box(
    centre: np.ndarray, radius: np.ndarray, shape: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    lo = np.clip(np.round(centre).astype(int) - radius, 0, shape - 1)
    hi = np.clip(np.round(centre).astype(int) + radius + 1, 1, shape)
    return lo, hi


def snap_to_centre(
    volume_zyx: Any,
    point_zyx: Sequence[float],
    voxel_size_um: Sequence[float],
    window_um: float = DEFAULT_SNAP_WINDOW_UM,
) -> np.ndarray:
    """Move a point to the intensity centre of the nearest spot.

    The window (a box of half-width ``window_um`` per axis around the point)
    is background-subtracted and lightly smoothed (gaussian, sigma
    :data:`SMOOTHING_SIGMA_UM`). Its spots are the local maxima brighter than
    :data:`RELATIVE_THRESHOLD` × the brightest one, located to sub-voxel
    precision by a gaussian (log-parabola) fit; the spot nearest to the point
    (physical distance) wins. So a click between two sisters goes to the
    nearer one, not to the brighter one.

    Parameters
    ----------
    volume_zyx : (Z, Y, X) array
        One frame of one channel: numpy, dask, zarr or memory map. Only the
        window around the point is read.
    point_zyx : (3,) sequence
        The point (z, y, x) in voxels.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    window_um : float
        Half-width of the search window in µm (default 0.5 µm).

    Returns
    -------
    numpy.ndarray
        The snapped point (z, y, x) in voxels, float. The input point when the
        window holds no spot (a flat window).

    Raises
    ------
    InputError
        A volume that is not 3-D, a point that is not 3 finite numbers or
        lies outside the volume, an invalid voxel size or window.

    Examples
    --------
    >>> vol = np.zeros((9, 21, 21)); vol[4, 10, 11] = 10; vol[4, 10, 12] = 10
    >>> snap_to_centre(vol, (3.6, 9.2, 10.0), (0.3, 0.13, 0.13)).round(2).tolist()
    [4.0, 10.0, 11.5]
    """
    shape = np.asarray(getattr(volume_zyx, "shape", ()), dtype=int)
    if shape.size != 3:
        raise InputError(f"snapping needs a 3-D (Z, Y, X) volume, got shape {tuple(shape)}")
    voxel = np.asarray(validate_voxel_size(voxel_size_um), dtype=float)
    point = np.asarray(point_zyx, dtype=float).reshape(-1)
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise InputError(f"point must be 3 finite numbers (z, y, x) in voxels, got {point_zyx!r}")
    if np.any(point < -0.5) or np.any(point > shape - 0.5):
        raise InputError(f"point {tuple(point)} lies outside the volume of shape {tuple(shape)}")
    if not (np.isfinite(window_um) and window_um > 0):
        raise InputError(f"snap window must be > 0 µm, got {window_um}")
    from scipy import ndimage

    from napari_kinetochores.peaks import find_peaks

    radius = np.maximum(np.ceil(window_um / voxel - 1e-9).astype(int), 1)
    sigma = np.asarray(SMOOTHING_SIGMA_UM, dtype=float) / voxel
    margin = np.maximum(np.ceil(2 * sigma).astype(int), 1)
    lo, hi = _box(point, radius + margin, shape)
    crop = np.asarray(volume_zyx[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], dtype=np.float64)
    signal = np.clip(crop - float(np.percentile(crop, 20)), 0, None)
    if not np.any(signal > 0):
        return point.copy()
    smoothed = ndimage.gaussian_filter(signal, sigma, mode="nearest")
    # The peak neighbourhood must span at least one voxel along every axis.
    min_distance = max(MIN_SPOT_DISTANCE_UM, float(voxel.max()))
    coords, _ = find_peaks(
        smoothed, voxel, min_distance, threshold_rel=RELATIVE_THRESHOLD, refine="gaussian"
    )
    coords = coords + lo
    inside = np.all(np.abs(np.round(coords) - np.round(point)) <= radius, axis=1)
    coords = coords[inside]
    if len(coords) == 0:
        return point.copy()
    distances = np.linalg.norm((coords - point) * voxel, axis=1)
    return np.clip(coords[int(np.argmin(distances))], 0, shape - 1)


def snap_points(
    volume_zyx: Any,
    points_zyx: np.ndarray,
    voxel_size_um: Sequence[float],
    window_um: float = DEFAULT_SNAP_WINDOW_UM,
) -> np.ndarray:
    """Snap several points of one frame; see :func:`snap_to_centre`.

    Parameters
    ----------
    volume_zyx : (Z, Y, X) array
    points_zyx : (N, 3) array of voxel coordinates
    voxel_size_um : (3,) sequence
    window_um : float

    Returns
    -------
    (N, 3) float array
    """
    points = np.asarray(points_zyx, dtype=float).reshape(-1, 3)
    return np.array(
        [snap_to_centre(volume_zyx, p, voxel_size_um, window_um) for p in points], dtype=float
    ).reshape(-1, 3)
