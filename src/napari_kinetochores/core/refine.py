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
    "PSF_SIGMA_UM",
    "fit_spot_mixture",
    "refine_detections",
    "snap_points",
    "snap_to_centre",
]

#: Default half-width (µm) of the search window around a clicked point.
DEFAULT_SNAP_WINDOW_UM = 0.5
#: Spots dimmer than this fraction of the brightest one in the window are ignored.
RELATIVE_THRESHOLD = 0.3
#: Gaussian sigma (z, y, x) in µm of the smoothing that finds the spot nearest a
#: click: the PSF's width along z, two thirds of it in y and x, so that a dimmer
#: spot 0.35 µm beside a brighter one stays a maximum of its own.
RESOLVING_SIGMA_UM = (0.3, 0.065, 0.065)
#: A spot found so must stand this many noise sigmas (of the smoothed window)
#: above the background: lighter smoothing leaves noise maxima.
NOISE_FLOOR_SIGMAS = 8.0
#: Gaussian sigma (z, y, x) in µm of the smoothing (about a kinetochore's PSF)
#: that places the spot found: more precise, unless it moves the spot by more
#: than :data:`AGREEMENT_UM` (towards a brighter neighbour it merges with).
SMOOTHING_SIGMA_UM = (0.3, 0.1, 0.1)
AGREEMENT_UM = 0.1
#: Gaussian sigma (z, y, x) in µm of the smoothing before the sub-voxel fit of a
#: detection: about the PSF, i.e. a matched filter. Chosen on held-out
#: moderate-SNR movies (median 3D error of UNet detections 45 nm from the
#: probability map, 34 nm from the image smoothed so; see docs/benchmarks.md).
DETECTION_SMOOTHING_UM = (0.24, 0.13, 0.13)
#: Gaussian PSF sigma (z, y, x) in µm of the joint fit of neighbouring spots: the
#: simulator's nominal optics (a high-NA objective at 488 nm, 0.3 µm z sampling).
PSF_SIGMA_UM = (0.30, 0.10, 0.10)
#: Spots closer than this (µm) are fitted together (their images overlap).
MIXTURE_LINK_UM = 1.0
#: The joint fit may move a spot at most this far (z, y, x) in µm from its
#: log-parabola position: about half a voxel, so it refines and never jumps to a
#: neighbour (a looser bound cost F1 on held-out movies, see docs/models.md).
MIXTURE_MAX_SHIFT_UM = (0.15, 0.1, 0.1)
#: Largest group of neighbours fitted together; the spots of a larger group keep
#: their start (bounded cost when a poor model reports spots everywhere).
MIXTURE_MAX_GROUP = 6


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
    is background-subtracted and smoothed (gaussian, sigma
    :data:`RESOLVING_SIGMA_UM`, lighter than the PSF in y and x). Its spots are
    the local maxima (of their 26 neighbours) brighter than
    :data:`RELATIVE_THRESHOLD` × the brightest one and
    :data:`NOISE_FLOOR_SIGMAS` noise sigmas; the spot nearest to the point
    (physical distance) wins, however dim. So a click between two sisters
    goes to the nearer one, and a click on a dim spot 0.35 µm beside a bright
    one stays on the dim one. The spot's sub-voxel centre is then taken from
    the window smoothed like the PSF (:data:`SMOOTHING_SIGMA_UM`, a gaussian
    log-parabola fit) when that lies within :data:`AGREEMENT_UM` of it.

    Measured on the sample movie (frame 1, 28 spots): clicks scattered by
    1 voxel per axis snap to a median 33 nm (90th percentile 111 nm) from the
    truth; a click 0.47 µm off (1, 2, 2 voxels) to a median 49 nm. On two
    simulated spots 0.35 µm apart (along x, or in y and x), a click on the dimmer (half as
    bright) lands a median 16–21 nm from it (PSF smoothing alone: on the
    brighter one, 330 nm away).

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
    found = _nearest_spot(volume_zyx, point, voxel, window_um, RESOLVING_SIGMA_UM, True)
    if found is None:
        return point.copy()
    precise = _nearest_spot(volume_zyx, found, voxel, AGREEMENT_UM * 3, SMOOTHING_SIGMA_UM, False)
    if precise is not None and np.linalg.norm((precise - found) * voxel) < AGREEMENT_UM:
        found = precise
    return np.clip(found, 0, shape - 1)


def _nearest_spot(
    volume_zyx: Any,
    point: np.ndarray,
    voxel: np.ndarray,
    window_um: float,
    sigma_um: Sequence[float],
    noise_floor: bool,
) -> np.ndarray | None:
    """The local maximum nearest ``point`` in a smoothed window (voxels), or None."""
    from scipy import ndimage

    from napari_kinetochores.core.normalize import noise_statistics
    from napari_kinetochores.core.peaks import find_peaks

    shape = np.asarray(volume_zyx.shape, dtype=int)
    radius = np.maximum(np.ceil(window_um / voxel - 1e-9).astype(int), 1)
    sigma = np.asarray(sigma_um, dtype=float) / voxel
    margin = np.maximum(np.ceil(2 * sigma).astype(int), 1)
    lo, hi = _box(point, radius + margin, shape)
    crop = np.asarray(volume_zyx[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], dtype=np.float64)
    signal = np.clip(crop - float(np.percentile(crop, 20)), 0, None)
    if not np.any(signal > 0):
        return None
    smoothed = ndimage.gaussian_filter(signal, sigma, mode="nearest")
    floor = None
    if noise_floor and crop.shape[-1] > 1:
        _, noise = noise_statistics(crop.reshape(-1, crop.shape[-1]))
        # a gaussian of sigma s (voxels) lowers white noise by sqrt(2 sqrt(pi) s) per axis
        gain = np.sqrt(np.prod(2 * np.sqrt(np.pi) * np.maximum(sigma, 0.5)))
        floor = NOISE_FLOOR_SIGMAS * noise / gain if noise > 0 else None
    # Every maximum of its 26 neighbours counts (no thinning): the nearest one wins.
    coords, _ = find_peaks(
        smoothed,
        voxel,
        0.0,
        threshold_abs=floor,
        threshold_rel=RELATIVE_THRESHOLD,
        refine="gaussian",
    )
    coords = coords + lo
    inside = np.all(np.abs(np.round(coords) - np.round(point)) <= radius, axis=1)
    coords = coords[inside]
    if len(coords) == 0:
        return None
    distances = np.linalg.norm((coords - point) * voxel, axis=1)
    return coords[int(np.argmin(distances))]


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


def _frame_geometry(
    volume_zyx: Any, voxel_size_um: Sequence[float], purpose: str
) -> tuple[np.ndarray, np.ndarray]:
    """Shape (3,) int and voxel size (3,) float of a (Z, Y, X) frame, checked."""
    shape = np.asarray(np.shape(volume_zyx), dtype=int)
    if shape.size != 3:
        raise InputError(f"{purpose} needs a 3-D (Z, Y, X) volume, got shape {tuple(shape)}")
    return shape, np.asarray(validate_voxel_size(voxel_size_um), dtype=float)


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
    no positive smoothed signal there keeps its coordinates. Each spot is
    fitted alone, so a bright neighbour's tail can pull it;
    :func:`fit_spot_mixture` then fits neighbours jointly.

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
        (:func:`napari_kinetochores.core.normalize.noise_statistics`).

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

    from napari_kinetochores.core.normalize import noise_statistics, sample_rows
    from napari_kinetochores.core.peaks import _refine

    coords = np.asarray(coords_zyx, dtype=float).reshape(-1, 3)
    if len(coords) == 0:
        return coords.copy()
    shape, voxel = _frame_geometry(volume_zyx, voxel_size_um, "refinement")
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


def _fit_gaussians(
    volume_zyx: Any,
    start: np.ndarray,
    shape: np.ndarray,
    voxel: np.ndarray,
    sigma: np.ndarray,
    max_shift: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit of background + one gaussian per start position: (centres, ok)."""
    from scipy.optimize import least_squares

    k = len(start)
    failed = (start, np.zeros(k, bool))
    start = np.clip(start, 0, shape - 1)
    half = np.ceil(2 * sigma).astype(int) + 1
    lo = np.clip(np.floor(start.min(axis=0)).astype(int) - half, 0, shape - 1)
    hi = np.clip(np.ceil(start.max(axis=0)).astype(int) + half + 1, 1, shape)
    crop = np.asarray(volume_zyx[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], dtype=np.float64)
    grid = np.stack(
        np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij"),
        axis=-1,
    ).reshape(-1, 3)
    near = np.zeros(len(grid), bool)
    for point in start:
        near |= np.all(np.abs(grid - np.round(point)) <= half, axis=1)
    grid, values = grid[near].astype(float), crop.reshape(-1)[near]
    if np.ptp(values) == 0:  # no contrast, nothing to fit
        return failed
    nearest = np.argmin((((grid[None] - start[:, None]) * voxel) ** 2).sum(-1), axis=1)
    background = float(np.percentile(values, 10))
    amplitude = np.maximum(values[nearest] - background, 1e-6)

    def gaussians(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scaled = (grid[None] - theta[1 + k :].reshape(k, 1, 3)) / sigma  # (k, voxels, 3)
        return np.exp(-0.5 * (scaled**2).sum(-1)), scaled

    def residuals(theta: np.ndarray) -> np.ndarray:
        return theta[0] + theta[1 : 1 + k] @ gaussians(theta)[0] - values

    def jacobian(theta: np.ndarray) -> np.ndarray:
        g, scaled = gaussians(theta)
        # d/d centre = amplitude * g * (x - centre) / sigma^2
        d_centres = theta[1 : 1 + k, None, None] * g[:, :, None] * scaled / sigma
        return np.hstack(
            [np.ones((len(values), 1)), g.T, d_centres.transpose(1, 0, 2).reshape(len(values), -1)]
        )

    lower = np.r_[-np.inf, np.zeros(k), (start - max_shift).ravel()]
    upper = np.r_[np.inf, np.full(k, np.inf), (start + max_shift).ravel()]
    theta0 = np.clip(np.r_[background, amplitude, start.ravel()], lower, upper)
    try:
        # xtol 1e-5 instead of 1e-8: centres move by under 0.005 voxels (far below the
        # localisation error) and 300 spots fit in 25 % less time.
        result = least_squares(
            residuals,
            theta0,
            jac=jacobian,
            bounds=(lower, upper),
            x_scale="jac",
            xtol=1e-5,
            max_nfev=100,
        )
    except (ValueError, np.linalg.LinAlgError):
        return failed
    centres = result.x[1 + k :].reshape(k, 3)
    # A spot must stand out from what the fit leaves unexplained (the noise).
    noise = float(np.sqrt(np.mean(result.fun**2)))
    ok = (result.x[1 : 1 + k] > noise) & np.all(np.isfinite(centres), axis=1)
    return np.clip(centres, -0.5, shape - 0.5), ok


def fit_spot_mixture(
    volume_zyx: Any,
    coords_zyx: np.ndarray,
    voxel_size_um: Sequence[float],
    psf_sigma_um: Sequence[float] = PSF_SIGMA_UM,
    link_um: float = MIXTURE_LINK_UM,
    max_shift_um: Sequence[float] = MIXTURE_MAX_SHIFT_UM,
) -> np.ndarray:
    """Refine spot centres by a joint least-squares fit of gaussians to the image.

    Spots within ``link_um`` of each other (transitively) form a group (the
    spots of a group larger than :data:`MIXTURE_MAX_GROUP` keep their start); the
    image around a group, (2 PSF sigmas + 1 voxel) around each spot, is fitted
    by a constant background plus one gaussian of width ``psf_sigma_um`` per
    spot, with free amplitudes (≥ 0) and centres, each centre within
    ``max_shift_um`` of its start (scipy's bounded ``least_squares``). This is
    the mixture-model idea of KiT: close sisters and neighbours stacked along
    z overlap in the image, and a spot fitted alone is pulled towards its
    neighbour. A spot keeps its start when its group's fit fails or gives it
    an amplitude below the fit's residual RMS (no spot there).

    Parameters
    ----------
    volume_zyx : (Z, Y, X) array
        One frame of one channel, raw intensities (numpy or memory map).
    coords_zyx : (N, 3) array
        Start positions (z, y, x) in voxels, e.g. from :func:`refine_detections`'s first step.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    psf_sigma_um : (3,) sequence
        Gaussian sigma (z, y, x) of a spot in µm.
    link_um : float
        Spots closer than this (µm) are fitted together.
    max_shift_um : (3,) sequence
        Largest move (z, y, x) in µm from the start.

    Returns
    -------
    (N, 3) float array of fitted centres (z, y, x) in voxels.

    Examples
    --------
    >>> z, y, x = np.indices((12, 24, 24))
    >>> image = 10 + 100 * np.exp(-((z - 5.2) ** 2) / 2 - ((y - 11.7) ** 2 + (x - 12.1) ** 2) / 1.2)
    >>> fit_spot_mixture(image, [[5.0, 12.0, 12.0]], (0.3, 0.13, 0.13)).round(2).tolist()
    [[5.2, 11.7, 12.1]]
    """
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    coords = np.asarray(coords_zyx, dtype=float).reshape(-1, 3)
    fitted = coords.copy()
    if len(coords) == 0:
        return fitted
    shape, voxel = _frame_geometry(volume_zyx, voxel_size_um, "the mixture fit")
    sigma = np.asarray(psf_sigma_um, dtype=float) / voxel
    max_shift = np.asarray(max_shift_um, dtype=float) / voxel
    physical = cKDTree(coords * voxel)
    n_groups, group = connected_components(
        physical.sparse_distance_matrix(physical, link_um), directed=False
    )
    sizes = np.bincount(group, minlength=n_groups)
    by_group = np.split(np.argsort(group, kind="stable"), np.cumsum(sizes)[:-1])
    for members in by_group:
        # A long chain of neighbours is a crowd (or noise) where a joint fit is neither
        # cheap nor well posed: it keeps its start.
        if len(members) > MIXTURE_MAX_GROUP:
            continue
        centres, ok = _fit_gaussians(volume_zyx, coords[members], shape, voxel, sigma, max_shift)
        fitted[members[ok]] = centres[ok]
    return fitted
