"""Training targets from centre-of-mass points.

All functions take points as (N, 3) float voxel coordinates (z, y, x), a volume
shape (Z, Y, X) and the voxel size (z, y, x) in µm, and return a float32 or
bool volume of that shape. Sizes are given in µm, so the targets are isotropic
in physical space whatever the voxel anisotropy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_kinetochores.errors import InputError


def _prepare(points_zyx, shape_zyx, voxel_size_um):
    points = np.asarray(points_zyx, dtype=float)
    if points.size == 0:
        points = points.reshape(0, 3)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"points must have shape (N, 3) as (z, y, x) voxels, got {points.shape}")
    shape = tuple(int(s) for s in shape_zyx)
    voxel = np.asarray(voxel_size_um, dtype=float)
    if len(shape) != 3:
        raise InputError(f"target shape must be (Z, Y, X), got {shape_zyx}")
    if voxel.shape != (3,) or not np.all(np.isfinite(voxel)) or np.any(voxel <= 0):
        raise InputError(
            f"voxel size must be three positive numbers (z, y, x) in µm, got {voxel_size_um}"
        )
    if not np.all(np.isfinite(points)):
        raise InputError("points contain NaN or infinite coordinates")
    return points, shape, voxel


def _local_windows(points: np.ndarray, shape: tuple[int, ...], half_width: np.ndarray):
    """Yield (point index, slices, per-axis coordinate grids) of a window around each point."""
    for index, point in enumerate(points):
        lo = np.maximum(np.floor(point - half_width).astype(int), 0)
        hi = np.minimum(np.ceil(point + half_width).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        slices = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        grids = [np.arange(a, b, dtype=float) for a, b in zip(lo, hi, strict=True)]
        yield index, slices, grids


def _window_distance2(grids: list[np.ndarray], point: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Squared scaled distance of every voxel of a window (from :func:`_local_windows`) to ``point``."""
    return sum(
        (((g - p) * s) ** 2).reshape([-1 if k == axis else 1 for k in range(3)])
        for axis, (g, p, s) in enumerate(zip(grids, point, scale, strict=True))
    )


def gaussian_heatmap(
    points_zyx: np.ndarray,
    shape_zyx: Sequence[int],
    voxel_size_um: Sequence[float],
    sigma_um: float | Sequence[float] = 0.1,
) -> np.ndarray:
    """Anisotropic gaussian heatmap with value 1 at every point.

    Overlapping gaussians are combined with the maximum, so close sisters stay
    separate peaks.

    Parameters
    ----------
    points_zyx : (N, 3) array
        Centres (z, y, x) in voxels; sub-voxel positions are honoured.
    shape_zyx : (3,) sequence of int
        Output shape (Z, Y, X).
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    sigma_um : float or (3,) sequence
        Gaussian sigma in µm (isotropic in physical space if a single value).

    Returns
    -------
    (Z, Y, X) float32 array in [0, 1].

    Examples
    --------
    >>> heat = gaussian_heatmap([[2, 5, 5]], (5, 11, 11), (0.3, 0.13, 0.13), 0.15)
    >>> float(heat[2, 5, 5]), heat.shape
    (1.0, (5, 11, 11))
    """
    points, shape, voxel = _prepare(points_zyx, shape_zyx, voxel_size_um)
    sigma_vox = np.broadcast_to(np.asarray(sigma_um, float), (3,)) / voxel
    if np.any(sigma_vox <= 0):
        raise InputError(f"sigma must be > 0 µm, got {sigma_um}")
    out = np.zeros(shape, np.float32)
    for index, slices, grids in _local_windows(points, shape, 4 * sigma_vox):
        point = points[index]
        profiles = [
            np.exp(-0.5 * ((g - p) / s) ** 2)
            for g, p, s in zip(grids, point, sigma_vox, strict=True)
        ]
        blob = profiles[0][:, None, None] * profiles[1][None, :, None] * profiles[2][None, None, :]
        np.maximum(out[slices], blob.astype(np.float32), out=out[slices])
    return out


def sphere_mask(
    points_zyx: np.ndarray,
    shape_zyx: Sequence[int],
    voxel_size_um: Sequence[float],
    radius_um: float = 0.2,
) -> np.ndarray:
    """Binary mask of physical spheres (ellipsoids in voxels) around each point.

    Returns a (Z, Y, X) bool array that is True within ``radius_um`` µm of a
    point. Every point marks at least its own nearest voxel.

    Examples
    --------
    >>> mask = sphere_mask([[2, 5, 5]], (5, 11, 11), (0.3, 0.13, 0.13), 0.3)
    >>> int(mask.sum()), bool(mask[2, 5, 7])
    (23, True)
    """
    points, shape, voxel = _prepare(points_zyx, shape_zyx, voxel_size_um)
    if radius_um <= 0:
        raise InputError(f"radius must be > 0 µm, got {radius_um}")
    out = np.zeros(shape, bool)
    half = np.ceil(radius_um / voxel) + 1
    for index, slices, grids in _local_windows(points, shape, half):
        d2 = _window_distance2(grids, points[index], voxel)
        out[slices] |= d2 <= radius_um**2
    nearest = np.round(points).astype(int)
    nearest = nearest[np.all((nearest >= 0) & (nearest < np.asarray(shape)), axis=1)]
    if len(nearest):
        out[tuple(nearest.T)] = True
    return out


def distance_map(
    points_zyx: np.ndarray,
    shape_zyx: Sequence[int],
    voxel_size_um: Sequence[float],
    clip_um: float = 1.0,
) -> np.ndarray:
    """Physical distance to the nearest point, clipped and normalised to [0, 1].

    The nearest point of every voxel comes from an anisotropic Euclidean
    distance transform (``scipy.ndimage.distance_transform_edt`` with
    ``sampling=voxel_size_um``) on the points' nearest voxels; the distance is
    then measured to that point's exact sub-voxel position, so the minima sit
    at the true centres.

    Returns
    -------
    (Z, Y, X) float32 array: ``min(distance_um, clip_um) / clip_um``; 1 where
    no point is within ``clip_um`` (and everywhere when there are no points).

    Examples
    --------
    >>> dist = distance_map([[2, 5, 5]], (5, 11, 11), (0.3, 0.13, 0.13), clip_um=1.0)
    >>> float(dist[2, 5, 5]), round(float(dist[2, 5, 6]), 2), float(dist[0, 0, 0])
    (0.0, 0.13, 1.0)
    """
    from scipy import ndimage

    points, shape, voxel = _prepare(points_zyx, shape_zyx, voxel_size_um)
    if clip_um <= 0:
        raise InputError(f"clip must be > 0 µm, got {clip_um}")
    if len(points) == 0:
        return np.ones(shape, np.float32)
    nearest = np.clip(np.round(points).astype(int), 0, np.asarray(shape) - 1)
    seeds = np.ones(shape, bool)
    seeds[tuple(nearest.T)] = False
    owner = np.full(shape, -1, np.int64)
    owner[tuple(nearest.T)] = np.arange(len(points))
    _, indices = ndimage.distance_transform_edt(seeds, sampling=voxel, return_indices=True)
    nearest_point = owner[tuple(indices)]
    grid = np.indices(shape, dtype=np.float32)
    d2 = np.zeros(shape, np.float32)
    for axis in range(3):
        d2 += ((grid[axis] - points[nearest_point, axis].astype(np.float32)) * voxel[axis]) ** 2
    return (np.minimum(np.sqrt(d2), clip_um) / clip_um).astype(np.float32)


def instance_labels(
    points_zyx: np.ndarray,
    shape_zyx: Sequence[int],
    voxel_size_um: Sequence[float],
    radius_um: float | Sequence[float] = 0.3,
) -> np.ndarray:
    """Instance label volume: one physical ellipsoid per point, labelled ``1..N``.

    Every voxel within the ellipsoid of a point (semi-axes ``radius_um`` in
    µm, so a sphere in physical space when ``radius_um`` is one number)
    belongs to that point. Where the ellipsoids of neighbours overlap, each
    voxel goes to the nearest centre (in the ellipsoid's normalised metric,
    i.e. the physical distance for a sphere), so close sisters are split along
    the plane halfway between them. A point whose ellipsoid holds no voxel
    (radius below the voxel size) still marks its own nearest voxel, unless a
    nearer centre owns it. These are the instance masks StarDist trains on.

    Parameters
    ----------
    points_zyx : (N, 3) array
        Centres (z, y, x) in voxels; sub-voxel positions are honoured. Points
        outside the volume label only the part of their ellipsoid inside it.
    shape_zyx : (3,) sequence of int
        Output shape (Z, Y, X).
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    radius_um : float or (3,) sequence
        Radius in µm, or the semi-axes (z, y, x) in µm.

    Returns
    -------
    (Z, Y, X) int32 array
        0 for background, ``i + 1`` for the voxels of point ``i``.

    Examples
    --------
    >>> labels = instance_labels([[2, 5, 5], [2, 5, 9]], (5, 15, 15), (0.3, 0.13, 0.13), 0.3)
    >>> int(labels.max()), int(labels[2, 5, 7]), int(labels[2, 5, 8])  # split halfway
    (2, 1, 2)
    >>> int(labels[1, 5, 5]), int(labels[0, 5, 5])  # 0.3 µm in z is one voxel
    (1, 0)
    """
    points, shape, voxel = _prepare(points_zyx, shape_zyx, voxel_size_um)
    radius = np.broadcast_to(np.asarray(radius_um, float), (3,))
    if not np.all(np.isfinite(radius)) or np.any(radius <= 0):
        raise InputError(f"radius must be > 0 µm, got {radius_um}")
    if len(points) >= np.iinfo(np.int32).max:
        raise InputError(f"too many points for an int32 label volume: {len(points)}")
    labels = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf, np.float32)  # normalised squared distance to the owner
    scale = voxel / radius  # voxels -> units of the semi-axes
    half = np.ceil(radius / voxel) + 1
    for index, slices, grids in _local_windows(points, shape, half):
        d2 = _window_distance2(grids, points[index], scale).astype(np.float32)
        window_best = best[slices]
        closer = (d2 <= 1.0) & (d2 < window_best)
        window_best[closer] = d2[closer]
        labels[slices][closer] = index + 1
    # Points too small to own a voxel keep their nearest voxel, unless a nearer centre has it.
    present = np.zeros(len(points) + 1, bool)
    present[np.unique(labels)] = True
    for index in np.flatnonzero(~present[1:]):
        voxel_index = np.round(points[index]).astype(int)
        if np.any(voxel_index < 0) or np.any(voxel_index >= np.asarray(shape)):
            continue
        key = tuple(voxel_index)
        d2 = float(np.sum(((voxel_index - points[index]) * scale) ** 2))
        if d2 < best[key]:
            best[key] = d2
            labels[key] = index + 1
    return labels
