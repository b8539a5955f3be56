"""Sister-kinetochore pairing by a globally optimal matching on a general graph.

Everything here works on numpy arrays in physical units (µm) and knows
nothing about napari; :func:`pair_table` takes a point table in the package
schema. The metaphase plate comes from :mod:`napari_kinetochores.analysis.plate`.

:func:`pair_sisters` is a globally optimal matching on a general graph:
nodes are kinetochores (or whole tracks), edges are candidate sisters within
a distance window (default 0.4–1.5 µm), and the edge cost adds

* ``((d - expected) / distance_sd)²``: deviation of the distance;
* ``(angle / angle_sd)²``: angle between the sister axis and the plate
  normal (sisters sit on either side of the plate, along the normal);
* ``(sd(d over time) / distance_var_sd)²``: for tracks, sisters keep their
  distance while neighbours drift apart.

Track-to-track costs average the per-frame costs over the frames where both
tracks exist (frames out of the window count as ``max_cost``), plus a penalty
for tracks that barely overlap. Each kinetochore-frame left unpaired costs
``max_cost / 2``: a pair is made only when its cost is below ``max_cost``,
and the matching maximises the sum over pairs of
``frames together × (max_cost − cost)``, i.e. it minimises the total cost
over all kinetochores and frames. Tracks broken by the tracker are then
joined to a pair as fragments of one side (a fragment that overlaps no member
of that side in time), so one pair id holds along all of them. Without
tracks, every kinetochore of every frame is its own unit.

The graph is not bipartite (any kinetochore may be any other's sister), so a
bipartite assignment (Hungarian, or scipy's
``min_weight_full_bipartite_matching`` on a doubled, symmetric graph) can
return cycles a→b→c→a that are no pairing at all. We therefore use Edmonds'
blossom algorithm, :func:`networkx.max_weight_matching`, which is exact on
general graphs. networkx is pure Python and already required by
scikit-image and laptrack; each connected component of the candidate graph
(a few dozen nodes at most) is solved separately, so it is fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from napari_kinetochores.analysis.inputs import (
    as_coords,
    as_frames,
    coords_um,
    frame_groups,
    frame_progress,
    kinetochore_rows,
    voxel_array,
)
from napari_kinetochores.analysis.plate import fit_plates, plate_normals_per_point
from napari_kinetochores.errors import InputError

__all__ = [
    "PairingParams",
    "PairingResult",
    "REASON_LOST",
    "REASON_NO_ACCEPTABLE",
    "REASON_NO_PARTNER",
    "REASON_OTHER_CHANNEL",
    "REASON_PAIRED",
    "pair_sisters",
    "pair_table",
    "sister_rows",
]

REASON_PAIRED = "paired"
REASON_NO_PARTNER = "no partner in window"
REASON_NO_ACCEPTABLE = "no acceptable partner (cost above max_cost)"
REASON_LOST = "lost in optimal assignment"
REASON_OTHER_CHANNEL = "not the kinetochore channel"


@dataclass
class PairingParams:
    """Parameters of sister pairing (lengths in µm, angles in degrees).

    Attributes
    ----------
    min_distance_um, max_distance_um
        Distance window of candidate sisters.
    expected_distance_um
        Typical sister (K–K) distance.
    distance_sd_um
        Scale of the distance cost ``((d - expected) / distance_sd)²``.
    angle_sd_deg
        Scale of the angle cost ``(angle / angle_sd)²`` (angle between the
        sister axis and the plate normal).
    distance_var_sd_um
        Scale of the over-time cost ``(sd of d over time / distance_var_sd)²``
        (tracks only).
    coverage_weight
        Cost per unit of missing overlap between two tracks
        (``1 - frames together / frames of the shorter track``).
    max_cost
        Pairs with a larger total cost are never made; leaving a kinetochore
        unpaired costs ``max_cost / 2``.
    use_plate
        Use the plate normal in the cost (when it could be fitted).
    """

    min_distance_um: float = 0.4
    max_distance_um: float = 1.5
    expected_distance_um: float = 0.95
    distance_sd_um: float = 0.25
    angle_sd_deg: float = 30.0
    distance_var_sd_um: float = 0.1
    coverage_weight: float = 2.0
    max_cost: float = 12.0
    use_plate: bool = True

    def __post_init__(self) -> None:
        if not (0 <= self.min_distance_um < self.max_distance_um):
            raise InputError(
                "the pairing distance window must satisfy 0 <= min < max, got "
                f"{self.min_distance_um}–{self.max_distance_um} µm"
            )
        for name in ("distance_sd_um", "angle_sd_deg", "distance_var_sd_um", "max_cost"):
            if not getattr(self, name) > 0:
                raise InputError(f"pairing parameter {name} must be > 0, got {getattr(self, name)}")


@dataclass
class PairingResult:
    """Outcome of :func:`pair_sisters`, one entry per input kinetochore.

    Attributes
    ----------
    pair_id : (N,) int array
        Sister-pair id (0, 1, …), -1 for unpaired kinetochores. With tracks,
        a pair id is the same along both sisters' whole tracks.
    reason : (N,) object array of str
        ``"paired"`` or why not: ``"no partner in window"``,
        ``"no acceptable partner (cost above max_cost)"``,
        ``"lost in optimal assignment"``.
    cost : (N,) float array
        Cost of the pair (NaN when unpaired).
    partner : (N,) int array
        Row index of the sister in the same frame, -1 when unpaired or when
        the sister is not detected in that frame.
    n_pairs : int
    """

    pair_id: np.ndarray
    reason: np.ndarray
    cost: np.ndarray
    partner: np.ndarray
    n_pairs: int = 0
    params: PairingParams = field(default_factory=PairingParams, repr=False)


def _units(frames: np.ndarray, track_id: np.ndarray | None) -> np.ndarray:
    """Matching unit of each row: its track, or itself when untracked."""
    n = len(frames)
    if track_id is None:
        return np.arange(n, dtype=np.int64)
    tracks = np.asarray(track_id).reshape(-1)
    if tracks.shape != (n,):
        raise InputError(f"track_id must have one value per point ({n}), got {tracks.shape[0]}")
    tracks = np.round(tracks.astype(np.float64)).astype(np.int64)
    tracked = tracks >= 0
    units = np.empty(n, dtype=np.int64)
    _, inverse = np.unique(tracks[tracked], return_inverse=True)
    units[tracked] = inverse
    n_tracked = int(inverse.max()) + 1 if inverse.size else 0
    units[~tracked] = n_tracked + np.arange(int((~tracked).sum()))
    key = units * (frames.max() - frames.min() + 1 if n else 1) + (
        frames - (frames.min() if n else 0)
    )
    uniq, counts = np.unique(key, return_counts=True)
    if np.any(counts > 1):
        dup = uniq[counts > 1][0]
        row = int(np.flatnonzero(key == dup)[0])
        raise InputError(
            f"track {int(tracks[row])} has {int(counts[counts > 1][0])} points in frame "
            f"{int(frames[row])}; a track holds at most one point per frame"
        )
    return units


def _frame_candidates(
    pts: np.ndarray,
    frames: np.ndarray,
    normals: np.ndarray | None,
    params: PairingParams,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate sister pairs per frame: rows i < j, distance, per-frame cost."""
    from scipy.spatial import cKDTree

    uniq, groups = frame_groups(frames)
    all_i, all_j, all_d, all_c = [], [], [], []
    angle_sd = np.deg2rad(params.angle_sd_deg)
    for idx in frame_progress(groups, progress, "pairing", total=len(uniq)):
        if len(idx) < 2:
            continue
        pairs = cKDTree(pts[idx]).query_pairs(params.max_distance_um, output_type="ndarray")
        if len(pairs) == 0:
            continue
        i, j = idx[pairs[:, 0]], idx[pairs[:, 1]]
        vec = pts[j] - pts[i]
        d = np.linalg.norm(vec, axis=1)
        keep = d >= params.min_distance_um
        i, j, vec, d = i[keep], j[keep], vec[keep], d[keep]
        cost = ((d - params.expected_distance_um) / params.distance_sd_um) ** 2
        if normals is not None and params.use_plate:
            n = normals[i]
            ok = np.all(np.isfinite(n), axis=1)
            cos = np.abs(np.sum(vec * np.nan_to_num(n), axis=1)) / np.maximum(d, 1e-12)
            angle = np.arccos(np.clip(cos, 0.0, 1.0))
            cost = cost + np.where(ok, (angle / angle_sd) ** 2, 0.0)
        swap = i > j
        i, j = np.where(swap, j, i), np.where(swap, i, j)
        all_i.append(i)
        all_j.append(j)
        all_d.append(d)
        all_c.append(cost)
    if not all_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0), np.zeros(0)
    return (
        np.concatenate(all_i),
        np.concatenate(all_j),
        np.concatenate(all_d),
        np.concatenate(all_c),
    )


def _solve_matching(u: np.ndarray, v: np.ndarray, value: np.ndarray) -> list[tuple[int, int]]:
    """Maximum-weight matching on a general graph (edges u–v of positive value).

    With ``value = frames × (max_cost − cost)`` this is the minimum total cost
    when each unpaired kinetochore-frame costs ``max_cost / 2``.
    """
    import networkx as nx
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(u) == 0:
        return []
    nodes, local = np.unique(np.concatenate([u, v]), return_inverse=True)
    lu, lv = local[: len(u)], local[len(u) :]
    graph = coo_matrix((np.ones(len(u)), (lu, lv)), shape=(len(nodes), len(nodes)))
    _, comp = connected_components(graph, directed=False)
    edge_comp = comp[lu]
    counts = np.bincount(edge_comp, minlength=len(nodes))
    # integer weights keep the blossom algorithm exact
    weight = np.round(value * 1e6).astype(np.int64)
    chosen: list[tuple[int, int]] = []
    single = counts[edge_comp] == 1
    chosen.extend(zip(u[single].tolist(), v[single].tolist(), strict=True))
    multi = np.flatnonzero(~single)
    if multi.size:
        order = multi[np.argsort(edge_comp[multi], kind="stable")]
        splits = np.flatnonzero(np.diff(edge_comp[order])) + 1
        for group in np.split(order, splits):
            g = nx.Graph()
            g.add_weighted_edges_from(
                zip(u[group].tolist(), v[group].tolist(), weight[group].tolist(), strict=True)
            )
            chosen.extend(tuple(sorted(e)) for e in nx.max_weight_matching(g, maxcardinality=False))
    return chosen


@dataclass
class _Edges:
    """Candidate sister pairs of units ``u < v`` whose mean cost is below ``max_cost``."""

    u: np.ndarray
    v: np.ndarray
    cost: np.ndarray
    frames: np.ndarray  # frames in which both units exist (the weight of the pair)
    has_candidate: np.ndarray  # per unit: some unit within the distance window
    presence: object  # (n_units, n_frames) sparse matrix, or None without candidates

    @property
    def has_acceptable(self) -> np.ndarray:
        out = np.zeros(len(self.has_candidate), dtype=bool)
        out[self.u] = out[self.v] = True
        return out

    def value(self, rows: np.ndarray | slice, max_cost: float) -> np.ndarray:
        """What pairing gains: frames × (max_cost − cost)."""
        return self.frames[rows] * (max_cost - self.cost[rows])


def _unit_edges(
    i: np.ndarray,
    j: np.ndarray,
    d: np.ndarray,
    fcost: np.ndarray,
    frames: np.ndarray,
    units: np.ndarray,
    p: PairingParams,
) -> _Edges:
    """Per-frame candidates (rows i, j) averaged into unit-to-unit edges."""
    from scipy.sparse import csr_matrix

    n_units = int(units.max()) + 1 if len(units) else 0
    ui, uj = np.minimum(units[i], units[j]), np.maximum(units[i], units[j])
    has_candidate = np.zeros(n_units, dtype=bool)
    has_candidate[ui] = has_candidate[uj] = True
    empty = np.zeros(0, dtype=np.int64)
    if not len(ui):
        return _Edges(empty, empty, np.zeros(0), np.zeros(0), has_candidate, None)
    keys, inverse = np.unique(ui * n_units + uj, return_inverse=True)
    n_in = np.bincount(inverse)
    eu, ev = keys // n_units, keys % n_units
    frame_ids = np.unique(frames, return_inverse=True)[1]
    presence = csr_matrix(
        (np.ones(len(units)), (units, frame_ids)), shape=(n_units, int(frame_ids.max()) + 1)
    )
    overlap = np.asarray(presence[eu].multiply(presence[ev]).sum(axis=1)).ravel()
    length = np.asarray(presence.sum(axis=1)).ravel()
    overlap = np.maximum(overlap, n_in)
    sum_cost = np.bincount(inverse, weights=fcost)
    mean_cost = (sum_cost + (overlap - n_in) * p.max_cost) / overlap
    mean_d = np.bincount(inverse, weights=d) / n_in
    var_d = np.maximum(np.bincount(inverse, weights=d * d) / n_in - mean_d**2, 0.0)
    var_cost = np.where(n_in >= 2, var_d / p.distance_var_sd_um**2, 0.0)
    coverage_cost = p.coverage_weight * (1.0 - overlap / np.minimum(length[eu], length[ev]))
    total = mean_cost + var_cost + coverage_cost
    ok = total < p.max_cost
    # the value of a pair grows with the frames it pairs: a long pair of
    # tracks outweighs a short fragment with a slightly lower mean cost
    return _Edges(eu[ok], ev[ok], total[ok], overlap[ok], has_candidate, presence)


class _Pairs:
    """Pairs under construction: each has two sides; a side holds one track, or
    several fragments of one kinetochore's track that never coexist."""

    def __init__(self, n_units: int, edges: _Edges) -> None:
        self.sides: list[tuple[list[int], list[int]]] = []
        self.pair = np.full(n_units, -1, dtype=np.int64)
        self.side = np.full(n_units, -1, dtype=np.int64)
        self.cost = np.full(n_units, np.nan)
        self.cost_of = dict(
            zip(
                zip(edges.u.tolist(), edges.v.tolist(), strict=True),
                edges.cost.tolist(),
                strict=True,
            )
        )

    def add(self, a: int, b: int) -> None:
        """Pair units a and b, or join the free one to the other's pair."""
        if self.pair[a] < 0 and self.pair[b] < 0:
            self.pair[a], self.pair[b] = len(self.sides), len(self.sides)
            self.side[a], self.side[b] = 0, 1
            self.sides.append(([a], [b]))
        else:
            new, old = (b, a) if self.pair[a] >= 0 else (a, b)
            k, s_new = int(self.pair[old]), 1 - int(self.side[old])
            self.sides[k][s_new].append(new)
            self.pair[new], self.side[new] = k, s_new
        self.cost[a] = self.cost[b] = self.cost_of[(min(a, b), max(a, b))]

    def can_join(self, a: int, b: int, presence) -> bool:
        """Edge a–b may be added: both free, or the free one overlaps no member of its side."""
        if self.pair[a] >= 0 and self.pair[b] >= 0:
            return False
        if self.pair[a] < 0 and self.pair[b] < 0:
            return True
        new, old = (b, a) if self.pair[a] >= 0 else (a, b)
        other = self.sides[self.pair[old]][1 - self.side[old]]
        busy = np.asarray(presence[other].sum(axis=0)).ravel()
        return not float(busy @ presence[new].toarray().ravel()) > 0


def _join_fragments(pairs: _Pairs, edges: _Edges, max_cost: float) -> None:
    """Leftover track fragments join a pair on a side where they overlap no member in time."""
    for _ in range(4):  # a few rounds
        free = (pairs.pair[edges.u] < 0) | (pairs.pair[edges.v] < 0)
        valid = [
            e
            for e in np.flatnonzero(free)
            if pairs.can_join(int(edges.u[e]), int(edges.v[e]), edges.presence)
        ]
        if not valid:
            return
        valid = np.asarray(valid, dtype=np.int64)
        chosen = _solve_matching(edges.u[valid], edges.v[valid], edges.value(valid, max_cost))
        if not chosen:
            return
        for a, b in chosen:
            pairs.add(a, b)


def _pair_numbers(pairs: _Pairs, units: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Pair id per unit, numbered by the first frame, then the first row, of each pair."""
    n_units = len(pairs.pair)
    first_row = np.full(n_units, len(units), dtype=np.int64)
    np.minimum.at(first_row, units, np.arange(len(units)))
    first_frame = np.full(n_units, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_frame, units, frames)
    rank = sorted(
        range(len(pairs.sides)),
        key=lambda k: min((first_frame[u], first_row[u]) for u in sum(pairs.sides[k], [])),
    )
    new_id = np.empty(len(pairs.sides), dtype=np.int64)
    new_id[rank] = np.arange(len(pairs.sides))
    out = pairs.pair.copy()
    out[out >= 0] = new_id[out[out >= 0]]
    return out


def _check_normals(normals: np.ndarray | None, n: int) -> np.ndarray | None:
    if normals is None:
        return None
    normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3) if n else np.zeros((0, 3))
    if len(normals) != n:
        raise InputError(f"normals must have shape ({n}, 3), got {normals.shape}")
    return normals


def pair_sisters(
    coords_um: np.ndarray,
    t: np.ndarray | Sequence[float] | None = None,
    *,
    track_id: np.ndarray | Sequence[int] | None = None,
    normals: np.ndarray | None = None,
    params: PairingParams | None = None,
    progress: bool = False,
) -> PairingResult:
    """Pair sister kinetochores by a globally optimal minimum-cost matching.

    Without ``track_id`` each frame is paired on its own. With it, whole
    tracks are paired (rows with track id -1 take part on their own), so a
    pair id holds along the tracks; costs are averaged over the frames where
    both tracks exist and the sd of the K–K distance over time is added.

    Parameters
    ----------
    coords_um : (N, 3) array
        Kinetochore positions (z, y, x) in µm, one channel only.
    t : (N,) array, optional
        Frame of each kinetochore (whole numbers); None: all in one frame.
    track_id : (N,) int array, optional
        Track of each kinetochore, -1 for none.
    normals : (N, 3) array, optional
        Plate normal of each kinetochore's frame (NaN: unknown), e.g. from
        :func:`~napari_kinetochores.analysis.plate.fit_plates` and
        :func:`~napari_kinetochores.analysis.plate.plate_normals_per_point`.
    params : PairingParams, optional
        Window and cost weights.
    progress : bool
        tqdm progress bar over frames.

    Returns
    -------
    PairingResult

    Examples
    --------
    >>> pts = np.array([[0, 0, 0], [1.0, 0, 0], [0, 3, 0], [0.9, 3, 0], [0, 6, 0]])
    >>> result = pair_sisters(pts, normals=np.tile([1.0, 0, 0], (5, 1)))
    >>> result.pair_id.tolist()
    [0, 0, 1, 1, -1]
    >>> result.reason[4]
    'no partner in window'
    """
    p = PairingParams() if params is None else params
    pts = as_coords(coords_um, "coords_um")
    n = len(pts)
    frames = as_frames(t, n)
    normals = _check_normals(normals, n)
    units = _units(frames, None if track_id is None else np.asarray(track_id))
    n_units = int(units.max()) + 1 if n else 0
    edges = _unit_edges(*_frame_candidates(pts, frames, normals, p, progress), frames, units, p)
    pairs = _Pairs(n_units, edges)
    for a, b in _solve_matching(edges.u, edges.v, edges.value(slice(None), p.max_cost)):
        pairs.add(a, b)
    if track_id is not None and edges.presence is not None:
        _join_fragments(pairs, edges, p.max_cost)
    unit_pair = _pair_numbers(pairs, units, frames)
    unit_reason = np.full(n_units, REASON_LOST, dtype=object)
    unit_reason[~edges.has_candidate] = REASON_NO_PARTNER
    unit_reason[edges.has_candidate & ~edges.has_acceptable] = REASON_NO_ACCEPTABLE
    unit_reason[unit_pair >= 0] = REASON_PAIRED
    pair_id = unit_pair[units] if n else np.zeros(0, dtype=np.int64)
    return PairingResult(
        pair_id=pair_id,
        reason=unit_reason[units] if n else np.zeros(0, dtype=object),
        cost=pairs.cost[units] if n else np.zeros(0),
        partner=sister_rows(frames, pair_id),
        n_pairs=len(pairs.sides),
        params=p,
    )


def sister_rows(t: np.ndarray | Sequence[float], pair_id: np.ndarray | Sequence[int]) -> np.ndarray:
    """Row index of each kinetochore's sister in the same frame.

    Parameters
    ----------
    t : (N,) array
        Frame of each kinetochore.
    pair_id : (N,) int array
        Pair id, -1 for unpaired.

    Returns
    -------
    (N,) int array
        The sister's row, -1 when unpaired, when the sister is absent from
        the frame, or when the pair id has more than two rows in the frame.

    Examples
    --------
    >>> sister_rows([0, 0, 0, 1], [3, -1, 3, 3]).tolist()
    [2, -1, 0, -1]
    """
    pair = np.asarray(pair_id, dtype=np.int64).reshape(-1)
    frames = as_frames(t, len(pair))
    partner = np.full(len(pair), -1, dtype=np.int64)
    rows = np.flatnonzero(pair >= 0)
    if rows.size == 0:
        return partner
    order = rows[np.lexsort((rows, frames[rows], pair[rows]))]
    key_t, key_p = frames[order], pair[order]
    start = np.r_[True, (np.diff(key_t) != 0) | (np.diff(key_p) != 0)]
    group = np.cumsum(start) - 1
    sizes = np.bincount(group)
    first = start & (sizes[group] == 2)
    a = order[first]
    b = order[np.flatnonzero(first) + 1]
    partner[a] = b
    partner[b] = a
    return partner


def pair_table(
    points: pd.DataFrame,
    voxel_size_um: Sequence[float],
    *,
    params: PairingParams | None = None,
    channel: int | None = 0,
    use_tracks: bool = True,
    plates: pd.DataFrame | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Pair sister kinetochores in a point table.

    Parameters
    ----------
    points : pandas.DataFrame
        Point table in the package schema (``t, z, y, x`` voxels; optional
        ``channel``, ``track_id``). Rows may come in any order.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    params : PairingParams, optional
    channel : int or None
        Kinetochore channel (rows of other channels inherit the pair id of
        the kinetochore they match, see
        :func:`~napari_kinetochores.analysis.delta.match_other_channel`);
        None: all rows.
    use_tracks : bool
        Pair whole tracks when a ``track_id`` column is present.
    plates : pandas.DataFrame, optional
        Per-frame plates (:func:`~napari_kinetochores.analysis.plate.fit_plates`);
        fitted when None.
    progress : bool
        tqdm progress bars.

    Returns
    -------
    pandas.DataFrame
        A copy of ``points`` (same row order and index) with ``pair_id`` (-1:
        unpaired), ``pair_reason`` and ``pair_cost``.

    Examples
    --------
    >>> from napari_kinetochores.io import points_frame
    >>> df = points_frame([[0, 10, 20, 20], [0, 13, 20, 20]], (0.3, 0.13, 0.13))
    >>> pair_table(df, (0.3, 0.13, 0.13), params=PairingParams(use_plate=False))["pair_id"].tolist()
    [0, 0]
    """
    p = PairingParams() if params is None else params
    voxel = voxel_array(voxel_size_um)
    out = points.copy()
    if "t" not in out.columns:
        out["t"] = 0.0
    kin = kinetochore_rows(out, channel)
    sub = out[kin]
    pts = coords_um(sub, voxel)
    frames = as_frames(sub["t"].to_numpy(), len(sub))
    normals = None
    if p.use_plate and len(sub):
        if plates is None:
            plates = fit_plates(frames, pts, progress=progress)
        normals = plate_normals_per_point(frames, plates)
    tracks = None
    if use_tracks and "track_id" in sub.columns:
        tracks = pd.to_numeric(sub["track_id"], errors="coerce").fillna(-1).to_numpy()
    result = pair_sisters(
        pts, frames, track_id=tracks, normals=normals, params=p, progress=progress
    )
    pair_id = np.full(len(out), -1, dtype=np.int64)
    reason = np.full(len(out), REASON_OTHER_CHANNEL, dtype=object)
    cost = np.full(len(out), np.nan)
    pair_id[kin], reason[kin], cost[kin] = result.pair_id, result.reason, result.cost
    if (~kin).any() and kin.any():
        from napari_kinetochores.analysis.delta import match_other_channel

        k_rows, o_rows = np.flatnonzero(kin), np.flatnonzero(~kin)
        ik, io = match_other_channel(out, k_rows, o_rows, voxel)
        pair_id[o_rows[io]] = pair_id[k_rows[ik]]
        reason[o_rows[io]] = reason[k_rows[ik]]
    out["pair_id"] = pair_id
    out["pair_reason"] = reason
    out["pair_cost"] = cost
    return out
