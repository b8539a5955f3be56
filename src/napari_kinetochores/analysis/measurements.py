"""Kinetochore measurements per kinetochore and frame, and accuracy metrics.

:func:`measure_table` gathers, for every kinetochore in every frame: its
position (µm), pair and track ids, the inter-sister (K–K) distance, the
angle of the sister axis to the plate normal, the signed distance to the
metaphase plate, the plate's centre, normal and position, and, when mCherry
spots are given, the two-colour delta (vector and length in nm, and its
component along the sister axis). :func:`write_measurements` exports it as
CSV (temporary file + rename, via :func:`~napari_kinetochores.io.write_points`,
so the table stays a valid point table that napari and ``read_points`` open).

:func:`perturb_points`, :func:`pairing_accuracy` and
:func:`delta_errors_nm` measure pairing, tracking and delta accuracy on
simulated movies, whose ground truth knows the true pairs and tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from napari_kinetochores.analysis.pairing import (
    DEFAULT_DELTA_CUTOFF_UM,
    PLATE_COLUMNS,
    PairingParams,
    _as_frames,
    _coords_um,
    _per_point,
    _voxel,
    fit_plates,
    kinetochore_rows,
    pair_table,
    sister_rows,
    two_colour_delta,
)
from napari_kinetochores.errors import InputError

__all__ = [
    "MEASUREMENT_COLUMNS",
    "delta_errors_nm",
    "measure_table",
    "pairing_accuracy",
    "perturb_points",
    "write_measurements",
]

MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "t",
    "z",
    "y",
    "x",
    "z_um",
    "y_um",
    "x_um",
    "channel",
    "pair_id",
    "track_id",
    "pair_reason",
    "sister_row",
    "kk_distance_um",
    "kk_angle_deg",
    "plate_distance_um",
    *PLATE_COLUMNS[1:],
    "delta_z_nm",
    "delta_y_nm",
    "delta_x_nm",
    "delta_nm",
    "delta_1d_nm",
    "chromatic_shift_z_nm",
    "chromatic_shift_y_nm",
    "chromatic_shift_x_nm",
)
"""Columns of :func:`measure_table`, in order (delta columns only with mCherry)."""


def measure_table(
    points: pd.DataFrame,
    voxel_size_um: Sequence[float],
    *,
    mcherry: pd.DataFrame | None = None,
    channel: int | None = 0,
    mcherry_channel: int = 1,
    pairing: PairingParams | None = None,
    delta_cutoff_um: float = DEFAULT_DELTA_CUTOFF_UM,
    chromatic_shift_nm: Sequence[float] | None = None,
    plates: pd.DataFrame | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Measurements per kinetochore and frame.

    Pairs come from the table's ``pair_id`` column when it has one, else they
    are computed with :func:`~napari_kinetochores.analysis.pairing.pair_table` (over
    whole tracks when there is a ``track_id`` column).

    Parameters
    ----------
    points : pandas.DataFrame
        Point table (package schema, voxel coordinates ``t, z, y, x``; rows in
        any order). Rows of channel ``channel`` are the kinetochores; when
        ``mcherry`` is None, rows of ``mcherry_channel`` are the mCherry spots.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    mcherry : pandas.DataFrame, optional
        mCherry spots (point table) when they are in a separate table.
    channel : int or None
        Kinetochore channel; None: every row of ``points`` is a kinetochore.
    mcherry_channel : int
        Channel of the mCherry rows in ``points``.
    pairing : PairingParams, optional
        Parameters used when pairs must be computed.
    delta_cutoff_um : float
        EGFP–mCherry matching cutoff (µm) after chromatic correction.
    chromatic_shift_nm : (3,) sequence, optional
        Known chromatic shift (mCherry − EGFP, z, y, x, nm); estimated from the
        data when None: the median over sister pairs of the pair's mean
        offset (sisters' deltas cancel), see
        :func:`~napari_kinetochores.analysis.pairing.two_colour_delta`.
    plates : pandas.DataFrame, optional
        Per-frame plates from :func:`~napari_kinetochores.analysis.pairing.fit_plates`;
        fitted when None (frames with too few spots warn and get NaN).
    progress : bool
        tqdm progress bars over frames.

    Returns
    -------
    pandas.DataFrame
        One row per kinetochore and frame, sorted by ``t``, ``pair_id``,
        ``track_id``, with the columns of :data:`MEASUREMENT_COLUMNS`:
        positions in voxels and µm; ``pair_id``/``track_id`` (-1: none);
        ``sister_row`` (position in this table of the sister in the same
        frame, -1: none); ``kk_distance_um`` (NaN without a sister);
        ``kk_angle_deg`` (sister axis to plate normal); ``plate_distance_um``
        (signed, along the normal); the frame's plate; with mCherry the delta
        ``delta_{z,y,x}_nm``, ``delta_nm`` (length), ``delta_1d_nm`` (along the
        sister axis, positive away from the sister) and the chromatic shift
        removed. The index is the index of the kinetochore rows in
        ``points``. ``attrs`` holds ``"plates"`` and ``"chromatic_shift_nm"``.

    Examples
    --------
    >>> from napari_kinetochores.io import points_frame
    >>> vox = (0.3, 0.13, 0.13)
    >>> pairs = [[0, z, y, x] for y in (20, 40) for x in (20, 40) for z in (10, 13)]
    >>> table = measure_table(points_frame(pairs, vox), vox)
    >>> table["pair_id"].tolist()
    [0, 0, 1, 1, 2, 2, 3, 3]
    >>> table["kk_distance_um"].round(2).tolist()
    [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    >>> table["plate_distance_um"].abs().round(2).tolist()
    [0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45]
    """
    voxel = _voxel(voxel_size_um)
    if "t" not in points.columns:
        points = points.assign(t=0.0)
    kin_mask = kinetochore_rows(points, channel)
    kin = points[kin_mask].copy()
    if mcherry is None and channel is not None and "channel" in points.columns:
        values = pd.to_numeric(points["channel"], errors="coerce").to_numpy()
        mch = points[values == mcherry_channel]
        mch = mch if len(mch) else None
    else:
        mch = mcherry
    pts = _coords_um(kin, voxel)
    frames = _as_frames(kin["t"].to_numpy(), len(kin))
    if plates is None:
        plates = fit_plates(frames, pts, progress=progress)

    if "pair_id" not in kin.columns:
        kin = pair_table(kin, voxel, params=pairing, channel=None, plates=plates, progress=progress)
    pair = pd.to_numeric(kin["pair_id"], errors="coerce").fillna(-1).to_numpy(np.int64)
    track = (
        pd.to_numeric(kin["track_id"], errors="coerce").fillna(-1).to_numpy(np.int64)
        if "track_id" in kin.columns
        else np.full(len(kin), -1, dtype=np.int64)
    )
    sister = sister_rows(frames, pair)

    centre = _per_point(frames, plates, list(PLATE_COLUMNS[1:4]))
    normal = _per_point(frames, plates, list(PLATE_COLUMNS[4:7]))
    plate_other = _per_point(frames, plates, list(PLATE_COLUMNS[7:]))

    has = sister >= 0
    kk_vec = np.full((len(kin), 3), np.nan)
    kk_vec[has] = pts[has] - pts[sister[has]]  # from the sister to this kinetochore
    kk = np.linalg.norm(kk_vec, axis=1)
    unit = kk_vec / np.where(kk > 0, kk, np.nan)[:, None]
    cos = np.abs(np.sum(unit * normal, axis=1))
    angle = np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))
    plate_dist = np.sum((pts - centre) * normal, axis=1)

    table = pd.DataFrame(index=kin.index)
    for c in ("t", "z", "y", "x"):
        table[c] = kin[c].to_numpy(dtype=float)
    for c, um in zip(("z_um", "y_um", "x_um"), pts.T, strict=True):
        table[c] = um
    if "channel" in kin.columns:
        table["channel"] = kin["channel"].to_numpy()
    table["pair_id"] = pair
    table["track_id"] = track
    if "pair_reason" in kin.columns:
        table["pair_reason"] = kin["pair_reason"].to_numpy()
    else:
        table["pair_reason"] = np.where(pair >= 0, "paired", "unpaired in input")
    table["kk_distance_um"] = kk
    table["kk_angle_deg"] = angle
    table["plate_distance_um"] = plate_dist
    for k, c in enumerate(PLATE_COLUMNS[1:4]):
        table[c] = centre[:, k]
    for k, c in enumerate(PLATE_COLUMNS[4:7]):
        table[c] = normal[:, k]
    for k, c in enumerate(PLATE_COLUMNS[7:]):
        table[c] = plate_other[:, k]
    table["plate_n_spots"] = np.nan_to_num(table["plate_n_spots"], nan=0).astype(np.int64)

    shift = None
    if mch is not None and len(mch) and len(kin):
        if "t" not in mch.columns:
            mch = mch.assign(t=0.0)
        res = two_colour_delta(
            kin[["t", "z", "y", "x"]].to_numpy(dtype=float),
            mch[["t", "z", "y", "x"]].to_numpy(dtype=float),
            voxel,
            cutoff_um=delta_cutoff_um,
            chromatic_shift_nm=chromatic_shift_nm,
            egfp_pair_id=pair,
            progress=progress,
        )
        delta = np.full((len(kin), 3), np.nan)
        delta[res.egfp_index] = res.delta_nm
        for k, a in enumerate("zyx"):
            table[f"delta_{a}_nm"] = delta[:, k]
        table["delta_nm"] = np.linalg.norm(delta, axis=1)
        table["delta_1d_nm"] = np.sum(delta * unit, axis=1)
        shift = res.shift_nm
        for k, a in enumerate("zyx"):
            table[f"chromatic_shift_{a}_nm"] = shift[k]

    order = np.lexsort((track, pair, frames))
    table = table.iloc[order]
    # sister_row: position (in the sorted table) of the sister
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    sister_sorted = sister[order]
    table.insert(
        table.columns.get_loc("pair_reason") + 1,
        "sister_row",
        np.where(sister_sorted >= 0, position[np.maximum(sister_sorted, 0)], -1),
    )
    table.attrs["plates"] = plates
    table.attrs["voxel_size_um"] = tuple(float(v) for v in voxel)
    table.attrs["chromatic_shift_nm"] = None if shift is None else tuple(float(s) for s in shift)
    return table


def write_measurements(
    path: str | Path, table: pd.DataFrame, voxel_size_um: Sequence[float]
) -> Path:
    """Write a measurements table as CSV, atomically (temporary file + rename).

    Parameters
    ----------
    path
        Output CSV.
    table
        Output of :func:`measure_table`.
    voxel_size_um
        Voxel size (z, y, x) in µm.

    Returns
    -------
    Path
    """
    from napari_kinetochores.io import write_points

    return write_points(path, table.reset_index(drop=True), voxel_size_um)


# --------------------------------------------------------------------------- simulation support


def perturb_points(
    points: pd.DataFrame,
    voxel_size_um: Sequence[float],
    *,
    noise_nm: float | Sequence[float] = 40.0,
    dropout: float = 0.03,
    seed: int = 0,
) -> pd.DataFrame:
    """Turn ground-truth points into realistic detections: noise and dropouts.

    Parameters
    ----------
    points : pandas.DataFrame
        Ground truth (e.g. ``simulate_movie(...).points``).
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    noise_nm : float or (3,) sequence
        Sd of the gaussian localisation noise per axis (z, y, x), in nm.
    dropout : float
        Probability that a point is missed (independently per point).
    seed : int
        Seed of the random generator.

    Returns
    -------
    pandas.DataFrame
        The kept rows, with the noisy ``z, y, x`` (voxels) and ``*_um`` and a
        ``true_row`` column (row position in ``points``); the index is reset.

    Examples
    --------
    >>> from napari_kinetochores.io import points_frame
    >>> gt = points_frame([[0, 10, 20, 20]] * 100, (0.3, 0.13, 0.13))
    >>> len(perturb_points(gt, (0.3, 0.13, 0.13), dropout=0.5, seed=1)) < 100
    True
    """
    voxel = _voxel(voxel_size_um)
    rng = np.random.default_rng(seed)
    sd = np.broadcast_to(np.asarray(noise_nm, dtype=float), (3,)) / 1000.0
    n = len(points)
    keep = rng.random(n) >= dropout
    noise_um = rng.standard_normal((n, 3)) * sd
    out = points.copy().reset_index(drop=True)
    out["true_row"] = np.arange(n)
    zyx = out[["z", "y", "x"]].to_numpy(dtype=float) + noise_um / voxel
    out[["z", "y", "x"]] = zyx
    for c, v in zip(("z_um", "y_um", "x_um"), (zyx * voxel).T, strict=True):
        out[c] = v
    return out[keep].reset_index(drop=True)


def pairing_accuracy(
    t: np.ndarray | Sequence[float],
    true_pair: np.ndarray | Sequence[int],
    pred_pair: np.ndarray | Sequence[int],
) -> dict[str, float]:
    """Fraction of true sister pairs recovered, frame by frame.

    A true pair in a frame (both sisters detected: two rows sharing a
    ``true_pair`` id) is recovered when the predicted pair ids of its two rows
    are equal and >= 0.

    Parameters
    ----------
    t : (N,) array
        Frame of each detection.
    true_pair : (N,) int array
        True pair id (-1: none or a false detection).
    pred_pair : (N,) int array
        Predicted pair id (-1: unpaired).

    Returns
    -------
    dict
        ``pair_recall`` (true pairs recovered / true pairs), ``pair_precision``
        (predicted pairs that are true / predicted pairs), ``n_true_pairs``,
        ``n_pred_pairs``, ``n_correct``.

    Examples
    --------
    >>> pairing_accuracy([0, 0, 0, 0], [1, 1, 2, 2], [0, 0, 1, -1])
    {'pair_recall': 0.5, 'pair_precision': 1.0, 'n_true_pairs': 2, 'n_pred_pairs': 1, 'n_correct': 1}
    """
    frames = _as_frames(t, len(np.asarray(true_pair).reshape(-1)))
    true_sister = sister_rows(frames, true_pair)
    pred_sister = sister_rows(frames, pred_pair)
    rows = np.arange(len(frames))
    true_links = rows[true_sister > rows]
    pred_links = rows[pred_sister > rows]
    correct = int(np.sum(pred_sister[true_links] == true_sister[true_links]))
    n_true, n_pred = len(true_links), len(pred_links)
    return {
        "pair_recall": correct / n_true if n_true else 1.0,
        "pair_precision": correct / n_pred if n_pred else 1.0,
        "n_true_pairs": n_true,
        "n_pred_pairs": n_pred,
        "n_correct": correct,
    }


def delta_errors_nm(
    measured_nm: np.ndarray,
    true_nm: np.ndarray,
) -> dict[str, float]:
    """Errors of measured delta vectors against the truth, in nm.

    Parameters
    ----------
    measured_nm, true_nm : (K, 3) arrays
        Delta vectors (z, y, x) in nm; rows with NaN are skipped.

    Returns
    -------
    dict
        ``median_vector_error_nm`` (median |measured − true|),
        ``median_length_error_nm`` (median ||measured| − |true||),
        ``mean_length_nm``, ``true_mean_length_nm``, ``n``.
    """
    m = np.asarray(measured_nm, dtype=float).reshape(-1, 3)
    g = np.asarray(true_nm, dtype=float).reshape(-1, 3)
    if m.shape != g.shape:
        raise InputError(f"measured and true deltas differ in shape: {m.shape} vs {g.shape}")
    ok = np.all(np.isfinite(m), axis=1) & np.all(np.isfinite(g), axis=1)
    m, g = m[ok], g[ok]
    if len(m) == 0:
        nan = float("nan")
        return {
            "median_vector_error_nm": nan,
            "median_length_error_nm": nan,
            "mean_length_nm": nan,
            "true_mean_length_nm": nan,
            "n": 0,
        }
    lm, lg = np.linalg.norm(m, axis=1), np.linalg.norm(g, axis=1)
    return {
        "median_vector_error_nm": float(np.median(np.linalg.norm(m - g, axis=1))),
        "median_length_error_nm": float(np.median(np.abs(lm - lg))),
        "mean_length_nm": float(lm.mean()),
        "true_mean_length_nm": float(lg.mean()),
        "n": int(len(m)),
    }
