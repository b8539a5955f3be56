"""One-to-one matching of detections to reference points, in physical units.

The matching is the one defined in DESIGN.md: an optimal one-to-one assignment
on the physical Euclidean distance ``sqrt(sum((Δ · voxel_size_um)²))`` with a
cutoff in µm. Among all one-to-one matchings whose pairs are closer than the
cutoff it first maximises the number of matched pairs and then minimises their
summed distance.

It scales to 1e5 × 1e5 points: candidate pairs come from a KD-tree, and the
assignment is solved on a sparse graph
(:func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`), never on a
dense N × M matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from napari_kinetochores.analysis.inputs import kinetochore_rows, time_paired, voxel_array
from napari_kinetochores.errors import InputError

DEFAULT_CUTOFF_UM = 0.3
REPORTED_CUTOFFS_UM = (0.15, 0.3)


@dataclass
class MatchResult:
    """Outcome of matching predicted points to reference points.

    Attributes
    ----------
    pred_indices, gt_indices : (K,) int arrays
        Row indices of matched predictions and reference points, pairwise.
    distances_um : (K,) float array
        Physical distance of each matched pair, in µm.
    offsets_um : (K, 3) float array
        Prediction minus reference, per axis (z, y, x), in µm.
    n_pred, n_gt : int
        Number of predicted and reference points.
    cutoff_um : float
        Largest distance at which a pair may match.
    """

    pred_indices: np.ndarray
    gt_indices: np.ndarray
    distances_um: np.ndarray
    offsets_um: np.ndarray
    n_pred: int
    n_gt: int
    cutoff_um: float

    @property
    def tp(self) -> int:
        return int(self.pred_indices.size)

    @property
    def fp(self) -> int:
        return self.n_pred - self.tp

    @property
    def fn(self) -> int:
        return self.n_gt - self.tp

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else (1.0 if self.n_gt == 0 else 0.0)

    @property
    def recall(self) -> float:
        return self.tp / self.n_gt if self.n_gt else (1.0 if self.n_pred == 0 else 0.0)

    @property
    def f1(self) -> float:
        denominator = self.n_pred + self.n_gt
        return 2 * self.tp / denominator if denominator else 1.0


def _as_points(points: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 3))
    if array.ndim != 2 or array.shape[1] != 3:
        raise InputError(f"{name} must have shape (N, 3) as (z, y, x) voxels, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} contains NaN or infinite coordinates")
    return array


def match_points(
    pred_zyx: np.ndarray,
    gt_zyx: np.ndarray,
    voxel_size_um: Sequence[float],
    cutoff_um: float = DEFAULT_CUTOFF_UM,
) -> MatchResult:
    """Match predicted to reference points one-to-one within a physical cutoff.

    Parameters
    ----------
    pred_zyx : (N, 3) array
        Predicted positions (z, y, x) in voxels.
    gt_zyx : (M, 3) array
        Reference positions (z, y, x) in voxels.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    cutoff_um : float
        Pairs farther apart than this (in µm) never match.

    Returns
    -------
    MatchResult
        The optimal matching: the largest number of pairs within the cutoff,
        and among those the smallest summed distance.

    Examples
    --------
    >>> pred = np.array([[10.0, 20.0, 20.0], [10.0, 40.0, 40.0]])
    >>> gt = np.array([[10.0, 20.5, 20.0]])
    >>> result = match_points(pred, gt, (0.3, 0.13, 0.13))
    >>> result.tp, result.fp, result.fn
    (1, 1, 0)
    >>> round(float(result.distances_um[0]), 3)
    0.065
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching
    from scipy.spatial import cKDTree

    pred = _as_points(pred_zyx, "predicted points")
    gt = _as_points(gt_zyx, "reference points")
    voxel = voxel_array(voxel_size_um)
    if not cutoff_um > 0:
        raise InputError(f"cutoff must be > 0 µm, got {cutoff_um}")
    n_pred, n_gt = len(pred), len(gt)
    empty = MatchResult(
        np.zeros(0, int), np.zeros(0, int), np.zeros(0), np.zeros((0, 3)), n_pred, n_gt, cutoff_um
    )
    if n_pred == 0 or n_gt == 0:
        return empty

    pred_um, gt_um = pred * voxel, gt * voxel
    candidates = cKDTree(pred_um).sparse_distance_matrix(
        cKDTree(gt_um), cutoff_um, output_type="ndarray"
    )
    if candidates.size == 0:
        return empty
    rows = candidates["i"].astype(np.int64)
    cols = candidates["j"].astype(np.int64)
    dists = candidates["v"].astype(np.float64)

    # Connected components of the candidate graph: components with a single
    # edge are solved at once; only the rest go to the sparse assignment.
    n_nodes = n_pred + n_gt
    graph = coo_matrix((np.ones_like(dists), (rows, cols + n_pred)), shape=(n_nodes, n_nodes))
    _, component = connected_components(graph, directed=False)
    edges_per_component = np.bincount(component[rows], minlength=n_nodes)
    trivial = edges_per_component[component[rows]] == 1

    matched_pred = [rows[trivial]]
    matched_gt = [cols[trivial]]
    hard = ~trivial
    if np.any(hard):
        hard_pred, hard_gt = _solve_sparse_assignment(
            rows[hard], cols[hard], dists[hard], cutoff_um, min_weight_full_bipartite_matching
        )
        matched_pred.append(hard_pred)
        matched_gt.append(hard_gt)
    pred_indices = np.concatenate(matched_pred)
    gt_indices = np.concatenate(matched_gt)
    order = np.argsort(gt_indices, kind="stable")
    pred_indices, gt_indices = pred_indices[order], gt_indices[order]
    offsets = pred_um[pred_indices] - gt_um[gt_indices]
    return MatchResult(
        pred_indices,
        gt_indices,
        np.sqrt(np.sum(offsets**2, axis=1)),
        offsets,
        n_pred,
        n_gt,
        cutoff_um,
    )


def _solve_sparse_assignment(rows, cols, dists, cutoff_um, solver):
    """Maximum-cardinality, minimum-distance matching on a sparse bipartite graph.

    The graph is made square and always perfectly matchable by adding, for
    every prediction, a private "unmatched" partner, and for every reference
    point one too; each unmatched choice costs ``penalty``. Dummy nodes are
    linked to each other along the transposed candidate edges so that any
    partial matching extends to a perfect one. With ``2 * penalty`` larger
    than any possible sum of distances, the optimum has the most real pairs,
    then the least summed distance. A constant +1 on every edge keeps all
    weights non-zero (a perfect matching has a fixed number of edges, so this
    does not change the optimum).
    """
    from scipy.sparse import csr_matrix

    pred_ids, rows_local = np.unique(rows, return_inverse=True)
    gt_ids, cols_local = np.unique(cols, return_inverse=True)
    n_p, n_g = len(pred_ids), len(gt_ids)
    penalty = cutoff_um * (min(n_p, n_g) + 1)
    size = n_p + n_g
    real_r, real_c, real_w = rows_local, cols_local, dists + 1.0
    dummy_gt_r = np.arange(n_p)
    dummy_gt_c = n_g + np.arange(n_p)
    dummy_pred_r = n_p + np.arange(n_g)
    dummy_pred_c = np.arange(n_g)
    dd_r = n_p + cols_local
    dd_c = n_g + rows_local
    r = np.concatenate([real_r, dummy_gt_r, dummy_pred_r, dd_r])
    c = np.concatenate([real_c, dummy_gt_c, dummy_pred_c, dd_c])
    w = np.concatenate(
        [real_w, np.full(n_p, penalty + 1.0), np.full(n_g, penalty + 1.0), np.ones(len(rows))]
    )
    biadjacency = csr_matrix((w, (r, c)), shape=(size, size))
    row_ind, col_ind = solver(biadjacency)
    real = (row_ind < n_p) & (col_ind < n_g)
    return pred_ids[row_ind[real]], gt_ids[col_ind[real]]


def localisation_errors_nm(result: MatchResult) -> dict[str, float]:
    """Localisation error statistics of matched pairs, in nm.

    Returns the median, mean and 95th percentile of the 3D distance, and the
    median absolute error per axis (z, y, x). All NaN when nothing matched.
    """
    distances_nm = result.distances_um * 1000.0
    offsets_nm = np.abs(result.offsets_um) * 1000.0
    if distances_nm.size == 0:
        nan = float("nan")
        return {
            k: nan
            for k in ("median_nm", "mean_nm", "p95_nm", "median_z_nm", "median_y_nm", "median_x_nm")
        }
    return {
        "median_nm": float(np.median(distances_nm)),
        "mean_nm": float(np.mean(distances_nm)),
        "p95_nm": float(np.percentile(distances_nm, 95)),
        "median_z_nm": float(np.median(offsets_nm[:, 0])),
        "median_y_nm": float(np.median(offsets_nm[:, 1])),
        "median_x_nm": float(np.median(offsets_nm[:, 2])),
    }


def error_summary(overall: dict, cutoff_um: float, *, detail: bool = True) -> str:
    """The localisation errors of an evaluation in words, "no matches" when nothing matched.

    Parameters
    ----------
    overall : dict
        :attr:`Evaluation.overall`.
    cutoff_um : float
        The main cutoff (µm) the errors were computed at.
    detail : bool
        Mean, 95th percentile and per-axis medians too (else the median only).

    Examples
    --------
    >>> error_summary({"tp@0.3": 0, "median_nm": float("nan")}, 0.3)
    'no matches'
    >>> error_summary({"tp@0.3": 5, "median_nm": 21.04}, 0.3, detail=False)
    'median error 21.0 nm'
    """
    o = overall
    if not o[f"tp@{cutoff_um:g}"]:
        return "no matches"
    if not detail:
        return f"median error {o['median_nm']:.1f} nm"
    return (
        f"median {o['median_nm']:.1f} nm, mean {o['mean_nm']:.1f} nm, p95 {o['p95_nm']:.1f} nm "
        f"(z {o['median_z_nm']:.1f}, y {o['median_y_nm']:.1f}, x {o['median_x_nm']:.1f} nm)"
    )


@dataclass
class Evaluation:
    """Detection metrics overall and per time point.

    Attributes
    ----------
    overall : dict
        ``f1@<cutoff>``, ``precision@…``, ``recall@…``, ``tp@…``, ``fp@…``,
        ``fn@…`` for each cutoff, and the localisation errors (nm) at the
        main cutoff.
    per_frame : pandas.DataFrame
        One row per time point with the same columns.
    cutoffs_um : tuple of float
    main_cutoff_um : float
    matches : dict
        ``{t: MatchResult}`` at the main cutoff, with row indices into the
        per-frame subsets of the input tables.
    """

    overall: dict[str, float]
    per_frame: pd.DataFrame
    cutoffs_um: tuple[float, ...]
    main_cutoff_um: float
    matches: dict[int, MatchResult] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "cutoffs_um": list(self.cutoffs_um),
            "main_cutoff_um": self.main_cutoff_um,
            "overall": self.overall,
            "per_frame": self.per_frame.to_dict(orient="records"),
        }


def _counts(results: list[MatchResult], cutoff: float) -> dict[str, float]:
    tp = sum(r.tp for r in results)
    n_pred = sum(r.n_pred for r in results)
    n_gt = sum(r.n_gt for r in results)
    combined = MatchResult(
        np.zeros(tp, int), np.zeros(tp, int), np.zeros(tp), np.zeros((tp, 3)), n_pred, n_gt, cutoff
    )
    key = f"{cutoff:g}"
    return {
        f"tp@{key}": tp,
        f"fp@{key}": combined.fp,
        f"fn@{key}": combined.fn,
        f"precision@{key}": combined.precision,
        f"recall@{key}": combined.recall,
        f"f1@{key}": combined.f1,
    }


def evaluate_points(
    pred: pd.DataFrame,
    gt: pd.DataFrame,
    voxel_size_um: Sequence[float],
    cutoffs_um: Sequence[float] = REPORTED_CUTOFFS_UM,
    main_cutoff_um: float = DEFAULT_CUTOFF_UM,
    channel: int | None = 0,
) -> Evaluation:
    """Match two point tables frame by frame and compute the detection metrics.

    Parameters
    ----------
    pred, gt : pandas.DataFrame
        Point tables in the project's schema (columns ``t, z, y, x`` in
        voxels; ``channel`` optional).
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    cutoffs_um : sequence of float
        Cutoffs (µm) at which precision, recall and F1 are reported.
    main_cutoff_um : float
        Cutoff (µm) used for the localisation errors and ``matches``.
    channel : int or None
        Keep only rows of this channel in tables that have a ``channel``
        column (0 = the kinetochore channel). None keeps all rows.

    Returns
    -------
    Evaluation

    Raises
    ------
    InputError
        Missing columns, a text ``channel`` cell, or one table without a time
        column (``attrs["has_time"]`` False, as ``read_points`` sets it) while
        the other spans several frames.

    Warns
    -----
    UserWarning
        One table has no time column and the other spans one frame: the
        time-less points are taken as that frame
        (:func:`~napari_kinetochores.analysis.inputs.time_paired`).
    """
    cutoffs = tuple(sorted(set(float(c) for c in cutoffs_um) | {float(main_cutoff_um)}))

    def select(table: pd.DataFrame, name: str) -> pd.DataFrame:
        missing = [c for c in ("t", "z", "y", "x") if c not in table.columns]
        if missing:
            raise InputError(f"{name} table lacks columns {missing}")
        return table[kinetochore_rows(table, channel, name)]

    pred, gt = time_paired(select(pred, "prediction"), select(gt, "reference"))
    frames = sorted(set(np.round(pred["t"]).astype(int)) | set(np.round(gt["t"]).astype(int)))
    per_cutoff: dict[float, list[MatchResult]] = {c: [] for c in cutoffs}
    rows = []
    matches: dict[int, MatchResult] = {}
    for t in frames:
        pred_t = pred[np.round(pred["t"]).astype(int) == t][["z", "y", "x"]].to_numpy()
        gt_t = gt[np.round(gt["t"]).astype(int) == t][["z", "y", "x"]].to_numpy()
        row: dict[str, float] = {"t": t, "n_pred": len(pred_t), "n_gt": len(gt_t)}
        for cutoff in cutoffs:
            result = match_points(pred_t, gt_t, voxel_size_um, cutoff)
            per_cutoff[cutoff].append(result)
            row.update(_counts([result], cutoff))
            if cutoff == main_cutoff_um:
                matches[t] = result
                row.update(localisation_errors_nm(result))
        rows.append(row)

    overall: dict[str, float] = {"n_frames": len(frames), "n_pred": len(pred), "n_gt": len(gt)}
    for cutoff in cutoffs:
        overall.update(_counts(per_cutoff[cutoff], cutoff))
    main = per_cutoff[float(main_cutoff_um)]
    pooled = MatchResult(
        np.concatenate([r.pred_indices for r in main]) if main else np.zeros(0, int),
        np.concatenate([r.gt_indices for r in main]) if main else np.zeros(0, int),
        np.concatenate([r.distances_um for r in main]) if main else np.zeros(0),
        np.concatenate([r.offsets_um for r in main]) if main else np.zeros((0, 3)),
        len(pred),
        len(gt),
        main_cutoff_um,
    )
    overall.update(localisation_errors_nm(pooled))
    return Evaluation(overall, pd.DataFrame(rows), cutoffs, float(main_cutoff_um), matches)


def match_table(
    pred: pd.DataFrame,
    gt: pd.DataFrame,
    voxel_size_um: Sequence[float],
    cutoff_um: float = DEFAULT_CUTOFF_UM,
    channel: int | None = 0,
) -> pd.DataFrame:
    """One row per prediction and per missed reference point, with its match.

    The matching is the one of :func:`evaluate_points` (same frames, same
    channel selection, same cutoff), so the TP/FP/FN counts of the table
    equal its metrics.

    Parameters
    ----------
    pred, gt : pandas.DataFrame
        Point tables in the project's schema (``t, z, y, x`` in voxels;
        ``channel`` optional).
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    cutoff_um : float
        Matching cutoff in µm.
    channel : int or None
        Keep only rows of this channel (tables with a ``channel`` column);
        None keeps all rows.

    Returns
    -------
    pandas.DataFrame
        Columns ``t, z, y, x`` (the prediction; the reference point for a
        false negative), ``z_um, y_um, x_um``, ``status`` (``"TP"``, ``"FP"``
        or ``"FN"``), ``ref_z, ref_y, ref_x`` and ``ref_z_um, ref_y_um,
        ref_x_um`` (the matched reference point; NaN for FP), ``distance_nm``
        and ``dz_nm, dy_nm, dx_nm`` (prediction minus reference; NaN unless
        TP), ``pred_row`` and ``ref_row`` (positions of the rows in ``pred``
        and ``gt``, -1 for none). Sorted by frame, predictions first in their
        table order, then the misses.

    Examples
    --------
    >>> from napari_kinetochores.io import points_frame
    >>> pred = points_frame([[0, 10, 20, 20], [0, 10, 40, 40]], (0.3, 0.13, 0.13))
    >>> gt = points_frame([[0, 10, 20.5, 20], [0, 5, 5, 5]], (0.3, 0.13, 0.13))
    >>> match_table(pred, gt, (0.3, 0.13, 0.13))["status"].tolist()
    ['TP', 'FP', 'FN']
    """
    voxel = voxel_array(voxel_size_um)
    pred, gt = time_paired(pred, gt)
    evaluation = evaluate_points(
        pred, gt, voxel, cutoffs_um=(cutoff_um,), main_cutoff_um=cutoff_um, channel=channel
    )

    def selected_rows(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        keep = kinetochore_rows(table, channel)
        return keep, np.round(table["t"].to_numpy(float)).astype(int)

    pred_keep, pred_t = selected_rows(pred)
    gt_keep, gt_t = selected_rows(gt)
    pred_zyx = pred[["z", "y", "x"]].to_numpy(float)
    gt_zyx = gt[["z", "y", "x"]].to_numpy(float)
    parts = []
    for t, result in sorted(evaluation.matches.items()):
        p_rows = np.flatnonzero(pred_keep & (pred_t == t))
        g_rows = np.flatnonzero(gt_keep & (gt_t == t))
        ref_of_pred = np.full(len(p_rows), -1)
        ref_of_pred[result.pred_indices] = g_rows[result.gt_indices]
        distance = np.full(len(p_rows), np.nan)
        distance[result.pred_indices] = result.distances_um * 1000
        offsets = np.full((len(p_rows), 3), np.nan)
        offsets[result.pred_indices] = result.offsets_um * 1000
        missed = np.setdiff1d(np.arange(len(g_rows)), result.gt_indices)
        n_miss = len(missed)
        rows = pd.DataFrame(
            {
                "t": np.full(len(p_rows) + n_miss, float(t)),
                "status": ["TP" if r >= 0 else "FP" for r in ref_of_pred] + ["FN"] * n_miss,
                "pred_row": np.r_[p_rows, np.full(n_miss, -1)].astype(np.int64),
                "ref_row": np.r_[ref_of_pred, g_rows[missed]].astype(np.int64),
                "distance_nm": np.r_[distance, np.full(n_miss, np.nan)],
            }
        )
        coords = np.vstack([pred_zyx[p_rows], gt_zyx[g_rows[missed]]])
        rows[["z", "y", "x"]] = coords
        ref = np.full((len(rows), 3), np.nan)
        has_ref = rows["ref_row"].to_numpy() >= 0
        ref[has_ref] = gt_zyx[rows["ref_row"].to_numpy()[has_ref]]
        rows[["ref_z", "ref_y", "ref_x"]] = ref
        rows[["dz_nm", "dy_nm", "dx_nm"]] = np.vstack([offsets, np.full((n_miss, 3), np.nan)])
        parts.append(rows)
    columns = ["t", "z", "y", "x", "status", "ref_z", "ref_y", "ref_x", "distance_nm"]
    columns += ["dz_nm", "dy_nm", "dx_nm", "pred_row", "ref_row"]
    if not parts:
        table = pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
        table["status"] = table["status"].astype(object)
    else:
        table = pd.concat(parts, ignore_index=True)[columns]
    for axis, v in zip(("z", "y", "x"), voxel, strict=True):
        table.insert(table.columns.get_loc("status"), f"{axis}_um", table[axis] * v)
        table.insert(
            table.columns.get_loc("distance_nm"), f"ref_{axis}_um", table[f"ref_{axis}"] * v
        )
    return table


def matched_export_table(
    pred: pd.DataFrame,
    gt: pd.DataFrame,
    voxel_size_um: Sequence[float],
    cutoff_um: float = DEFAULT_CUTOFF_UM,
    channel: int | None = 0,
) -> pd.DataFrame:
    """The matched-points export: :func:`match_table` that keeps the points' own columns.

    The match (TP, FP, FN) goes to ``match_status``, so ``status`` stays the
    correction status of *Correct labels* (auto, added, moved). Every row
    carries the other columns of the point it shows (``status``, ``score``,
    ``channel``, ``pair_id``, ``track_id``, …): the prediction's for TP and
    FP rows, the reference point's for FN rows (empty where that table lacks
    the column).

    Parameters
    ----------
    pred, gt : pandas.DataFrame
        Point tables (``t, z, y, x`` voxels, any other columns).
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    cutoff_um : float
        Matching cutoff in µm.
    channel : int or None
        Keep only rows of this channel; None keeps all rows.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`match_table` with ``status`` renamed
        ``match_status``, and the points' own columns before it.

    Examples
    --------
    >>> from napari_kinetochores.io import points_frame
    >>> pred = points_frame([[0, 10, 20, 20]], (0.3, 0.13, 0.13), status=["moved"])
    >>> gt = points_frame([[0, 10, 20.5, 20], [0, 5, 5, 5]], (0.3, 0.13, 0.13))
    >>> table = matched_export_table(pred, gt, (0.3, 0.13, 0.13))
    >>> table[["match_status", "status"]].values.tolist()
    [['TP', 'moved'], ['FN', nan]]
    """
    table = match_table(pred, gt, voxel_size_um, cutoff_um, channel)
    table = table.rename(columns={"status": "match_status"})
    coords = {"t", "z", "y", "x", "z_um", "y_um", "x_um"}
    own = [c for c in dict.fromkeys([*pred.columns, *gt.columns]) if c not in coords]
    own = [c for c in own if c not in table.columns]
    pred_rows, ref_rows = table["pred_row"].to_numpy(), table["ref_row"].to_numpy()
    missed = pred_rows < 0
    parts = [
        source.iloc[rows][[c for c in own if c in source.columns]].set_axis(positions)
        for source, rows, positions in (
            (pred, pred_rows[~missed], np.flatnonzero(~missed)),
            (gt, ref_rows[missed], np.flatnonzero(missed)),
        )
    ]
    values = pd.concat(parts).sort_index().reindex(index=range(len(table)), columns=own)
    at = table.columns.get_loc("match_status")
    return pd.concat([table.iloc[:, :at], values, table.iloc[:, at:]], axis=1)
