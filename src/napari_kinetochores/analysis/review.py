"""Review by uncertainty: the order in which a user should look at spots.

A detector is least sure of the spots whose score lies near its threshold:
the detections just above it (likely false ones) and the spots of its score
map just below it (likely missed ones). Reviewing those first spends the
user's clicks where the model can be wrong.

- :func:`candidate_spots`: the peaks of a score map above a floor (a third
  of the threshold) that no point already covers: spots the detector left
  out; :func:`iter_movie_candidates` does it frame by frame for a movie;
- :func:`review_order`: spots ranked by ``|score - threshold|``, nearest
  first, skipping the ones already reviewed;
- :func:`near_any`: which points lie within a distance (µm) of others in the
  same frame;
- :func:`default_threshold`: the threshold a UNet checkpoint was made with.

How many reviewed spots this order needs to reach F1 0.99, against a random
order: ``benchmarks/bench_review.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from napari_kinetochores.errors import InputError

__all__ = [
    "FLOOR_FRACTION",
    "candidate_spots",
    "default_threshold",
    "iter_movie_candidates",
    "near_any",
    "review_order",
]

FLOOR_FRACTION = 1.0 / 3.0
"""Candidate spots score above this fraction of the threshold (the default floor)."""


def review_order(
    scores: Sequence[float] | np.ndarray,
    threshold: float,
    reviewed: Sequence[bool] | np.ndarray | None = None,
    detected: Sequence[bool] | np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the spots to review, the score nearest the threshold first.

    A spot that is not a detection although its score is above the threshold
    (a peak of the score map that the detection's sub-voxel refinement merged
    into a neighbour: the detector contradicts itself there) counts as
    scoring exactly the threshold, so it comes first.

    Parameters
    ----------
    scores : (N,) array
        Scores of the spots (detections and candidate spots alike); a NaN
        score (e.g. a point added by hand) is never offered.
    threshold : float
        The detector's threshold on the same scale.
    reviewed : (N,) bool array, optional
        True for the spots already reviewed or corrected; they are skipped.
    detected : (N,) bool array, optional
        True for detections, False for candidate spots (default: all are
        detections).

    Returns
    -------
    (K,) int array
        Indices into ``scores``, by increasing ``|score - threshold|``; ties
        keep the input order.

    Examples
    --------
    >>> review_order([0.9, 0.32, 0.2, 0.05], 0.3).tolist()
    [1, 2, 3, 0]
    >>> review_order([0.9, 0.32, 0.2, np.nan], 0.3, reviewed=[False, True, False, False]).tolist()
    [2, 0]
    >>> review_order([0.9, 0.32, 0.65], 0.3, detected=[True, True, False]).tolist()
    [2, 1, 0]
    """
    scores = np.asarray(scores, dtype=float).reshape(-1)
    if detected is not None:
        detected = np.asarray(detected, dtype=bool).reshape(-1)
        if detected.shape != scores.shape:
            raise InputError(
                f"detected has {len(detected)} entries but there are {len(scores)} scores"
            )
        scores = np.where(detected, scores, np.minimum(scores, float(threshold)))
    distance = np.abs(scores - float(threshold))
    open_ = np.isfinite(distance)
    if reviewed is not None:
        reviewed = np.asarray(reviewed, dtype=bool).reshape(-1)
        if reviewed.shape != scores.shape:
            raise InputError(
                f"reviewed has {len(reviewed)} entries but there are {len(scores)} scores"
            )
        open_ &= ~reviewed
    index = np.flatnonzero(open_)
    return index[np.argsort(distance[index], kind="stable")]


def near_any(
    points: np.ndarray,
    others: np.ndarray | None,
    voxel_size_um: Sequence[float],
    distance_um: float,
) -> np.ndarray:
    """Which points lie within ``distance_um`` of one of ``others`` in the same frame.

    Parameters
    ----------
    points : (N, 3) or (N, 4) array
        Positions (z, y, x) or (t, z, y, x) in voxels.
    others : (M, 3) or (M, 4) array, optional
        Positions with the same columns (None or empty: no point is near).
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    distance_um : float
        The distance in µm (inclusive).

    Returns
    -------
    (N,) bool array

    Examples
    --------
    >>> near_any(np.array([[0, 5, 5, 5], [1, 5, 5, 5]]), np.array([[0, 5, 5, 6]]),
    ...          (0.3, 0.13, 0.13), 0.2).tolist()
    [True, False]
    """
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=float)
    ndim = points.shape[1] if points.ndim == 2 else 3
    points = points.reshape(-1, ndim)
    near = np.zeros(len(points), bool)
    if others is None or len(others) == 0 or len(points) == 0:
        return near
    others = np.asarray(others, dtype=float).reshape(-1, ndim)
    voxel = np.asarray(voxel_size_um, dtype=float)
    a_um, b_um = points[:, -3:] * voxel, others[:, -3:] * voxel
    if ndim == 4:  # frames drawn so far apart along a 4th axis that they never meet
        gap = 10.0 * (float(np.ptp(np.concatenate([a_um, b_um]))) + distance_um + 1.0)
        a_um = np.column_stack([np.round(points[:, 0]) * gap, a_um])
        b_um = np.column_stack([np.round(others[:, 0]) * gap, b_um])
    found, _ = cKDTree(b_um).query(a_um, distance_upper_bound=distance_um * (1 + 1e-9))
    return np.isfinite(found)


def candidate_spots(
    score_map_zyx: np.ndarray,
    voxel_size_um: Sequence[float],
    threshold: float,
    floor: float | None = None,
    min_distance_um: float = 0.3,
    existing_zyx: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Spots the detector left out: peaks of its score map above ``floor`` that no point covers.

    Mostly peaks below the threshold; a peak above it that no detection
    covers is one the detection's sub-voxel refinement merged into a
    neighbour (on held-out low-SNR movies with clutter most missed
    kinetochores were such peaks; docs/benchmarks.md).

    Parameters
    ----------
    score_map_zyx : (Z, Y, X) array
        A score map of one frame, higher is surer (the UNet's probability).
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    threshold : float
        The detection threshold (sets the default floor).
    floor : float, optional
        Peaks must score above this (default ``threshold *`` :data:`FLOOR_FRACTION`).
    min_distance_um : float
        Smallest distance between two peaks (µm); a peak this close to one of
        ``existing_zyx`` is that point's spot and is left out.
        Without ``existing_zyx`` every peak above ``floor`` is returned.
    existing_zyx : (M, 3) array, optional
        Points already there (detections, points added or deleted by hand),
        in voxels.

    Returns
    -------
    coords : (K, 3) float array
        Candidate positions (z, y, x) in voxels, by decreasing score.
    scores : (K,) float array

    Examples
    --------
    >>> score = np.zeros((9, 30, 30), np.float32)
    >>> score[4, 10, 10], score[4, 20, 20], score[4, 10, 20] = 0.9, 0.25, 0.05
    >>> detections = np.array([[4.0, 10.2, 10.1]])
    >>> coords, scores = candidate_spots(score, (0.3, 0.13, 0.13), 0.3, existing_zyx=detections)
    >>> coords.tolist(), scores.round(2).tolist()
    ([[4.0, 20.0, 20.0]], [0.25])
    """
    from napari_kinetochores.core.peaks import find_peaks

    floor = float(threshold) * FLOOR_FRACTION if floor is None else float(floor)
    if not floor < threshold:
        raise InputError(f"the floor ({floor}) must be below the threshold ({threshold})")
    coords, scores = find_peaks(
        np.asarray(score_map_zyx, dtype=np.float32),
        voxel_size_um,
        min_distance_um,
        threshold_abs=floor,
        refine="gaussian",
    )
    keep = ~near_any(coords, existing_zyx, voxel_size_um, min_distance_um)
    return coords[keep], scores[keep]


def iter_movie_candidates(
    score_map: np.ndarray,
    voxel_size_um: Sequence[float],
    threshold: float,
    floor: float | None = None,
    existing: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`candidate_spots` of every frame of a score map, one frame per step.

    One step per frame lets a caller show progress and stop between frames
    (the Correct labels widget runs it in a worker thread).

    Parameters
    ----------
    score_map : (Z, Y, X) or (T, Z, Y, X) array
        The score map (numpy or dask; a frame is read at its step).
    voxel_size_um, threshold, floor
        As for :func:`candidate_spots`.
    existing : (M, ndim) array, optional
        Points already there, with the score map's axes (t, z, y, x or z, y, x),
        in voxels.

    Yields
    ------
    coords : (K, ndim) float array
        The frame's candidates with the score map's axes (t first for a movie).
    scores : (K,) float array

    Examples
    --------
    >>> score = np.zeros((2, 9, 30, 30), np.float32)
    >>> score[0, 4, 10, 10], score[1, 4, 20, 20] = 0.9, 0.25
    >>> steps = list(iter_movie_candidates(score, (0.3, 0.13, 0.13), 0.3,
    ...                                    existing=np.array([[0, 4.0, 10.0, 10.0]])))
    >>> [coords.tolist() for coords, _ in steps]
    [[], [[1.0, 4.0, 20.0, 20.0]]]
    """
    ndim = len(score_map.shape)
    if ndim not in (3, 4):
        raise InputError(f"a score map must be (Z, Y, X) or (T, Z, Y, X), got {ndim} dimensions")
    existing = np.zeros((0, ndim)) if existing is None else np.asarray(existing, float)
    existing = existing.reshape(-1, ndim)
    for t in range(score_map.shape[0]) if ndim == 4 else [None]:
        frame = score_map if t is None else score_map[t]
        covering = existing if t is None else existing[np.round(existing[:, 0]) == t]
        coords, scores = candidate_spots(
            np.asarray(frame, dtype=np.float32),
            voxel_size_um,
            threshold,
            floor,
            existing_zyx=covering[:, -3:],
        )
        if t is not None:
            coords = np.column_stack([np.full(len(coords), float(t)), coords])
        yield coords.reshape(-1, ndim), scores


def default_threshold(model: str | None = None) -> float:
    """The detection threshold stored in a UNet checkpoint (loads it; imports torch).

    Parameters
    ----------
    model
        A checkpoint path or bundled name (None: the bundled default).
    """
    from napari_kinetochores.nn.checkpoint import bundled_model_path, load_checkpoint

    return float(load_checkpoint(bundled_model_path(model), device="cpu").info.threshold)
