"""Sub-voxel spot centres from the image: snapping clicks, refining detections.

Clicking in a 3D view is imprecise, above all along z. :func:`snap_to_centre`
moves a point to the sub-voxel centre of the nearest spot within a small
window (in µm, so anisotropy is respected). Only the window is read
from the volume, so it works on lazy (dask, zarr, memory-mapped) frames.

:func:`refine_detections` gives detected spots (e.g. the UNet's peaks) their
sub-voxel centre from the image itself, which carries the position more
precisely than a network's output map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.io.volumes import validate_voxel_size

__all__ = [
    "DEFAULT_SNAP_WINDOW_UM",
    "DETECTION_SMOOTHING_UM",
    "refine_detections",
    "snap_points",
    "snap_to_centre",
]

#: Default half-width (µm) of the search window around a clicked point.
DEFAULT_SNAP_WINDOW_UM = 0.5
#: Spots closer than this (µm) are one spot for snapping.
MIN_SPOT_DISTANCE_UM = 0.25
#: Spots dimmer than this fraction of the brightest one in the window are ignored.
RELATIVE_THRESHOLD = 0.3
#: Gaussian sigma (z, y, x) in µm of the smoothing (about a kinetochore's PSF).
SMOOTHING_SIGMA_UM = (0.3, 0.1, 0.1)
#: Gaussian sigma (z, y, x) in µm of the smoothing before the sub-voxel fit of a
#: detection: about the PSF, i.e. a matched filter. Chosen on held-out
#: moderate-SNR movies (median 3D error of UNet detections 45 nm from the
#: probability map, 34 nm from the image smoothed so; see docs/benchmarks.md).
DETECTION_SMOOTHING_UM = (0.24, 0.13, 0.13)


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


def refine_detections(
    volume_zyx: Any,
    coords_zyx: np.ndarray,
    voxel_size_um: Sequence[float],
    sigma_um: Sequence[float] = DETECTION_SMOOTHING_UM,
    background: float | None = None,
) -> np.ndarray:
    """Sub-voxel centres of detected spots, fitted on the image around each one.

    Around every detection, a window of the background-subtracted image is
    smoothed by a gaussian of ``sigma_um``, and a log-parabola (a gaussian)
    is fitted through the detection's voxel and its neighbours along each
    axis, which moves it by at most half a voxel per axis. A detection with
    no positive smoothed signal there keeps its coordinates.

    Parameters
    ----------
    volume_zyx : (Z, Y, X) array
        One frame of one channel, raw or normalised intensities.
    coords_zyx : (N, 3) array
        Detections (z, y, x) in voxels.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    sigma_um : (3,) sequence
        Smoothing sigma (z, y, x) in µm (default: about the PSF).
    background : float, optional
        Intensity of the background; default: the frame's median
        (:func:`napari_kinetochores.nn.data.noise_statistics`).

    Returns
    -------
    (N, 3) float array of refined coordinates (z, y, x) in voxels.

    Examples
    --------
    >>> z, y, x = np.indices((9, 21, 21))
    >>> spot = np.exp(-((z - 4.3) ** 2) / 2 - ((y - 10.6) ** 2 + (x - 9.8) ** 2) / 4.5)
    >>> refine_detections(spot, [[4, 11, 10]], (0.3, 0.13, 0.13)).round(1).tolist()
    [[4.3, 10.6, 9.8]]
    """
    from scipy.ndimage import gaussian_filter

    from napari_kinetochores.nn.data import noise_statistics, sample_rows
    from napari_kinetochores.peaks import _refine

    coords = np.asarray(coords_zyx, dtype=float).reshape(-1, 3)
    if len(coords) == 0:
        return coords.copy()
    shape = np.asarray(np.shape(volume_zyx), dtype=int)
    if shape.size != 3:
        raise InputError(f"refinement needs a 3-D (Z, Y, X) volume, got shape {tuple(shape)}")
    voxel = np.asarray(validate_voxel_size(voxel_size_um), dtype=float)
    sigma = np.asarray(sigma_um, dtype=float) / voxel
    image = np.asarray(volume_zyx)
    if background is None:
        background = noise_statistics(sample_rows(image))[0]
    # Window: the filter's support (4 sigma) plus the fit's neighbour.
    half = np.ceil(4 * sigma).astype(int) + 1
    centres = np.clip(np.round(coords).astype(int), 0, shape - 1)
    refined = coords.copy()
    for start in range(0, len(coords), 1024):  # bounded memory for many detections
        block = centres[start : start + 1024]
        index = [
            np.clip(
                block[:, axis, None] + np.arange(-half[axis], half[axis] + 1), 0, shape[axis] - 1
            )
            for axis in range(3)
        ]
        windows = image[
            index[0][:, :, None, None], index[1][:, None, :, None], index[2][:, None, None, :]
        ].astype(np.float32) - np.float32(background)
        smoothed = gaussian_filter(windows, (0, *sigma), mode="nearest")
        # The fit is at the detection's own voxel, so a detection moves by at most half a
        # voxel per axis and two detections never collapse onto one image maximum.
        n, wz = len(block), windows.shape[1]
        stacked = smoothed.reshape(n * wz, *smoothed.shape[2:])
        local = np.broadcast_to(half, (n, 3))
        peaks = local + np.stack([np.arange(n) * wz, np.zeros(n, int), np.zeros(n, int)], axis=1)
        fitted = _refine(stacked, peaks, "gaussian") - peaks  # sub-voxel offsets in [-0.5, 0.5]
        values = smoothed[np.arange(n), half[0], half[1], half[2]]
        moved = block + fitted
        ok = values > 0
        refined[start : start + len(block)][ok] = moved[ok]
    return refined
