"""3D peak detection with an anisotropic neighbourhood and sub-voxel refinement."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_kinetochores.errors import InputError

REFINE_METHODS = ("gaussian", "quadratic", "centroid", "none")


def _radius_voxels(
    distance_um: float | Sequence[float], voxel_size_um: Sequence[float]
) -> np.ndarray:
    distance = np.broadcast_to(np.asarray(distance_um, dtype=float), (3,))
    voxel = np.asarray(voxel_size_um, dtype=float)
    if voxel.shape != (3,) or np.any(voxel <= 0) or not np.all(np.isfinite(voxel)):
        raise InputError(
            f"voxel size must be three positive numbers (z, y, x) in µm, got {voxel_size_um}"
        )
    if np.any(distance < 0):
        raise InputError(f"distance must be >= 0 µm, got {distance_um}")
    return np.floor(distance / voxel + 1e-9).astype(int)


def find_peaks(
    volume: np.ndarray,
    voxel_size_um: Sequence[float],
    min_distance_um: float | Sequence[float] = 0.3,
    threshold_abs: float | None = None,
    threshold_rel: float | None = None,
    exclude_border_um: float | Sequence[float] = 0.0,
    mode: str = "max",
    refine: str = "quadratic",
) -> tuple[np.ndarray, np.ndarray]:
    """Find 3D local maxima (or minima) with sub-voxel positions.

    A voxel is a peak when it is the largest value within a cuboid
    neighbourhood of half-size ``min_distance_um`` (in µm, so anisotropy is
    respected; at least one voxel on each axis) and above the threshold. A plateau of equal maximal voxels gives
    one peak at its centre. Peaks closer than ``min_distance_um`` (physical
    Euclidean distance) are then thinned, keeping the strongest.

    Parameters
    ----------
    volume : (Z, Y, X) array
        Score volume (probability, filter response or intensity).
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    min_distance_um : float or (3,) sequence
        Smallest allowed distance between two peaks, in µm.
    threshold_abs : float, optional
        Peaks must score strictly above this value (for ``mode="min"``:
        strictly below).
    threshold_rel : float, optional
        Peaks must score above ``threshold_rel * volume.max()`` (mode "max").
    exclude_border_um : float or (3,) sequence
        Peaks whose centre lies closer than this (µm) to the centre of the
        outermost voxel layer are dropped.
    mode : {"max", "min"}
        Look for maxima (probabilities) or minima (distance maps).
    refine : {"quadratic", "gaussian", "centroid", "none"}
        Sub-voxel refinement: a separable 3-point parabola per axis, the same
        on the logarithm (exact for gaussian peaks), an intensity-weighted
        centroid over the 3×3×3 neighbourhood, or none.

    Returns
    -------
    coords : (N, 3) float array
        Peak positions (z, y, x) in voxels, sorted by decreasing score.
    scores : (N,) float array
        Value of the volume at each peak voxel.

    Examples
    --------
    >>> vol = np.zeros((9, 20, 20), np.float32)
    >>> vol[4, 10, 10] = 1.0; vol[4, 10, 11] = 0.5; vol[4, 10, 9] = 0.5
    >>> coords, scores = find_peaks(vol, (0.3, 0.13, 0.13), threshold_abs=0.1)
    >>> coords.round(2).tolist(), scores.tolist()
    ([[4.0, 10.0, 10.0]], [1.0])
    """
    from scipy import ndimage

    if mode not in ("max", "min"):
        raise InputError(f"mode must be 'max' or 'min', got {mode!r}")
    if refine not in REFINE_METHODS:
        raise InputError(f"refine must be one of {REFINE_METHODS}, got {refine!r}")
    data = np.asarray(volume, dtype=np.float32)
    if data.ndim != 3:
        raise InputError(f"find_peaks needs a 3D (Z, Y, X) volume, got shape {data.shape}")
    if data.size == 0:
        return np.zeros((0, 3)), np.zeros(0)
    signed = data if mode == "max" else -data
    finite = np.isfinite(signed)
    if not finite.all():
        signed = np.where(finite, signed, -np.inf).astype(np.float32)

    # At least the 26-neighbourhood: otherwise a spot would be a maximum in
    # several slices and those would merge into one flat "plateau".
    radius = np.maximum(_radius_voxels(min_distance_um, voxel_size_um), 1)
    size = tuple(int(2 * r + 1) for r in radius)
    # With an absolute threshold, only the box around voxels above it can hold peaks; the
    # margin (neighbourhood + the refinement's neighbour) makes the search there exact.
    offset = np.zeros(3, int)
    if threshold_abs is not None and threshold_rel is None:
        above = signed > (threshold_abs if mode == "max" else -threshold_abs)
        if not above.any():
            return np.zeros((0, 3)), np.zeros(0)
        box = []
        for axis in range(3):
            present = np.flatnonzero(above.any(axis=tuple(a for a in range(3) if a != axis)))
            start = max(int(present[0]) - int(radius[axis]) - 1, 0)
            box.append(
                slice(start, min(int(present[-1]) + int(radius[axis]) + 2, signed.shape[axis]))
            )
            offset[axis] = start
        del above
        signed = signed[tuple(box)]
    local_max = ndimage.maximum_filter(signed, size=size, mode="nearest")
    candidates = (signed == local_max) & np.isfinite(signed)
    if threshold_abs is not None:
        limit = threshold_abs if mode == "max" else -threshold_abs
        candidates &= signed > limit
    if threshold_rel is not None:
        top = float(np.max(signed[np.isfinite(signed)])) if np.isfinite(signed).any() else 0.0
        candidates &= signed > threshold_rel * top
    if not candidates.any():
        return np.zeros((0, 3)), np.zeros(0)

    if threshold_abs is None and threshold_rel is None:
        # Without a threshold a constant region would count as a peak: drop
        # maxima that equal their whole neighbourhood's minimum.
        local_min = ndimage.minimum_filter(signed, size=size, mode="nearest")
        candidates &= local_max > local_min
        del local_min
    del local_max

    labels, n_labels = ndimage.label(candidates, structure=np.ones((3, 3, 3), bool))
    if n_labels == 0:
        return np.zeros((0, 3)), np.zeros(0)
    # Plateau centres from the candidate voxels alone (not a pass over the whole volume),
    # in the coordinates of the whole volume.
    local = np.argwhere(labels)
    voxel_labels = labels[tuple(local.T)] - 1
    voxels = local + offset
    plateau_size = np.bincount(voxel_labels, minlength=n_labels)
    centres = (
        np.stack(
            [np.bincount(voxel_labels, voxels[:, axis], n_labels) for axis in range(3)], axis=1
        )
        / plateau_size[:, None]
    )
    # Represent each plateau by its member voxel closest to the plateau centre.
    dist_to_centre = np.sum((voxels - centres[voxel_labels]) ** 2, axis=1)
    order = np.lexsort((dist_to_centre, voxel_labels))
    first = np.r_[True, voxel_labels[order][1:] != voxel_labels[order][:-1]]
    peak_voxels = voxels[order][first]
    peak_labels = voxel_labels[order][first]
    scores = signed[tuple((peak_voxels - offset).T)].astype(float)

    order = np.argsort(-scores, kind="stable")
    peak_voxels, scores, peak_labels = peak_voxels[order], scores[order], peak_labels[order]
    plateau_size = plateau_size[peak_labels]
    plateau_centres = centres[peak_labels]

    # Thin peaks that are closer than the minimum distance (strongest first).
    keep = keep_strongest(peak_voxels, scores, voxel_size_um, min_distance_um)
    peak_voxels, scores = peak_voxels[keep], scores[keep]
    plateau_size, plateau_centres = plateau_size[keep], plateau_centres[keep]
    voxel = np.asarray(voxel_size_um, dtype=float)

    coords = peak_voxels.astype(float)
    if refine != "none":
        coords = _refine(signed, peak_voxels, refine, origin=offset)
    # Plateaus have no curvature to refine: their centre is the best estimate.
    flat = plateau_size > 1
    coords[flat] = plateau_centres[flat]

    border_um = np.broadcast_to(np.asarray(exclude_border_um, dtype=float), (3,))
    if np.any(border_um < 0) or not np.all(np.isfinite(border_um)):
        raise InputError(f"exclude_border_um must be >= 0 µm, got {exclude_border_um}")
    if np.any(border_um > 0):
        lower_um = coords * voxel
        upper_um = (np.asarray(data.shape, float) - 1 - coords) * voxel
        inside = np.all((lower_um >= border_um) & (upper_um >= border_um), axis=1)
        coords, scores = coords[inside], scores[inside]
    if mode == "min":
        scores = -scores
    return coords, scores


def keep_strongest(
    coords_zyx: np.ndarray,
    scores: np.ndarray,
    voxel_size_um: Sequence[float],
    min_distance_um: float | Sequence[float],
) -> np.ndarray:
    """Which detections survive when, of any two closer than ``min_distance_um``, the weaker goes.

    Greedy, strongest first (ties: the earlier row), on physical Euclidean
    distance; with a (3,) distance the smallest value is used.

    Parameters
    ----------
    coords_zyx : (N, 3) array
        Positions (z, y, x) in voxels.
    scores : (N,) array
        Higher is surer.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    min_distance_um : float or (3,) sequence
        Smallest allowed distance in µm (0 keeps everything).

    Returns
    -------
    (N,) bool array, True for the detections kept.

    Examples
    --------
    >>> keep_strongest([[0, 0, 0], [0, 0, 1], [0, 0, 5]], [0.5, 0.9, 0.7], (0.3, 0.13, 0.13), 0.3)
    array([False,  True,  True])
    """
    from scipy.spatial import cKDTree

    coords = np.asarray(coords_zyx, dtype=float).reshape(-1, 3)
    scores = np.asarray(scores, dtype=float).reshape(-1)
    keep = np.ones(len(coords), bool)
    min_dist = float(np.min(np.broadcast_to(np.asarray(min_distance_um, float), (3,))))
    if min_dist <= 0 or len(coords) < 2:
        return keep
    order = np.argsort(-scores, kind="stable")
    physical = coords[order] * np.asarray(voxel_size_um, dtype=float)
    pairs = cKDTree(physical).query_pairs(min_dist * (1 - 1e-9), output_type="ndarray")
    kept = np.ones(len(order), bool)
    for i, j in pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]:  # i < j: i is the stronger
        if kept[i]:
            kept[j] = False
    keep[order] = kept
    return keep


def _refine(
    signed: np.ndarray, peaks: np.ndarray, method: str, origin: np.ndarray | None = None
) -> np.ndarray:
    """Sub-voxel refinement of integer peak positions (vectorised over peaks).

    ``signed`` may be a box of a larger volume starting at voxel ``origin``;
    ``peaks`` and the result are in the larger volume's coordinates.
    """
    coords = peaks.astype(float)
    if origin is not None:
        peaks = peaks - np.asarray(origin, int)
    shape = np.asarray(signed.shape)
    if method == "centroid":
        offsets = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
        positions = peaks[:, None, :] + offsets[None]
        inside = np.all((positions >= 0) & (positions < shape), axis=2)
        clipped = np.clip(positions, 0, shape - 1)
        values = signed[tuple(clipped.reshape(-1, 3).T)].reshape(len(peaks), -1)
        values = np.where(inside & np.isfinite(values), values, np.nan)
        background = np.nanmin(values, axis=1, keepdims=True)
        weights = np.nan_to_num(values - background)
        total = weights.sum(axis=1, keepdims=True)
        total[total == 0] = 1.0
        return coords + (weights[:, :, None] * offsets[None]).sum(axis=1) / total
    centre = signed[tuple(peaks.T)].astype(float)
    for axis in range(3):
        step = np.zeros(3, int)
        step[axis] = 1
        lower, upper = peaks - step, peaks + step
        valid = (lower[:, axis] >= 0) & (upper[:, axis] < shape[axis])
        lo = signed[tuple(np.clip(lower, 0, shape - 1).T)].astype(float)
        hi = signed[tuple(np.clip(upper, 0, shape - 1).T)].astype(float)
        c = centre
        if method == "gaussian":
            positive = (lo > 0) & (hi > 0) & (c > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                lo = np.where(positive, np.log(np.where(positive, lo, 1)), lo)
                hi = np.where(positive, np.log(np.where(positive, hi, 1)), hi)
                c = np.where(positive, np.log(np.where(positive, c, 1)), c)
        curvature = lo - 2 * c + hi
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = 0.5 * (lo - hi) / curvature
        ok = valid & (curvature < 0) & np.isfinite(delta)
        coords[:, axis] += np.where(ok, np.clip(delta, -0.5, 0.5), 0.0)
    return coords
