"""Link kinetochore detections over time, in physical units.

Tracking is done by `laptrack <https://github.com/yfukai/laptrack>`_, a
maintained implementation of the linear-assignment-problem (LAP) tracker of
Jaqaman et al. (2008, *Nat. Methods*), the same framework that KiT and
u-track use for kinetochores. Why laptrack:

* frame-to-frame linking is a global assignment (not greedy nearest
  neighbour), which matters for sisters ~0.6–1 µm apart that move together;
* gap closing bridges missed detections (a kinetochore dimmed for a frame);
* it takes any number of coordinates, so we link in µm on anisotropic
  volumes, and it is a small pure-Python/scipy package (networkx,
  scikit-image, pandas) with a pandas interface and an active release
  history. trackpy's linker assumes isotropic pixel units and its own
  feature tables; btrack and TrackMate need compiled code or a JVM.

Drift. The metaphase plate oscillates as a whole (up to ~1 µm per frame in
fast movies). With ``drift_correction`` the detections are linked once, the
per-frame drift is estimated as the median displacement of the linked spots,
and they are linked again after removing the cumulative drift, so the
linking cutoff only has to cover each kinetochore's own motion.

Pairs along tracks. :func:`consistent_pair_ids` turns per-frame pair ids into
per-track ones: each track's sister is the track it is most often paired
with (a majority vote solved as a maximum-weight matching of tracks), so a
pair id never jumps between tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from napari_kinetochores.errors import InputError

__all__ = [
    "TrackingParams",
    "consistent_pair_ids",
    "link_accuracy",
    "stable_pair_ids",
    "track_points",
    "track_table",
]


@dataclass
class TrackingParams:
    """Parameters of the LAP tracker (lengths in µm).

    Attributes
    ----------
    max_distance_um
        Largest displacement between consecutive frames (after drift
        correction) that links.
    gap_closing_distance_um
        Largest displacement bridged by gap closing.
    max_gap_frames
        Largest number of consecutive frames a kinetochore may be missed and
        still be linked across (0: no gap closing).
    drift_correction
        Estimate the common drift (plate motion) and link without it.
    drift_search_um
        Linking cutoff of the first pass that estimates the drift.
    """

    max_distance_um: float = 0.5
    gap_closing_distance_um: float = 0.7
    max_gap_frames: int = 2
    drift_correction: bool = True
    drift_search_um: float = 1.2

    def __post_init__(self) -> None:
        for name in ("max_distance_um", "gap_closing_distance_um", "drift_search_um"):
            if not getattr(self, name) > 0:
                raise InputError(
                    f"tracking parameter {name} must be > 0, got {getattr(self, name)}"
                )
        if int(self.max_gap_frames) < 0:
            raise InputError(f"max_gap_frames must be >= 0, got {self.max_gap_frames}")
        self.max_gap_frames = int(self.max_gap_frames)


def _frames(t: np.ndarray | Sequence[float], n: int) -> np.ndarray:
    if t is None:
        raise InputError(
            "the detections have no time column (t); tracking links points over time "
            "and needs a frame number for every point"
        )
    values = np.asarray(t, dtype=np.float64).reshape(-1)
    if values.shape != (n,):
        raise InputError(f"t must have one value per point ({n}), got {values.shape[0]}")
    if not np.all(np.isfinite(values)):
        raise InputError("the time column (t) contains NaN or infinite values")
    frames = np.round(values)
    if np.any(np.abs(values - frames) > 1e-6) or np.any(frames < 0):
        raise InputError("time points (t) must be whole frame numbers >= 0")
    return frames.astype(np.int64)


def _laptrack(frames: np.ndarray, coords: np.ndarray, cutoff: float, params: TrackingParams):
    from laptrack import LapTrack

    gap = params.max_gap_frames
    gap_cost = float(params.gap_closing_distance_um) ** 2
    # explicit segment start/end costs: any gap-closing candidate within the
    # cutoff is worth making (laptrack's default, a percentile of the candidate
    # costs, rejects some true closings when there are only a few candidates)
    tracker = LapTrack(
        metric="sqeuclidean",
        cutoff=float(cutoff) ** 2,
        gap_closing_metric="sqeuclidean",
        gap_closing_cutoff=float(params.gap_closing_distance_um) ** 2 if gap > 0 else False,
        gap_closing_max_frame_count=max(gap + 1, 1),
        segment_start_cost=gap_cost if gap > 0 else None,
        segment_end_cost=gap_cost if gap > 0 else None,
        splitting_cutoff=False,
        merging_cutoff=False,
    )
    # laptrack.predict takes one coordinate array per frame and returns the
    # track graph (nodes (frame, index)); its pandas front end is much slower.
    start = int(frames.min())
    n_frames = int(frames.max()) - start + 1
    order = np.argsort(frames, kind="stable")
    bounds = np.searchsorted(frames[order], np.arange(start, start + n_frames + 1))
    coords_per_frame = [coords[order[bounds[k] : bounds[k + 1]]] for k in range(n_frames)]
    graph = tracker.predict(coords_per_frame)
    row_of = {
        (k, j): int(order[bounds[k] + j])
        for k in range(n_frames)
        for j in range(bounds[k + 1] - bounds[k])
    }
    edges = np.array(
        [(row_of[tuple(a)], row_of[tuple(b)]) for a, b in graph.edges()], dtype=np.int64
    ).reshape(-1, 2)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(coords)
    adjacency = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(adjacency, directed=False)[1].astype(np.int64)


def _drift(frames: np.ndarray, coords: np.ndarray, track_id: np.ndarray) -> np.ndarray:
    """Cumulative drift (µm) of each frame from the median displacement of linked spots."""
    uniq = np.unique(frames)
    order = np.lexsort((frames, track_id))
    same = track_id[order][1:] == track_id[order][:-1]
    a, b = order[:-1][same], order[1:][same]
    step = (coords[b] - coords[a]) / (frames[b] - frames[a])[:, None]
    drift = np.zeros((len(uniq), 3))
    pos = np.searchsorted(uniq, frames[b])
    for k in range(1, len(uniq)):
        sel = pos == k
        per_frame = np.median(step[sel], axis=0) if sel.any() else np.zeros(3)
        drift[k] = drift[k - 1] + per_frame * (uniq[k] - uniq[k - 1])
    return drift[np.searchsorted(uniq, frames)]


def track_points(
    t: np.ndarray | Sequence[float],
    coords_um: np.ndarray,
    params: TrackingParams | None = None,
) -> np.ndarray:
    """Link points over time into tracks (laptrack LAP tracker, in µm).

    Parameters
    ----------
    t : (N,) array
        Frame of each point (whole numbers >= 0).
    coords_um : (N, 3) array
        Positions (z, y, x) in µm.
    params : TrackingParams, optional

    Returns
    -------
    (N,) int array
        Track id of each point (0, 1, …, numbered by first appearance).

    Examples
    --------
    >>> t = np.array([0, 0, 1, 1, 2])
    >>> pts = np.array([[0, 0, 0], [0, 3, 0], [0, 3.1, 0], [0, 0.1, 0], [0, 0.2, 0]])
    >>> track_points(t, pts).tolist()
    [0, 1, 1, 0, 0]
    """
    p = TrackingParams() if params is None else params
    coords = np.asarray(coords_um, dtype=np.float64).reshape(-1, 3)
    frames = _frames(t, len(coords))
    if not np.all(np.isfinite(coords)):
        raise InputError("coordinates contain NaN or infinite values")
    if len(coords) == 0:
        return np.zeros(0, dtype=np.int64)
    if p.drift_correction and len(np.unique(frames)) > 1:
        first = _laptrack(frames, coords, p.drift_search_um, p)
        corrected = coords - _drift(frames, coords, first)
    else:
        corrected = coords
    raw = _laptrack(frames, corrected, p.max_distance_um, p)
    # renumber by first appearance (frame, then row)
    order = np.lexsort((np.arange(len(raw)), frames))
    _, first_pos = np.unique(raw[order], return_index=True)
    ids_in_order = raw[order][np.sort(first_pos)]
    mapping = np.empty(int(raw.max()) + 1, dtype=np.int64)
    mapping[ids_in_order] = np.arange(len(ids_in_order))
    return mapping[raw]


def consistent_pair_ids(
    t: np.ndarray | Sequence[float],
    track_id: np.ndarray | Sequence[int],
    pair_id: np.ndarray | Sequence[int],
) -> np.ndarray:
    """Make per-frame sister pair ids consistent along tracks (majority vote).

    Every frame in which two tracks share a pair id is a vote for them being
    sisters. The track pairing with the most votes in total (each track with at
    most one sister) is found by a maximum-weight matching; both tracks of a
    pair then carry one pair id over their whole length (the id most of their
    votes used, when free). Tracks without a sister get -1.

    Parameters
    ----------
    t : (N,) array
        Frame of each point.
    track_id : (N,) int array
        Track of each point (-1: none; such points keep their pair id).
    pair_id : (N,) int array
        Per-frame pair id (-1: unpaired).

    Returns
    -------
    (N,) int array
        Pair id per point, the same along a track.

    Examples
    --------
    >>> t = [0, 0, 1, 1, 2, 2]
    >>> tracks = [0, 1, 0, 1, 0, 1]
    >>> consistent_pair_ids(t, tracks, [5, 5, 7, 7, 5, 5]).tolist()
    [5, 5, 5, 5, 5, 5]
    """
    import networkx as nx

    from napari_kinetochores.analysis.pairing import sister_rows

    pair = np.asarray(pair_id, dtype=np.int64).reshape(-1)
    tracks = np.asarray(track_id, dtype=np.int64).reshape(-1)
    frames = _frames(t, len(pair))
    if tracks.shape != pair.shape:
        raise InputError("track_id and pair_id must have the same length")
    partner = sister_rows(frames, pair)
    a = np.flatnonzero((partner > np.arange(len(pair))) & (tracks >= 0))
    b = partner[a]
    keep = tracks[b] >= 0
    a, b = a[keep], b[keep]
    ta, tb = np.minimum(tracks[a], tracks[b]), np.maximum(tracks[a], tracks[b])
    keep = ta != tb
    a, ta, tb = a[keep], ta[keep], tb[keep]
    out = pair.copy()
    out[tracks >= 0] = -1
    if len(a) == 0:
        return out
    votes = pd.DataFrame({"ta": ta, "tb": tb, "pid": pair[a]})
    counts = votes.groupby(["ta", "tb"]).size()
    graph = nx.Graph()
    for (u, v), c in counts.items():
        graph.add_edge(int(u), int(v), weight=int(c))
    matched = nx.max_weight_matching(graph, maxcardinality=False)
    chosen = sorted((min(e), max(e)) for e in matched)
    modal = votes.groupby(["ta", "tb"])["pid"].agg(lambda s: int(s.value_counts().idxmax()))
    used: set[int] = set(int(v) for v in pair[(tracks < 0) & (pair >= 0)])
    next_id = int(pair.max()) + 1
    chosen.sort(key=lambda e: -int(counts[e]))
    for u, v in chosen:
        pid = int(modal[(u, v)])
        if pid in used:
            pid = next_id
            next_id += 1
        used.add(pid)
        out[(tracks == u) | (tracks == v)] = pid
    return out


def _pair_groups(frames: np.ndarray, tracks: np.ndarray, pair: np.ndarray) -> pd.DataFrame:
    """One row per (frame, pair id): its first row and the two tracks it joins (``key``, or None)."""
    rows = np.flatnonzero(pair >= 0)
    table = pd.DataFrame({"t": frames[rows], "pid": pair[rows], "track": tracks[rows], "row": rows})
    tracked = table[table["track"] >= 0]
    sets = tracked.groupby(["t", "pid"])["track"].agg(lambda s: tuple(sorted(set(s))))
    groups = table.groupby(["t", "pid"])["row"].min().to_frame()
    groups["key"] = sets.reindex(groups.index)
    groups["key"] = [k if isinstance(k, tuple) and len(k) == 2 else None for k in groups["key"]]
    groups = groups.reset_index()
    # two groups of one frame on the same two tracks (e.g. the kinetochores and, with their
    # ids, their mCherry spots, paired apart) are ambiguous: leave them as they are
    groups.loc[groups.duplicated(["t", "key"], keep=False), "key"] = None
    return groups.sort_values(["t", "row"], kind="stable")


def stable_pair_ids(
    t: np.ndarray | Sequence[float],
    track_id: np.ndarray | Sequence[int],
    pair_id: np.ndarray | Sequence[int],
) -> np.ndarray:
    """Give per-frame sister pairs one id along their two tracks; never change partners.

    Pair ids that already span several frames are left as they are. An id used
    in one frame only (as *Correct labels* and per-frame pairing give them)
    whose two sisters are on two tracks takes the id of the same two tracks'
    other frames: the multi-frame id of those tracks when there is one, else
    the id of their first frame. Who is paired with whom is unchanged (unlike
    :func:`consistent_pair_ids`, which votes).

    Parameters
    ----------
    t : (N,) array
        Frame of each point.
    track_id : (N,) int array
        Track of each point (-1: none).
    pair_id : (N,) int array
        Pair id (-1: unpaired). Rows of a second channel that carry their
        kinetochore's track and pair ids are handled with it.

    Returns
    -------
    (N,) int array

    Examples
    --------
    >>> t = [0, 0, 1, 1, 2, 2]
    >>> tracks = [0, 1, 0, 1, 0, 1]
    >>> stable_pair_ids(t, tracks, [4, 4, 9, 9, 2, 2]).tolist()
    [4, 4, 4, 4, 4, 4]
    """
    pair = np.asarray(pair_id, dtype=np.int64).reshape(-1)
    tracks = np.asarray(track_id, dtype=np.int64).reshape(-1)
    frames = _frames(t, len(pair))
    if tracks.shape != pair.shape:
        raise InputError("track_id and pair_id must have the same length")
    groups = _pair_groups(frames, tracks, pair)
    span = groups.groupby("pid")["t"].nunique()
    single = groups["pid"].map(span).to_numpy() == 1
    id_of: dict[tuple[int, int], int] = {}
    keys_per_id = groups[~single].groupby("pid")["key"].agg(lambda s: set(s))
    for pid, keys in keys_per_id.items():
        if len(keys) == 1 and None not in keys:
            id_of.setdefault(next(iter(keys)), int(pid))
    new_id = {}
    for frame, pid, key in groups.loc[single, ["t", "pid", "key"]].itertuples(index=False):
        if key is not None:
            new_id[(frame, pid)] = id_of.setdefault(key, int(pid))
    out = pair.copy()
    rows = np.flatnonzero(pair >= 0)
    out[rows] = [new_id.get((f, p), p) for f, p in zip(frames[rows], pair[rows], strict=True)]
    return out


def track_table(
    points: pd.DataFrame,
    voxel_size_um: Sequence[float],
    *,
    params: TrackingParams | None = None,
    channel: int | None = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Track the kinetochores of a point table and keep their pairs consistent.

    Parameters
    ----------
    points : pandas.DataFrame
        Point table in the package schema with a ``t`` column (refused
        without one, and when ``points.attrs["has_time"]`` is False, as set
        by :func:`~napari_kinetochores.io.read_points` for a file with no
        time column). Rows may come in any order.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    params : TrackingParams, optional
    channel : int or None
        Kinetochore channel to track; rows of the other channels take the
        track (and pair) id of the kinetochore they match one-to-one within
        0.25 µm after chromatic correction. None: track all rows together.
    progress : bool
        Unused (laptrack has no progress hook); kept for a uniform interface.

    Returns
    -------
    pandas.DataFrame
        A copy of ``points`` (same row order and index) with ``track_id``;
        an existing ``pair_id`` is made consistent along tracks with
        :func:`consistent_pair_ids`.

    Raises
    ------
    InputError
        No time column.

    Examples
    --------
    >>> from napari_kinetochores.io import points_frame
    >>> df = points_frame([[1, 10, 20, 20], [0, 10, 20, 21]], (0.3, 0.13, 0.13))
    >>> track_table(df, (0.3, 0.13, 0.13))["track_id"].tolist()
    [0, 0]
    """
    from napari_kinetochores.analysis.delta import match_other_channel
    from napari_kinetochores.analysis.inputs import coords_um, kinetochore_rows, voxel_array

    if "t" not in points.columns or points.attrs.get("has_time", True) is False:
        raise InputError(
            "the detections have no time column (t); tracking links points over time and "
            "needs the frame of every point (columns t,z,y,x)"
        )
    p = TrackingParams() if params is None else params
    voxel = voxel_array(voxel_size_um)
    out = points.copy()
    kin = kinetochore_rows(out, channel)
    sub = out[kin]
    track = np.full(len(out), -1, dtype=np.int64)
    track[kin] = track_points(sub["t"].to_numpy(), coords_um(sub, voxel), p)
    other = np.flatnonzero(~kin)
    k_rows = np.flatnonzero(kin)
    if other.size and k_rows.size:
        ik, io = match_other_channel(out, k_rows, other, voxel)
        track[other[io]] = track[k_rows[ik]]
    out["track_id"] = track
    if "pair_id" in out.columns:
        pair = pd.to_numeric(out["pair_id"], errors="coerce").fillna(-1).to_numpy(np.int64)
        new = pair.copy()
        new[kin] = consistent_pair_ids(sub["t"].to_numpy(), track[kin], pair[kin])
        if other.size and k_rows.size:
            new[other] = -1
            new[other[io]] = new[k_rows[ik]]
        out["pair_id"] = new
    return out


def link_accuracy(
    t: np.ndarray | Sequence[float],
    true_track: np.ndarray | Sequence[int],
    pred_track: np.ndarray | Sequence[int],
) -> dict[str, float]:
    """Fraction of correct links, against ground-truth identities.

    A link joins two consecutive detections of one track (consecutive in the
    frames where it was detected, so gap-closing links count). True links come
    from ``true_track``, predicted links from ``pred_track``.

    Parameters
    ----------
    t : (N,) array
        Frame of each detection.
    true_track : (N,) int array
        True identity of each detection (-1: a false detection).
    pred_track : (N,) int array
        Predicted track id (-1: untracked).

    Returns
    -------
    dict
        ``link_recall`` (true links recovered / true links),
        ``link_precision`` (predicted links that are true / predicted links),
        ``n_true_links``, ``n_pred_links``, ``n_correct``.

    Examples
    --------
    >>> link_accuracy([0, 1, 2, 0, 1, 2], [0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 0])
    {'link_recall': 0.5, 'link_precision': 0.5, 'n_true_links': 4, 'n_pred_links': 4, 'n_correct': 2}
    """
    frames = np.asarray(t, dtype=np.float64)
    true = np.asarray(true_track, dtype=np.int64)
    pred = np.asarray(pred_track, dtype=np.int64)

    def links(ids: np.ndarray) -> set[tuple[int, int]]:
        rows = np.flatnonzero(ids >= 0)
        order = rows[np.lexsort((frames[rows], ids[rows]))]
        same = ids[order][1:] == ids[order][:-1]
        return set(zip(order[:-1][same].tolist(), order[1:][same].tolist(), strict=True))

    true_links, pred_links = links(true), links(pred)
    correct = len(true_links & pred_links)
    return {
        "link_recall": correct / len(true_links) if true_links else 1.0,
        "link_precision": correct / len(pred_links) if pred_links else 1.0,
        "n_true_links": len(true_links),
        "n_pred_links": len(pred_links),
        "n_correct": correct,
    }
