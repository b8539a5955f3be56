"""Kinetochore measurements per kinetochore and frame: the one measurement pipeline.

:func:`measure_points` is what ``kinetochores measure`` and the *Pairs,
tracks and measurements* widget both run: :func:`track_and_pair` gives the
points track and sister-pair ids (by one rule for ids the table already
has), then :func:`measure_table` gathers, for every kinetochore in every
frame: its position (µm), pair and track ids, the inter-sister (K–K)
distance, the angle of the sister axis to the plate normal, the signed
distance to the metaphase plate, the plate's centre, normal and position,
and, when mCherry spots are given, the two-colour delta (vector and length in
nm, and its component along the sister axis). :func:`write_measurements`
exports it as CSV (temporary file + rename, via
:func:`~napari_kinetochores.io.write_points`, so the table stays a valid
point table that napari and ``read_points`` open). :func:`sister_pairs_table`
is the sister-pair export, with the same ids.

:func:`perturb_points`, :func:`pairing_accuracy` and
:func:`delta_errors_nm` measure pairing, tracking and delta accuracy on
simulated movies, whose ground truth knows the true pairs and tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from napari_kinetochores.analysis.delta import DEFAULT_DELTA_CUTOFF_UM, two_colour_delta
from napari_kinetochores.analysis.inputs import (
    as_frames,
    coords_um,
    kinetochore_rows,
    voxel_array,
)
from napari_kinetochores.analysis.pairing import PairingParams, pair_table, sister_rows
from napari_kinetochores.analysis.plate import PLATE_COLUMNS, fit_plates, plate_values_per_point
from napari_kinetochores.analysis.tracking import TrackingParams, stable_pair_ids, track_table
from napari_kinetochores.errors import InputError

__all__ = [
    "MEASUREMENT_COLUMNS",
    "Measurements",
    "delta_errors_nm",
    "has_ids",
    "measure_points",
    "measure_table",
    "pairing_accuracy",
    "perturb_points",
    "sister_pairs_table",
    "track_and_pair",
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

_PAIR_COLUMNS = ("pair_id", "pair_reason", "pair_cost")


# --------------------------------------------------------------------------- the pipeline


def has_ids(points: pd.DataFrame, column: str) -> bool:
    """Whether a table has ``column`` with at least one id >= 0 (all -1 counts as none).

    Examples
    --------
    >>> has_ids(pd.DataFrame({"pair_id": [-1, -1]}), "pair_id")
    False
    """
    if column not in points.columns:
        return False
    return bool((pd.to_numeric(points[column], errors="coerce").fillna(-1) >= 0).any())


def _ids(points: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(points[column], errors="coerce").fillna(-1).to_numpy(np.int64)


def _tracked(
    table: pd.DataFrame, voxel: np.ndarray, channel: int | None, tracking: TrackingParams | None
) -> pd.DataFrame:
    """``table`` with computed ``track_id``; its pair columns are left exactly as they are
    (:func:`track_table` would re-vote them with ``consistent_pair_ids``)."""
    pair_columns = [c for c in _PAIR_COLUMNS if c in table.columns]
    tracked = track_table(table.drop(columns=pair_columns), voxel, params=tracking, channel=channel)
    for column in pair_columns:
        tracked[column] = table[column].to_numpy()
    return tracked


def track_and_pair(
    points: pd.DataFrame,
    voxel_size_um: Sequence[float],
    *,
    channel: int | None = 0,
    track: bool = True,
    recompute: bool = False,
    pairing: PairingParams | None = None,
    tracking: TrackingParams | None = None,
    plates: pd.DataFrame | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Give a point table track ids and sister-pair ids (the pipeline's one rule).

    The rule for ids the table already has (a column with at least one id
    >= 0; a column of -1 only, as *Correct labels* adds, counts as none):

    * ``track_id`` is kept. Without one, and with ``track`` and more than one
      frame, the kinetochores are tracked (laptrack,
      :func:`~napari_kinetochores.analysis.tracking.track_table`).
    * ``pair_id`` is kept: these are the user's (or the reference's) pairs,
      and who is whose sister is never changed. With tracks, ids used in a
      single frame (hand-assigned pairs) are made stable along the two tracks
      by :func:`~napari_kinetochores.analysis.tracking.stable_pair_ids`; ids
      that already span frames stay as they are. Without pair ids, sisters
      are paired over whole tracks by
      :func:`~napari_kinetochores.analysis.pairing.pair_table` with
      ``pairing`` (default :class:`PairingParams`).
    * ``recompute=True`` drops both first, so pairs (and, with ``track``,
      tracks) are computed afresh.

    Parameters
    ----------
    points : pandas.DataFrame
        Point table (package schema; rows in any order).
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    channel : int or None
        Kinetochore channel; rows of other channels take the ids of the
        kinetochore they match. None: every row is a kinetochore.
    track : bool
        Track when the table has no track ids.
    recompute : bool
        Ignore the table's pair and track ids.
    pairing, tracking : PairingParams, TrackingParams, optional
    plates : pandas.DataFrame, optional
        Per-frame plates (fitted when None and pairs must be computed).
    progress : bool
        tqdm progress bars.

    Returns
    -------
    pandas.DataFrame
        A copy of ``points`` (same rows, order and index) with ``track_id``
        (when tracked or given) and ``pair_id``; ``attrs`` says where the ids
        came from: ``"pairs_from_input"``, ``"tracks_from_input"`` (bools).

    Examples
    --------
    >>> from napari_kinetochores.io import points_frame
    >>> vox = (0.3, 0.13, 0.13)
    >>> hand = points_frame([[0, 10, 20, 20], [0, 13, 20, 20]], vox, pair_id=[7, 7])
    >>> track_and_pair(hand, vox)["pair_id"].tolist()
    [7, 7]
    >>> flat = PairingParams(use_plate=False)  # two spots: too few for a plate
    >>> track_and_pair(hand, vox, recompute=True, pairing=flat)["pair_id"].tolist()
    [0, 0]
    """
    voxel = voxel_array(voxel_size_um)
    table = points if "t" in points.columns else points.assign(t=0.0)
    if recompute:
        table = table.drop(columns=[c for c in (*_PAIR_COLUMNS, "track_id") if c in table])
    tracks_in, pairs_in = has_ids(table, "track_id"), has_ids(table, "pair_id")
    if not tracks_in:
        table = table.drop(columns=[c for c in ("track_id",) if c in table.columns])
        if track and table["t"].nunique() > 1:
            table = _tracked(table, voxel, channel, tracking)
    table = table.copy()
    if pairs_in:
        if "track_id" in table.columns:
            frames = as_frames(table["t"].to_numpy(), len(table))
            table["pair_id"] = stable_pair_ids(
                frames, _ids(table, "track_id"), _ids(table, "pair_id")
            )
    else:
        table = table.drop(columns=[c for c in _PAIR_COLUMNS if c in table.columns])
        table = pair_table(
            table, voxel, params=pairing, channel=channel, plates=plates, progress=progress
        )
    table.attrs.update(pairs_from_input=pairs_in, tracks_from_input=tracks_in)
    return table


@dataclass
class Measurements:
    """Outcome of :func:`measure_points`.

    Attributes
    ----------
    table : pandas.DataFrame
        :func:`measure_table` output (one row per kinetochore and frame; its
        index is the kinetochore's index in the input).
    points : pandas.DataFrame
        The input rows (same order and index) with their ``track_id`` and
        ``pair_id``, from :func:`track_and_pair`.
    """

    table: pd.DataFrame
    points: pd.DataFrame

    @property
    def plates(self) -> pd.DataFrame:
        """Per-frame plate fits (:func:`~napari_kinetochores.analysis.plate.fit_plates`)."""
        return self.table.attrs["plates"]

    def summary(self) -> str:
        """One line for the user: rows, pairs, tracks, medians, where the pairs came from."""
        table = self.table
        n_pairs = int(table.loc[table["pair_id"] >= 0, "pair_id"].nunique())
        n_tracks = int(table.loc[table["track_id"] >= 0, "track_id"].nunique())
        source = "kept from the input" if self.points.attrs.get("pairs_from_input") else "paired"
        text = f"{len(table)} kinetochore rows, {n_pairs} pairs ({source}), {n_tracks} tracks"
        kk = table["kk_distance_um"].dropna()
        if len(kk):
            text += f"; K-K median {kk.median():.3f} µm"
        if "delta_nm" in table.columns and table["delta_nm"].notna().any():
            text += f"; delta median {table['delta_nm'].median():.1f} nm"
            shift = table.attrs.get("chromatic_shift_nm")
            if shift is not None:
                text += " (chromatic shift " + ", ".join(f"{s:.1f}" for s in shift) + " nm removed)"
        return text


def measure_points(
    points: pd.DataFrame,
    voxel_size_um: Sequence[float],
    *,
    mcherry: pd.DataFrame | None = None,
    channel: int | None = 0,
    mcherry_channel: int = 1,
    track: bool = True,
    recompute: bool = False,
    pairing: PairingParams | None = None,
    tracking: TrackingParams | None = None,
    delta_cutoff_um: float = DEFAULT_DELTA_CUTOFF_UM,
    chromatic_shift_nm: Sequence[float] | None = None,
    progress: bool = False,
) -> Measurements:
    """Track, pair and measure a point table: what the CLI and the widget both run.

    Ids follow the rule of :func:`track_and_pair` (existing pair and track ids
    are kept unless ``recompute``); the measurements are :func:`measure_table`'s.

    Parameters
    ----------
    points : pandas.DataFrame
        Point table (package schema, voxels; rows in any order). Rows of
        ``channel`` are the kinetochores; without ``mcherry``, rows of
        ``mcherry_channel`` are the mCherry spots.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    mcherry : pandas.DataFrame, optional
        mCherry spots in a separate table.
    channel : int or None
        Kinetochore channel; None: every row is a kinetochore.
    mcherry_channel : int
    track, recompute, pairing, tracking
        See :func:`track_and_pair`.
    delta_cutoff_um : float
        EGFP–mCherry matching cutoff (µm) after chromatic correction.
    chromatic_shift_nm : (3,) sequence, optional
        Known chromatic shift (mCherry − EGFP, z, y, x, nm); estimated when None.
    progress : bool
        tqdm progress bars.

    Returns
    -------
    Measurements

    Examples
    --------
    >>> from napari_kinetochores.io import points_frame
    >>> vox = (0.3, 0.13, 0.13)
    >>> spots = [[t, z, y, x] for t in (0, 1) for y in (20, 40) for x in (20, 40) for z in (10, 13)]
    >>> result = measure_points(points_frame(spots, vox), vox)
    >>> result.summary()
    '16 kinetochore rows, 4 pairs (paired), 8 tracks; K-K median 0.900 µm'
    """
    voxel = voxel_array(voxel_size_um)
    kin = points[kinetochore_rows(points, channel)]
    frames = as_frames(kin["t"].to_numpy() if "t" in kin else None, len(kin))
    plates = fit_plates(frames, coords_um(kin, voxel), progress=progress)
    ids = track_and_pair(
        points,
        voxel,
        channel=channel,
        track=track,
        recompute=recompute,
        pairing=pairing,
        tracking=tracking,
        plates=plates,
        progress=progress,
    )
    table = measure_table(
        ids,
        voxel,
        mcherry=mcherry,
        channel=channel,
        mcherry_channel=mcherry_channel,
        delta_cutoff_um=delta_cutoff_um,
        chromatic_shift_nm=chromatic_shift_nm,
        plates=plates,
        progress=progress,
    )
    return Measurements(table=table, points=ids)


def sister_pairs_table(
    points: pd.DataFrame,
    voxel_size_um: Sequence[float],
    *,
    channel: int | None = 0,
    pairing: PairingParams | None = None,
    tracking: TrackingParams | None = None,
) -> pd.DataFrame:
    """The sister-pair export: paired rows with ids stable along tracks.

    The ids are those of the measurement pipeline (:func:`track_and_pair`:
    the table's own pairs when it has any, else pairs of whole tracks), so
    a sister pair keeps one id in every frame.

    Parameters
    ----------
    points : pandas.DataFrame
        Point table (package schema).
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    channel : int or None
        Kinetochore channel (other channels' rows follow their kinetochore).
    pairing, tracking : optional
        Parameters used when pairs or tracks must be computed.

    Returns
    -------
    pandas.DataFrame
        The rows with ``pair_id >= 0``, sorted by ``t`` then ``pair_id``
        (input order within), with ``track_id`` and ``pair_id``.

    Examples
    --------
    >>> from napari_kinetochores.io import points_frame
    >>> vox = (0.3, 0.13, 0.13)
    >>> spots = [[t, 10 + 3 * s, 20 + 20 * p, 20] for t in range(4) for p in range(3) for s in (0, 1)]
    >>> pairs = sister_pairs_table(points_frame(spots, vox), vox, pairing=PairingParams(use_plate=False))
    >>> pairs.groupby("t")["pair_id"].apply(list).tolist()[0], pairs["pair_id"].nunique()
    ([0, 0, 1, 1, 2, 2], 3)
    """
    ids = track_and_pair(points, voxel_size_um, channel=channel, pairing=pairing, tracking=tracking)
    paired = ids[_ids(ids, "pair_id") >= 0]
    return paired.sort_values(["t", "pair_id"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- measure_table


def _channels(
    points: pd.DataFrame,
    channel: int | None,
    mcherry_channel: int,
    mcherry: pd.DataFrame | None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The kinetochore rows, and the mCherry spots (a separate table or other rows)."""
    kin = points[kinetochore_rows(points, channel)].copy()
    if mcherry is not None or channel is None or "channel" not in points.columns:
        return kin, mcherry
    values = pd.to_numeric(points["channel"], errors="coerce").to_numpy()
    mch = points[values == mcherry_channel]
    return kin, (mch if len(mch) else None)


def _sister_geometry(
    pts: np.ndarray, sister: np.ndarray, normal: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K–K distance (µm), unit sister axis (from the sister) and its angle to the normal (°)."""
    has = sister >= 0
    kk_vec = np.full((len(pts), 3), np.nan)
    kk_vec[has] = pts[has] - pts[sister[has]]
    kk = np.linalg.norm(kk_vec, axis=1)
    unit = kk_vec / np.where(kk > 0, kk, np.nan)[:, None]
    cos = np.abs(np.sum(unit * normal, axis=1))
    return kk, unit, np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))


def _geometry_table(
    kin: pd.DataFrame,
    pts: np.ndarray,
    frames: np.ndarray,
    plates: pd.DataFrame,
    pair: np.ndarray,
    track: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Positions, ids, K–K and plate columns of the kinetochores, and the unit sister axes."""
    plate_values = plate_values_per_point(frames, plates, PLATE_COLUMNS[1:])
    centre, normal = plate_values[:, 0:3], plate_values[:, 3:6]  # PLATE_COLUMNS[1:4], [4:7]
    kk, unit, angle = _sister_geometry(pts, sister_rows(frames, pair), normal)
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
    table["plate_distance_um"] = np.sum((pts - centre) * normal, axis=1)
    for k, c in enumerate(PLATE_COLUMNS[1:]):
        table[c] = plate_values[:, k]
    table["plate_n_spots"] = np.nan_to_num(table["plate_n_spots"], nan=0).astype(np.int64)
    return table, unit


def _add_delta(
    table: pd.DataFrame,
    kin: pd.DataFrame,
    mch: pd.DataFrame,
    voxel: np.ndarray,
    pair: np.ndarray,
    unit: np.ndarray,
    **delta_options,
) -> np.ndarray:
    """Add the delta columns; return the chromatic shift removed (nm)."""
    if "t" not in mch.columns:
        mch = mch.assign(t=0.0)
    res = two_colour_delta(
        kin[["t", "z", "y", "x"]].to_numpy(dtype=float),
        mch[["t", "z", "y", "x"]].to_numpy(dtype=float),
        voxel,
        egfp_pair_id=pair,
        **delta_options,
    )
    delta = np.full((len(kin), 3), np.nan)
    delta[res.egfp_index] = res.delta_nm
    for k, a in enumerate("zyx"):
        table[f"delta_{a}_nm"] = delta[:, k]
    table["delta_nm"] = np.linalg.norm(delta, axis=1)
    table["delta_1d_nm"] = np.sum(delta * unit, axis=1)
    for k, a in enumerate("zyx"):
        table[f"chromatic_shift_{a}_nm"] = res.shift_nm[k]
    return res.shift_nm


def _sorted_with_sister_rows(
    table: pd.DataFrame, frames: np.ndarray, pair: np.ndarray, track: np.ndarray
) -> pd.DataFrame:
    """Sort by t, pair, track and insert ``sister_row`` (the sister's position in the result)."""
    order = np.lexsort((track, pair, frames))
    table = table.iloc[order]
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    sister = sister_rows(frames, pair)[order]
    table.insert(
        table.columns.get_loc("pair_reason") + 1,
        "sister_row",
        np.where(sister >= 0, position[np.maximum(sister, 0)], -1),
    )
    return table


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
    are computed with :func:`~napari_kinetochores.analysis.pairing.pair_table`
    (over whole tracks when there is a ``track_id`` column). Use
    :func:`measure_points` for the whole pipeline (tracking, the rule for
    existing ids), as the CLI and the widget do.

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
        :func:`~napari_kinetochores.analysis.delta.two_colour_delta`.
    plates : pandas.DataFrame, optional
        Per-frame plates from :func:`~napari_kinetochores.analysis.plate.fit_plates`;
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
    voxel = voxel_array(voxel_size_um)
    if "t" not in points.columns:
        points = points.assign(t=0.0)
    kin, mch = _channels(points, channel, mcherry_channel, mcherry)
    pts = coords_um(kin, voxel)
    frames = as_frames(kin["t"].to_numpy(), len(kin))
    if plates is None:
        plates = fit_plates(frames, pts, progress=progress)
    if "pair_id" not in kin.columns:
        kin = pair_table(kin, voxel, params=pairing, channel=None, plates=plates, progress=progress)
    pair = _ids(kin, "pair_id")
    track = _ids(kin, "track_id") if "track_id" in kin else np.full(len(kin), -1, np.int64)
    table, unit = _geometry_table(kin, pts, frames, plates, pair, track)
    shift = None
    if mch is not None and len(mch) and len(kin):
        options = {"cutoff_um": delta_cutoff_um, "chromatic_shift_nm": chromatic_shift_nm}
        shift = _add_delta(table, kin, mch, voxel, pair, unit, progress=progress, **options)
    table = _sorted_with_sister_rows(table, frames, pair, track)
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
    voxel = voxel_array(voxel_size_um)
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
    frames = as_frames(t, len(np.asarray(true_pair).reshape(-1)))
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
