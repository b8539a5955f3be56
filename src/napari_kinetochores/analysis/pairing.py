"""Metaphase plate fit, sister-kinetochore pairing and the two-colour delta.

Everything here works on numpy arrays in physical units (µm; the delta in nm)
and knows nothing about napari. The table-level wrappers (:func:`pair_table`,
:func:`fit_plates`) take point tables in the package schema.

Plate fit
    :func:`fit_plate` fits the metaphase plate of one frame with a
    Huber-weighted principal component analysis: the plate normal (the
    spindle axis) is the direction of least weighted variance, and spots far
    from the plane lose weight, so a few stray detections do not tilt it.
    :func:`fit_plates` does it per frame and warns (:class:`PlateWarning`)
    when a frame has too few spots; its plate is then left empty (NaN).

Sister pairing
    :func:`pair_sisters` is a globally optimal matching on a general graph:
    nodes are kinetochores (or whole tracks), edges are candidate sisters
    within a distance window (default 0.4–1.5 µm), and the edge cost adds

    * ``((d - expected) / distance_sd)²``: deviation of the distance;
    * ``(angle / angle_sd)²``: angle between the sister axis and the plate
      normal (sisters sit on either side of the plate, along the normal);
    * ``(sd(d over time) / distance_var_sd)²``: for tracks, sisters keep
      their distance while neighbours drift apart.

    Track-to-track costs average the per-frame costs over the frames where
    both tracks exist (frames out of the window count as ``max_cost``), plus
    a penalty for tracks that barely overlap. Each kinetochore-frame left
    unpaired costs ``max_cost / 2``: a pair is made only when its cost is
    below ``max_cost``, and the matching maximises the sum over pairs of
    ``frames together × (max_cost − cost)``, i.e. it minimises the total cost
    over all kinetochores and frames. Tracks broken by the tracker are then
    joined to a pair as fragments of one side (a fragment that overlaps no
    member of that side in time), so one pair id holds along all of them.
    Without tracks, every kinetochore of every frame is its own unit.

    The graph is not bipartite (any kinetochore may be any other's sister), so
    a bipartite assignment (Hungarian, or scipy's
    ``min_weight_full_bipartite_matching`` on a doubled, symmetric graph) can
    return cycles a→b→c→a that are no pairing at all. We therefore use
    Edmonds' blossom algorithm, :func:`networkx.max_weight_matching`, which
    is exact on general graphs. networkx is pure Python and already required
    by scikit-image and laptrack; each connected component of the candidate
    graph (a few dozen nodes at most) is solved separately, so it is fast.

Two-colour delta
    :func:`two_colour_delta` pairs EGFP with mCherry spots one-to-one within a
    small cutoff (default 0.25 µm) with
    :func:`napari_kinetochores.analysis.matching.match_points`, after removing the
    chromatic shift: the median mCherry − EGFP offset estimated from the data
    (true deltas point outwards, so they cancel between sisters), or one given
    by the user. The delta is the corrected 3D vector mCherry − EGFP in nm.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from napari_kinetochores.errors import InputError

__all__ = [
    "DEFAULT_DELTA_CUTOFF_UM",
    "PLATE_COLUMNS",
    "PLATE_MIN_SPOTS",
    "DeltaResult",
    "PairingParams",
    "PairingResult",
    "PlateFit",
    "PlateWarning",
    "REASON_LOST",
    "REASON_NO_ACCEPTABLE",
    "REASON_NO_PARTNER",
    "REASON_OTHER_CHANNEL",
    "REASON_PAIRED",
    "fit_plate",
    "fit_plates",
    "kinetochore_rows",
    "pair_sisters",
    "pair_table",
    "plate_normals_per_point",
    "sister_rows",
    "two_colour_delta",
]

PLATE_MIN_SPOTS = 6
"""Fewest spots in a frame for a plate fit."""

DEFAULT_DELTA_CUTOFF_UM = 0.25
"""Largest EGFP–mCherry distance (µm, after chromatic correction) that pairs."""

REASON_PAIRED = "paired"
REASON_NO_PARTNER = "no partner in window"
REASON_NO_ACCEPTABLE = "no acceptable partner (cost above max_cost)"
REASON_LOST = "lost in optimal assignment"
REASON_OTHER_CHANNEL = "not the kinetochore channel"


class PlateWarning(UserWarning):
    """A frame's metaphase plate could not be fitted (too few spots)."""


# --------------------------------------------------------------------------- helpers


def _as_coords(coords: np.ndarray | Sequence[Sequence[float]], name: str) -> np.ndarray:
    array = np.asarray(coords, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 3))
    if array.ndim != 2 or array.shape[1] != 3:
        raise InputError(f"{name} must have shape (N, 3) as (z, y, x) µm, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} contains NaN or infinite coordinates")
    return array


def _as_frames(t: np.ndarray | Sequence[float] | None, n: int, name: str = "t") -> np.ndarray:
    if t is None:
        return np.zeros(n, dtype=np.int64)
    values = np.asarray(t, dtype=np.float64).reshape(-1)
    if values.shape != (n,):
        raise InputError(f"{name} must have one value per point ({n}), got {values.shape[0]}")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{name} contains NaN or infinite time points")
    frames = np.round(values)
    if np.any(np.abs(values - frames) > 1e-6):
        bad = values[np.abs(values - frames) > 1e-6][0]
        raise InputError(f"time points must be whole frame numbers; found {bad!r}")
    return frames.astype(np.int64)


def _voxel(voxel_size_um: Sequence[float]) -> np.ndarray:
    from napari_kinetochores.io import validate_voxel_size

    return np.asarray(validate_voxel_size(voxel_size_um), dtype=np.float64)


def _progress(iterable, enabled: bool, desc: str, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="frame", leave=False)


# --------------------------------------------------------------------------- plate


@dataclass
class PlateFit:
    """A fitted metaphase plate.

    Attributes
    ----------
    centre_um : (3,) float array
        Robust centre (z, y, x) of the plate in µm.
    normal : (3,) float array
        Unit normal (z, y, x) of the plate: the spindle axis. Its sign is
        arbitrary; :func:`fit_plate` makes its largest component positive.
    weights : (N,) float array
        Final Huber weight of each spot (1: inlier, < 1: down-weighted).
    rms_um : float
        Weighted root-mean-square distance of the spots to the plane, in µm.
    n_spots : int
        Number of spots used.
    """

    centre_um: np.ndarray
    normal: np.ndarray
    weights: np.ndarray
    rms_um: float
    n_spots: int


def fit_plate(
    coords_um: np.ndarray,
    *,
    min_spots: int = PLATE_MIN_SPOTS,
    huber_k: float = 1.5,
    n_iter: int = 20,
) -> PlateFit:
    """Fit the metaphase plate to one frame's kinetochores (robust PCA plane).

    Iteratively re-weighted PCA: the plane goes through the weighted centre,
    its normal is the eigenvector of the weighted covariance with the smallest
    eigenvalue, and each spot's weight is the Huber weight
    ``min(1, huber_k * s / |r|)`` of its distance ``r`` to the plane, with
    ``s`` the robust scale (1.4826 × median absolute deviation) of ``r``.

    Parameters
    ----------
    coords_um : (N, 3) array
        Kinetochore positions (z, y, x) in µm.
    min_spots : int
        Fewest spots accepted (at least 3).
    huber_k : float
        Huber threshold in units of the robust scale.
    n_iter : int
        Largest number of re-weighting iterations.

    Returns
    -------
    PlateFit

    Raises
    ------
    InputError
        Fewer than ``min_spots`` spots (:func:`fit_plates` turns this into a
        warning).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> xy = rng.uniform(-4, 4, size=(40, 2))
    >>> pts = np.column_stack([0.1 * rng.standard_normal(40), xy])  # plate in y-x
    >>> fit = fit_plate(pts)
    >>> np.round(np.abs(fit.normal), 1)
    array([1., 0., 0.])
    """
    pts = _as_coords(coords_um, "coords_um")
    n = len(pts)
    need = max(int(min_spots), 3)
    if n < need:
        raise InputError(f"{n} spot(s), fewer than the {need} needed to fit the metaphase plate")
    w = np.ones(n)
    normal = np.array([1.0, 0.0, 0.0])
    centre = pts.mean(axis=0)
    for _ in range(max(int(n_iter), 1)):
        centre = (w[:, None] * pts).sum(axis=0) / w.sum()
        centred = pts - centre
        cov = (w[:, None] * centred).T @ centred / w.sum()
        _, vectors = np.linalg.eigh(cov)
        normal = vectors[:, 0]
        r = centred @ normal
        scale = 1.4826 * float(np.median(np.abs(r - np.median(r))))
        scale = max(scale, 1e-3)
        abs_r = np.abs(r)
        new_w = np.minimum(1.0, huber_k * scale / np.maximum(abs_r, 1e-12))
        if np.max(np.abs(new_w - w)) < 1e-6:
            w = new_w
            break
        w = new_w
    if normal[np.argmax(np.abs(normal))] < 0:
        normal = -normal
    r = (pts - centre) @ normal
    rms = float(np.sqrt(np.sum(w * r**2) / np.sum(w)))
    return PlateFit(centre, normal, w, rms, n)


PLATE_COLUMNS: tuple[str, ...] = (
    "t",
    "plate_centre_z_um",
    "plate_centre_y_um",
    "plate_centre_x_um",
    "plate_normal_z",
    "plate_normal_y",
    "plate_normal_x",
    "plate_position_um",
    "plate_rms_um",
    "plate_n_spots",
)


def fit_plates(
    t: np.ndarray | Sequence[float],
    coords_um: np.ndarray,
    *,
    min_spots: int = PLATE_MIN_SPOTS,
    progress: bool = False,
) -> pd.DataFrame:
    """Fit the metaphase plate in every frame.

    Normals are oriented consistently over time (each has a positive dot
    product with the previous valid frame's). Frames with fewer than
    ``min_spots`` spots get NaN and one :class:`PlateWarning` lists them.

    Parameters
    ----------
    t : (N,) array
        Frame of each kinetochore (whole numbers).
    coords_um : (N, 3) array
        Kinetochore positions (z, y, x) in µm.
    min_spots : int
        Fewest spots for a fit.
    progress : bool
        Show a tqdm progress bar over frames.

    Returns
    -------
    pandas.DataFrame
        One row per frame (sorted by ``t``): ``t``, ``plate_centre_{z,y,x}_um``,
        ``plate_normal_{z,y,x}`` (unit vector), ``plate_position_um`` (the
        centre's displacement along the mean normal from the mean centre: the
        plate oscillation), ``plate_rms_um`` (plate half-thickness, RMS) and
        ``plate_n_spots``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> pts = np.column_stack([0.1 * rng.standard_normal(60), rng.uniform(-4, 4, (60, 2))])
    >>> pts[30:, 0] += 0.5  # frame 1: the plate moved 0.5 µm along z
    >>> plates = fit_plates(np.repeat([0, 1], 30), pts)
    >>> np.round(plates["plate_position_um"].to_numpy(), 1)
    array([-0.2,  0.2])
    """
    pts = _as_coords(coords_um, "coords_um")
    frames = _as_frames(t, len(pts))
    uniq = np.unique(frames)
    rows = []
    too_few: list[tuple[int, int]] = []
    previous = None
    order = np.argsort(frames, kind="stable")
    bounds = np.searchsorted(frames[order], uniq, side="left").tolist() + [len(frames)]
    for k, frame in enumerate(_progress(uniq, progress, "plate fit")):
        idx = order[bounds[k] : bounds[k + 1]]
        row: dict[str, float] = {"t": int(frame), "plate_n_spots": len(idx)}
        try:
            fit = fit_plate(pts[idx], min_spots=min_spots)
        except InputError:
            too_few.append((int(frame), len(idx)))
            row.update({c: np.nan for c in PLATE_COLUMNS[1:-1]})
            rows.append(row)
            continue
        normal = fit.normal
        if previous is not None and float(normal @ previous) < 0:
            normal = -normal
        previous = normal
        row.update(
            {
                "plate_centre_z_um": fit.centre_um[0],
                "plate_centre_y_um": fit.centre_um[1],
                "plate_centre_x_um": fit.centre_um[2],
                "plate_normal_z": normal[0],
                "plate_normal_y": normal[1],
                "plate_normal_x": normal[2],
                "plate_rms_um": fit.rms_um,
            }
        )
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(PLATE_COLUMNS))
    if too_few:
        listed = ", ".join(f"t={f} ({n} spots)" for f, n in too_few[:10])
        more = f" and {len(too_few) - 10} more" if len(too_few) > 10 else ""
        warnings.warn(
            f"{len(too_few)} of {len(uniq)} frame(s) have fewer than {max(min_spots, 3)} "
            f"kinetochores, too few to fit the metaphase plate: {listed}{more}. Their plate is "
            "left empty (NaN); pairing there uses the distance only.",
            PlateWarning,
            stacklevel=2,
        )
    centres = table[["plate_centre_z_um", "plate_centre_y_um", "plate_centre_x_um"]].to_numpy(
        dtype=float
    )
    normals = table[["plate_normal_z", "plate_normal_y", "plate_normal_x"]].to_numpy(dtype=float)
    valid = np.all(np.isfinite(normals), axis=1)
    if valid.any():
        mean_normal = normals[valid].mean(axis=0)
        mean_normal /= max(np.linalg.norm(mean_normal), 1e-12)
        mean_centre = centres[valid].mean(axis=0)
        table["plate_position_um"] = (centres - mean_centre) @ mean_normal
    table["t"] = table["t"].astype(np.int64)
    table["plate_n_spots"] = table["plate_n_spots"].astype(np.int64)
    return table


def plate_normals_per_point(t: np.ndarray, plates: pd.DataFrame) -> np.ndarray:
    """Plate normal (z, y, x) of each point's frame, NaN where there is none.

    Parameters
    ----------
    t : (N,) int array
        Frame of each point.
    plates : pandas.DataFrame
        Output of :func:`fit_plates`.

    Returns
    -------
    (N, 3) float array
    """
    return _per_point(t, plates, ["plate_normal_z", "plate_normal_y", "plate_normal_x"])


def _per_point(t: np.ndarray, plates: pd.DataFrame, columns: list[str]) -> np.ndarray:
    frames = np.asarray(t, dtype=np.int64)
    out = np.full((len(frames), len(columns)), np.nan)
    if len(plates) == 0 or len(frames) == 0:
        return out
    lookup = plates.set_index(plates["t"].astype(np.int64))[columns]
    known = np.isin(frames, lookup.index.to_numpy())
    out[known] = lookup.loc[frames[known]].to_numpy(dtype=float)
    return out


# --------------------------------------------------------------------------- pairing


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

    order = np.argsort(frames, kind="stable")
    uniq = np.unique(frames)
    bounds = np.searchsorted(frames[order], uniq, side="left").tolist() + [len(frames)]
    all_i, all_j, all_d, all_c = [], [], [], []
    angle_sd = np.deg2rad(params.angle_sd_deg)
    for k in _progress(range(len(uniq)), progress, "pairing", total=len(uniq)):
        idx = order[bounds[k] : bounds[k + 1]]
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
        :func:`fit_plates` and :func:`plate_normals_per_point`.
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
    pts = _as_coords(coords_um, "coords_um")
    n = len(pts)
    frames = _as_frames(t, n)
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3) if n else np.zeros((0, 3))
        if len(normals) != n:
            raise InputError(f"normals must have shape ({n}, 3), got {normals.shape}")
    units = _units(frames, None if track_id is None else np.asarray(track_id))
    n_units = int(units.max()) + 1 if n else 0

    i, j, d, fcost = _frame_candidates(pts, frames, normals, p, progress)
    ui, uj = units[i], units[j]
    swap = ui > uj
    ui, uj = np.where(swap, uj, ui), np.where(swap, ui, uj)
    has_candidate = np.zeros(n_units, dtype=bool)
    has_candidate[ui] = True
    has_candidate[uj] = True

    edge_u = np.zeros(0, dtype=np.int64)
    edge_v = np.zeros(0, dtype=np.int64)
    edge_cost = np.zeros(0)
    edge_frames = np.zeros(0)
    presence = None
    if len(ui):
        key = ui * n_units + uj
        keys, inverse = np.unique(key, return_inverse=True)
        n_in = np.bincount(inverse)
        sum_cost = np.bincount(inverse, weights=fcost)
        sum_d = np.bincount(inverse, weights=d)
        sum_d2 = np.bincount(inverse, weights=d * d)
        eu, ev = keys // n_units, keys % n_units
        # frames in which both units exist
        frame_ids = np.unique(frames, return_inverse=True)[1]
        from scipy.sparse import csr_matrix

        presence = csr_matrix(
            (np.ones(n), (units, frame_ids)), shape=(n_units, int(frame_ids.max()) + 1)
        )
        overlap = np.asarray(presence[eu].multiply(presence[ev]).sum(axis=1)).ravel()
        length = np.asarray(presence.sum(axis=1)).ravel()
        overlap = np.maximum(overlap, n_in)
        mean_cost = (sum_cost + (overlap - n_in) * p.max_cost) / overlap
        mean_d = sum_d / n_in
        var_d = np.maximum(sum_d2 / n_in - mean_d**2, 0.0)
        var_cost = np.where(n_in >= 2, var_d / p.distance_var_sd_um**2, 0.0)
        shorter = np.minimum(length[eu], length[ev])
        coverage_cost = p.coverage_weight * (1.0 - overlap / shorter)
        total = mean_cost + var_cost + coverage_cost
        ok = total < p.max_cost
        edge_u, edge_v, edge_cost = eu[ok], ev[ok], total[ok]
        # the value of a pair grows with the frames it pairs: a long pair of
        # tracks outweighs a short fragment with a slightly lower mean cost
        edge_frames = overlap[ok]

    has_acceptable = np.zeros(n_units, dtype=bool)
    has_acceptable[edge_u] = True
    has_acceptable[edge_v] = True
    cost_of = dict(
        zip(zip(edge_u.tolist(), edge_v.tolist(), strict=True), edge_cost.tolist(), strict=True)
    )
    # each pair has two sides; a side holds one track, or several fragments of
    # one kinetochore's track that never coexist (a track broken by the tracker)
    sides: list[tuple[list[int], list[int]]] = []
    unit_pair = np.full(n_units, -1, dtype=np.int64)
    unit_side = np.full(n_units, -1, dtype=np.int64)
    unit_cost = np.full(n_units, np.nan)
    for a, b in _solve_matching(edge_u, edge_v, edge_frames * (p.max_cost - edge_cost)):
        unit_pair[a], unit_pair[b] = len(sides), len(sides)
        unit_side[a], unit_side[b] = 0, 1
        unit_cost[a] = unit_cost[b] = cost_of[(a, b)]
        sides.append(([a], [b]))
    if track_id is not None and presence is not None:
        # leftover track fragments may join a pair on a side where they
        # overlap no member in time (up to a few rounds)
        for _ in range(4):
            free = unit_pair[edge_u] < 0, unit_pair[edge_v] < 0
            sel = np.flatnonzero(free[0] | free[1])
            valid = []
            for e in sel:
                a, b = int(edge_u[e]), int(edge_v[e])
                if unit_pair[a] >= 0 and unit_pair[b] >= 0:
                    continue
                if unit_pair[a] >= 0 or unit_pair[b] >= 0:
                    new_u, old_u = (b, a) if unit_pair[a] >= 0 else (a, b)
                    other = sides[unit_pair[old_u]][1 - unit_side[old_u]]
                    busy = np.asarray(presence[other].sum(axis=0)).ravel()
                    if float(busy @ presence[new_u].toarray().ravel()) > 0:
                        continue
                valid.append(e)
            if not valid:
                break
            valid = np.asarray(valid, dtype=np.int64)
            chosen = _solve_matching(
                edge_u[valid], edge_v[valid], edge_frames[valid] * (p.max_cost - edge_cost[valid])
            )
            if not chosen:
                break
            for a, b in chosen:
                if unit_pair[a] < 0 and unit_pair[b] < 0:
                    unit_pair[a], unit_pair[b] = len(sides), len(sides)
                    unit_side[a], unit_side[b] = 0, 1
                    sides.append(([a], [b]))
                else:
                    new_u, old_u = (b, a) if unit_pair[a] >= 0 else (a, b)
                    k, s_new = int(unit_pair[old_u]), 1 - int(unit_side[old_u])
                    sides[k][s_new].append(new_u)
                    unit_pair[new_u], unit_side[new_u] = k, s_new
                unit_cost[a] = unit_cost[b] = cost_of[(min(a, b), max(a, b))]

    # deterministic pair ids: by the first frame, then the first row, of the pair
    first_row = np.full(n_units, n, dtype=np.int64)
    np.minimum.at(first_row, units, np.arange(n))
    first_frame = np.full(n_units, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_frame, units, frames)
    rank = sorted(
        range(len(sides)),
        key=lambda k: min((first_frame[u], first_row[u]) for u in sides[k][0] + sides[k][1]),
    )
    new_id = np.empty(len(sides), dtype=np.int64)
    new_id[rank] = np.arange(len(sides))
    paired = unit_pair >= 0
    unit_pair[paired] = new_id[unit_pair[paired]]

    unit_reason = np.full(n_units, REASON_LOST, dtype=object)
    unit_reason[~has_candidate] = REASON_NO_PARTNER
    unit_reason[has_candidate & ~has_acceptable] = REASON_NO_ACCEPTABLE
    unit_reason[unit_pair >= 0] = REASON_PAIRED

    pair_id = unit_pair[units] if n else np.zeros(0, dtype=np.int64)
    partner = sister_rows(frames, pair_id)
    return PairingResult(
        pair_id=pair_id,
        reason=unit_reason[units] if n else np.zeros(0, dtype=object),
        cost=unit_cost[units] if n else np.zeros(0),
        partner=partner,
        n_pairs=len(sides),
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
    frames = _as_frames(t, len(pair))
    partner = np.full(len(pair), -1, dtype=np.int64)
    rows = np.flatnonzero(pair >= 0)
    if rows.size == 0:
        return partner
    order = rows[np.lexsort((rows, frames[rows], pair[rows]))]
    key_t, key_p = frames[order], pair[order]
    start = np.r_[True, (np.diff(key_t) != 0) | (np.diff(key_p) != 0)]
    group = np.cumsum(start) - 1
    sizes = np.bincount(group)
    two = sizes[group] == 2
    first = start & two
    a = order[first]
    b = order[np.flatnonzero(first) + 1]
    partner[a] = b
    partner[b] = a
    return partner


# --------------------------------------------------------------------------- tables


def kinetochore_rows(points: pd.DataFrame, channel: int | None = 0) -> np.ndarray:
    """Boolean mask of the kinetochore-channel rows of a point table.

    All rows when the table has no ``channel`` column or ``channel`` is None.
    """
    if channel is None or "channel" not in points.columns:
        return np.ones(len(points), dtype=bool)
    values = pd.to_numeric(points["channel"], errors="coerce").to_numpy()
    return values == channel


def _coords_um(points: pd.DataFrame, voxel: np.ndarray) -> np.ndarray:
    missing = [c for c in ("z", "y", "x") if c not in points.columns]
    if missing:
        raise InputError(f"the point table lacks column(s) {', '.join(missing)}")
    return points[["z", "y", "x"]].to_numpy(dtype=np.float64) * voxel


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
        the kinetochore they match, see :func:`two_colour_delta`); None: all
        rows.
    use_tracks : bool
        Pair whole tracks when a ``track_id`` column is present.
    plates : pandas.DataFrame, optional
        Per-frame plates (:func:`fit_plates`); fitted when None.
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
    voxel = _voxel(voxel_size_um)
    out = points.copy()
    if "t" not in out.columns:
        out["t"] = 0.0
    kin = kinetochore_rows(out, channel)
    sub = out[kin]
    pts = _coords_um(sub, voxel)
    frames = _as_frames(sub["t"].to_numpy(), len(sub))
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
    pair_id[kin] = result.pair_id
    reason[kin] = result.reason
    cost[kin] = result.cost
    if (~kin).any() and kin.any():
        k_rows = np.flatnonzero(kin)
        o_rows = np.flatnonzero(~kin)
        match = _match_other_channel(out, k_rows, o_rows, voxel)
        pair_id[o_rows[match[1]]] = pair_id[k_rows[match[0]]]
        reason[o_rows[match[1]]] = reason[k_rows[match[0]]]
    out["pair_id"] = pair_id
    out["pair_reason"] = reason
    out["pair_cost"] = cost
    return out


def _match_other_channel(
    table: pd.DataFrame, k_rows: np.ndarray, o_rows: np.ndarray, voxel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into k_rows, o_rows) of kinetochore/other-channel rows that match."""
    cols = ["t", "z", "y", "x"]
    k = table.iloc[k_rows][cols].to_numpy(dtype=float)
    o = table.iloc[o_rows][cols].to_numpy(dtype=float)
    res = two_colour_delta(k, o, voxel)
    return res.egfp_index, res.mcherry_index


# --------------------------------------------------------------------------- delta


@dataclass
class DeltaResult:
    """EGFP–mCherry pairs and their delta vectors.

    Attributes
    ----------
    egfp_index, mcherry_index : (K,) int arrays
        Matched rows of the EGFP and the mCherry inputs.
    delta_nm : (K, 3) float array
        mCherry − EGFP − chromatic shift, (z, y, x) in nm.
    shift_nm : (3,) float array
        Chromatic shift (mCherry − EGFP) removed, (z, y, x) in nm.
    shift_estimated : bool
        The shift was estimated from the data (median offset).
    n_egfp, n_mcherry : int
    """

    egfp_index: np.ndarray
    mcherry_index: np.ndarray
    delta_nm: np.ndarray
    shift_nm: np.ndarray
    shift_estimated: bool
    n_egfp: int
    n_mcherry: int

    @property
    def norm_nm(self) -> np.ndarray:
        """(K,) length of each delta vector in nm."""
        return np.linalg.norm(self.delta_nm, axis=1)


def _match_frames(
    egfp: np.ndarray,
    mch: np.ndarray,
    voxel: np.ndarray,
    cutoff_um: float,
    shift_um: np.ndarray,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    from napari_kinetochores.analysis.matching import match_points

    fe = _as_frames(egfp[:, 0], len(egfp))
    fm = _as_frames(mch[:, 0], len(mch))
    shift_vox = shift_um / voxel
    out_e, out_m = [], []
    common = np.intersect1d(np.unique(fe), np.unique(fm))
    for frame in _progress(common, progress, "delta"):
        ie = np.flatnonzero(fe == frame)
        im = np.flatnonzero(fm == frame)
        res = match_points(egfp[ie, 1:] + shift_vox, mch[im, 1:], voxel, cutoff_um)
        out_e.append(ie[res.pred_indices])
        out_m.append(im[res.gt_indices])
    if not out_e:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(out_e).astype(np.int64), np.concatenate(out_m).astype(np.int64)


def _median_shift(offsets: np.ndarray, t: np.ndarray, pair: np.ndarray | None) -> np.ndarray:
    """Median offset (µm): over sister pairs of their mean offset when possible."""
    if pair is not None:
        partner = sister_rows(t, pair)
        first = np.flatnonzero(partner > np.arange(len(partner)))
        if len(first) >= 3:
            return np.median((offsets[first] + offsets[partner[first]]) / 2.0, axis=0)
    return np.median(offsets, axis=0)


def two_colour_delta(
    egfp_tzyx: np.ndarray,
    mcherry_tzyx: np.ndarray,
    voxel_size_um: Sequence[float],
    *,
    cutoff_um: float = DEFAULT_DELTA_CUTOFF_UM,
    chromatic_shift_nm: Sequence[float] | None = None,
    search_um: float | None = None,
    egfp_pair_id: np.ndarray | Sequence[int] | None = None,
    progress: bool = False,
) -> DeltaResult:
    """Pair EGFP with mCherry spots one-to-one and measure the delta in nm.

    With no ``chromatic_shift_nm`` the shift is estimated from the data: a
    first one-to-one matching within ``search_um`` (default
    ``max(2 × cutoff, 0.5 µm)``), the median offset, then the final matching
    within ``cutoff_um`` after removing it, and the median again (twice).
    When sister pairs are known (``egfp_pair_id``), the median is taken over
    the pairs of the mean offset of the two sisters: their true deltas point
    in opposite directions and cancel, so the estimate does not depend on how
    the deltas are oriented (with at least 3 such pairs; else over spots).

    Parameters
    ----------
    egfp_tzyx : (N, 4) array
        EGFP spots (t, z, y, x) in voxels.
    mcherry_tzyx : (M, 4) array
        mCherry spots (t, z, y, x) in voxels.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    cutoff_um : float
        Largest EGFP–mCherry distance (after correction) that pairs, in µm.
    chromatic_shift_nm : (3,) sequence, optional
        Known chromatic shift mCherry − EGFP, (z, y, x) in nm.
    search_um : float, optional
        Search radius of the first matching used to estimate the shift.
    egfp_pair_id : (N,) int array, optional
        Sister-pair id of each EGFP spot (-1: unpaired), for the estimate.
    progress : bool
        tqdm progress bar over frames.

    Returns
    -------
    DeltaResult

    Examples
    --------
    >>> egfp = np.array([[0, 10, 20, 20], [0, 10, 40, 40]], dtype=float)
    >>> mch = egfp + [0, 0, 0.5, 0]  # 65 nm along y
    >>> res = two_colour_delta(egfp, mch, (0.3, 0.13, 0.13), chromatic_shift_nm=(0, 0, 0))
    >>> np.round(res.delta_nm, 1).tolist()
    [[0.0, 65.0, 0.0], [0.0, 65.0, 0.0]]
    """
    voxel = _voxel(voxel_size_um)
    if not cutoff_um > 0:
        raise InputError(f"the delta cutoff must be > 0 µm, got {cutoff_um}")
    egfp = np.asarray(egfp_tzyx, dtype=np.float64).reshape(-1, 4)
    mch = np.asarray(mcherry_tzyx, dtype=np.float64).reshape(-1, 4)
    for arr, name in ((egfp, "EGFP spots"), (mch, "mCherry spots")):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name} contain NaN or infinite coordinates")
    estimated = chromatic_shift_nm is None
    if estimated:
        shift_um = np.zeros(3)
        radius = max(2.0 * cutoff_um, 0.5) if search_um is None else float(search_um)
        pairs = None
        if egfp_pair_id is not None:
            pairs = np.asarray(egfp_pair_id, dtype=np.int64).reshape(-1)
            if pairs.shape != (len(egfp),):
                raise InputError(f"egfp_pair_id must have one value per EGFP spot ({len(egfp)})")
        for r in (radius, cutoff_um, cutoff_um):
            ie, im = _match_frames(egfp, mch, voxel, r, shift_um)
            if len(ie) == 0:
                break
            offsets = (mch[im, 1:] - egfp[ie, 1:]) * voxel
            shift_um = _median_shift(offsets, egfp[ie, 0], None if pairs is None else pairs[ie])
    else:
        shift_um = np.asarray(chromatic_shift_nm, dtype=np.float64).reshape(3) / 1000.0
        if not np.all(np.isfinite(shift_um)):
            raise InputError(
                f"the chromatic shift must be 3 finite numbers, got {chromatic_shift_nm}"
            )
    ie, im = _match_frames(egfp, mch, voxel, cutoff_um, shift_um, progress)
    delta_um = (mch[im, 1:] - egfp[ie, 1:]) * voxel - shift_um
    order = np.lexsort((ie,))
    return DeltaResult(
        egfp_index=ie[order],
        mcherry_index=im[order],
        delta_nm=delta_um[order] * 1000.0,
        shift_nm=shift_um * 1000.0,
        shift_estimated=estimated,
        n_egfp=len(egfp),
        n_mcherry=len(mch),
    )
