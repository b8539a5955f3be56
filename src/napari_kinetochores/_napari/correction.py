"""Correcting a point layer without Qt: snapping clicks and the audited, undoable session.

The Correct labels widget (:mod:`napari_kinetochores._widgets.correct`) only
forwards napari's events here, as napari-animation keeps its state in plain
classes and its Qt widget only forwards:

- :func:`snap_click` moves a clicked point to the nearest spot centre, but
  never onto a point that is already there (then it keeps the click and says
  why);
- :class:`CorrectionSession` holds the points (N, 3 or 4) in voxels, their
  features (``status`` auto/added/moved, ``pair_id``), the deleted points, an
  undo stack, and writes every change at once (atomically) to a CSV that a
  new session restores; its :meth:`~CorrectionSession.next_uncertain` hands
  out the detections and candidate spots in review order, the score nearest
  the threshold first (:mod:`napari_kinetochores.analysis.review`), and
  remembers the spots already handed out in ``<autosave>.review.json``, so a
  restored session does not offer them again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_kinetochores.core.refine import DEFAULT_SNAP_WINDOW_UM, snap_to_centre
from napari_kinetochores.errors import InputError

__all__ = [
    "STATUSES",
    "CorrectionSession",
    "ReviewItem",
    "Snap",
    "snap_click",
]

#: Point statuses: as detected, added by hand, moved by hand, deleted by hand.
STATUSES = ("auto", "added", "moved", "deleted")
#: A snapped point closer than this (µm) to another point would duplicate it.
DUPLICATE_DISTANCE_UM = 0.15
#: Changes kept for undo.
UNDO_DEPTH = 200
#: A candidate spot this close (µm) to a point (kept, added or deleted) is that point's spot.
CANDIDATE_COVER_UM = 0.3


@dataclass(frozen=True)
class ReviewItem:
    """The next spot to review (:meth:`CorrectionSession.next_uncertain`).

    Attributes
    ----------
    point : (ndim,) float array
        Its position (z, y, x) or (t, z, y, x) in voxels.
    score : float
        Its score (the detector's, on the threshold's scale).
    kind : {"detection", "candidate"}
        A point of the layer, or a candidate spot below the threshold (not in
        the layer: add it if it is a kinetochore).
    row : int
        Its row in :attr:`CorrectionSession.data` (-1 for a candidate).
    remaining : int
        Spots still to review after this one.
    """

    point: np.ndarray
    score: float
    kind: str
    row: int
    remaining: int


@dataclass(frozen=True)
class Snap:
    """Where a clicked point goes.

    Attributes
    ----------
    point_zyx : (3,) float array
        The snapped point, or the click when snapping was refused (voxels).
    snapped : bool
        False when the click was kept.
    reason : str
        Why the click was kept ("" when snapped).
    """

    point_zyx: np.ndarray
    snapped: bool
    reason: str = ""


def snap_click(
    frame_zyx: Any,
    click_zyx: Sequence[float],
    voxel_size_um: Sequence[float],
    window_um: float = DEFAULT_SNAP_WINDOW_UM,
    others_zyx: np.ndarray | None = None,
    duplicate_um: float = DUPLICATE_DISTANCE_UM,
) -> Snap:
    """Snap a click to the nearest spot centre, never onto another point.

    Parameters
    ----------
    frame_zyx : (Z, Y, X) array
        The image frame (only a window around the click is read).
    click_zyx : (3,) sequence
        The clicked point (z, y, x) in voxels.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    window_um : float
        Half-width of the search window in µm.
    others_zyx : (M, 3) array, optional
        The other points of the same frame (voxels).
    duplicate_um : float
        A snapped point closer than this (µm) to one of ``others_zyx`` would
        be a duplicate: the click is kept instead.

    Returns
    -------
    Snap
        The snapped point, or the click with the reason it was kept.

    Examples
    --------
    >>> frame = np.zeros((9, 21, 21)); frame[4, 10, 10] = 10.0
    >>> snap_click(frame, (4, 10, 11), (0.3, 0.13, 0.13)).point_zyx.round(1).tolist()
    [4.0, 10.0, 10.0]
    >>> snap_click(frame, (4, 10, 11), (0.3, 0.13, 0.13), others_zyx=np.array([[4, 10, 10]])).reason
    'the nearest spot centre already has a point (0 nm away); the click is kept'
    """
    click = np.asarray(click_zyx, dtype=float).reshape(3)
    snapped = snap_to_centre(frame_zyx, click, voxel_size_um, window_um)
    if np.allclose(snapped, click):
        return Snap(click, False, "no spot in the snap window; the click is kept")
    others = np.asarray(others_zyx if others_zyx is not None else np.zeros((0, 3)), float)
    if len(others):
        voxel = np.asarray(voxel_size_um, dtype=float)
        nearest_um = float(
            np.min(np.linalg.norm((others.reshape(-1, 3) - snapped) * voxel, axis=1))
        )
        if nearest_um < duplicate_um:
            return Snap(
                click,
                False,
                f"the nearest spot centre already has a point ({nearest_um * 1000:.0f} nm away); "
                "the click is kept",
            )
    return Snap(snapped, True)


class CorrectionSession:
    """The state of correcting one point layer: statuses, pairs, deletions, undo, autosave.

    Parameters
    ----------
    path
        The autosave CSV (written at once after every change, atomically).
    voxel_size_um
        Voxel size (z, y, x) in µm (the layer's scale).
    ndim
        3 for (z, y, x) points, 4 for (t, z, y, x).

    Attributes
    ----------
    data : (N, ndim) float array
        The points in voxels, as the layer should show them.
    features : pandas.DataFrame
        One row per point, with ``status`` and ``pair_id``.
    deleted : pandas.DataFrame
        Deleted points (not ``added`` ones) as a point table, status ``deleted``.

    Examples
    --------
    >>> import tempfile
    >>> session = CorrectionSession(Path(tempfile.mkdtemp()) / "c.csv", (0.3, 0.13, 0.13), 3)
    >>> _ = session.begin(np.array([[1.0, 2, 3], [4, 5, 6]]), pd.DataFrame(index=range(2)))
    >>> session.move(np.array([[1.0, 2, 3], [4, 5, 7]]))
    1
    >>> session.delete([0])
    >>> session.counts()
    {'auto': 0, 'added': 0, 'moved': 1, 'deleted': 1}
    >>> session.undo() and session.undo()
    True
    >>> session.counts()
    {'auto': 2, 'added': 0, 'moved': 0, 'deleted': 0}
    """

    def __init__(self, path: str | Path, voxel_size_um: Sequence[float], ndim: int) -> None:
        if ndim not in (3, 4):
            raise InputError(f"points must be (Z, Y, X) or (T, Z, Y, X), not {ndim}-D")
        path = Path(path)
        if path.suffix.lower() != ".csv":
            path = path.with_name(path.name + ".csv")
        self.path = path
        self.voxel_size_um = tuple(float(v) for v in voxel_size_um)
        self.ndim = ndim
        self.data = np.zeros((0, ndim))
        self.features = _with_statuses(pd.DataFrame())
        self.deleted = pd.DataFrame()
        self.undo_stack: list[tuple[np.ndarray, pd.DataFrame, pd.DataFrame]] = []
        self.saved_at: float | None = None
        self._reset_review()

    def _reset_review(self) -> None:
        #: The threshold of the review order (None: no review started).
        self.review_threshold: float | None = None
        #: Candidate spots (M, ndim) in voxels, and their scores (M,).
        self.candidates = np.zeros((0, self.ndim))
        self.candidate_scores = np.zeros(0)
        #: Positions (R, ndim) already handed out by next_uncertain.
        self.reviewed_points = np.zeros((0, self.ndim))

    # ------------------------------------------------------------------ start

    def begin(self, data: np.ndarray, features: pd.DataFrame, restore: bool = True) -> str:
        """Start from the layer's points, or from the autosave file when asked and present.

        Returns
        -------
        str
            What was restored ("" when nothing was).
        """
        from napari_kinetochores.io import read_points

        message = ""
        self.data = np.asarray(data, dtype=float).reshape(-1, self.ndim).copy()
        self.features = _with_statuses(features.reset_index(drop=True))
        self.deleted = pd.DataFrame()
        if restore and self.path.is_file():
            table = read_points(self.path, voxel_size_um=self.voxel_size_um)
            status = table.get("status", pd.Series("auto", index=table.index)).astype(str)
            live = table[status != "deleted"].reset_index(drop=True)
            self.deleted = table[status == "deleted"].reset_index(drop=True)
            self._set_table(live)
            changed = int((self.features["status"] != "auto").sum()) + len(self.deleted)
            message = f"restored {len(live)} points ({changed} corrections) from {self.path.name}"
        self.undo_stack = []
        self._reset_review()
        if message:
            message += self._restore_reviewed()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.save()
        self._save_reviewed()  # the restored memory, or none (a stale file goes)
        return message

    @property
    def review_path(self) -> Path:
        """The file that remembers the spots already reviewed (beside the autosave CSV)."""
        return self.path.with_name(self.path.stem + ".review.json")

    def _restore_reviewed(self) -> str:
        """Read :attr:`review_path` into ``reviewed_points``; a line for the restore message."""
        import json

        if not self.review_path.is_file():
            return ""
        try:
            stored = json.loads(self.review_path.read_text())
            points = np.asarray(stored["reviewed"], dtype=float).reshape(-1, self.ndim)
            same_voxels = np.allclose(stored["voxel_size_um"], self.voxel_size_um, rtol=1e-6)
        except (OSError, ValueError, KeyError, TypeError) as error:
            return f"; {self.review_path.name} is unreadable ({error}), the review starts over"
        if not same_voxels or not np.all(np.isfinite(points)):
            return f"; {self.review_path.name} belongs to other points, the review starts over"
        self.reviewed_points = points
        return f"; {len(points)} spot(s) already reviewed"

    def _save_reviewed(self) -> None:
        """Write :attr:`review_path` (atomically), or remove it when nothing was reviewed.

        Called where ``reviewed_points`` changes (start, new baseline, each
        spot handed out), not on every correction.
        """
        import json

        from napari_kinetochores.io.atomic import atomic_output

        if not len(self.reviewed_points):
            self.review_path.unlink(missing_ok=True)
            return
        stored = {
            "format_version": 1,
            "points_file": self.path.name,
            "voxel_size_um": list(self.voxel_size_um),
            "reviewed": self.reviewed_points.tolist(),
        }
        with atomic_output(self.review_path) as tmp:
            tmp.write_text(json.dumps(stored))

    def _set_table(self, table: pd.DataFrame) -> None:
        from napari_kinetochores._napari.io import table_to_layer_data

        coords, features = table_to_layer_data(table)
        self.data = coords if self.ndim == 4 else coords[:, 1:]
        self.features = _with_statuses(features)

    # ------------------------------------------------------------------ changes

    def _push_undo(self) -> None:
        self.undo_stack.append((self.data.copy(), self.features.copy(), self.deleted.copy()))
        del self.undo_stack[:-UNDO_DEPTH]

    def add(self, data: np.ndarray, features: pd.DataFrame, rows: Sequence[int]) -> None:
        """Points ``rows`` of ``data`` were added by hand: status ``added``, no pair, no score."""
        self._push_undo()
        rows = sorted({int(r) for r in rows})
        features = _with_statuses(features.reset_index(drop=True))
        features.loc[rows, "status"] = "added"
        features.loc[rows, "pair_id"] = -1
        if "score" in features.columns:
            features.loc[rows, "score"] = np.nan
        if "track_id" in features.columns:
            features.loc[rows, "track_id"] = -1
        self.data = np.asarray(data, dtype=float).reshape(-1, self.ndim).copy()
        self.features = features
        self.save()

    def delete(self, rows: Sequence[int]) -> None:
        """Delete points ``rows``; those not added by hand are kept as ``deleted`` in the file."""
        rows = sorted({int(r) for r in rows if 0 <= int(r) < len(self.data)})
        if not rows:
            return
        self._push_undo()
        gone = self.table_of(rows)
        gone = gone[gone["status"] != "added"].copy()
        gone["status"] = "deleted"
        if len(gone):
            self.deleted = pd.concat([self.deleted, gone], ignore_index=True)
        keep = np.setdiff1d(np.arange(len(self.data)), rows)
        self.data = self.data[keep]
        self.features = self.features.iloc[keep].reset_index(drop=True)
        self.save()

    def move(self, data: np.ndarray, rows: Sequence[int] | None = None) -> int:
        """New coordinates for all points (or only ``rows``); returns how many moved.

        Detected points that moved get status ``moved``.
        """
        new = self.data.copy()
        if rows is None:
            new[:] = np.asarray(data, dtype=float).reshape(new.shape)
        else:
            new[list(rows)] = np.asarray(data, dtype=float).reshape(-1, self.ndim)
        moved = np.any(np.abs(new - self.data) > 1e-6, axis=1)
        if not moved.any():
            return 0
        self._push_undo()
        status = self.features["status"].astype(object)
        self.features["status"] = status.where(~(moved & (status == "auto").to_numpy()), "moved")
        self.data = new
        self.save()
        return int(moved.sum())

    def replace(self, data: np.ndarray, features: pd.DataFrame) -> None:
        """The layer was replaced as a whole (e.g. detection re-run): the new baseline.

        The review starts again (the scores are new).
        """
        self._push_undo()
        self.data = np.asarray(data, dtype=float).reshape(-1, self.ndim).copy()
        self.features = _with_statuses(features.reset_index(drop=True))
        self._reset_review()
        self.save()
        self._save_reviewed()

    def pair(self, rows: Sequence[int]) -> int:
        """Give two points of one frame (sisters) a new shared pair id; returns it."""
        rows = sorted({int(r) for r in rows})
        if len(rows) != 2:
            raise InputError(f"select exactly two points to pair (sisters), not {len(rows)}")
        if self.ndim == 4 and round(self.data[rows[0], 0]) != round(self.data[rows[1], 0]):
            raise InputError("sisters must be in the same frame")
        known = pd.to_numeric(self.features["pair_id"], errors="coerce").fillna(-1)
        if len(self.deleted) and "pair_id" in self.deleted:
            known = pd.concat([known, pd.to_numeric(self.deleted["pair_id"], errors="coerce")])
        new_id = max(int(known.max()) + 1 if len(known) else 0, 0)
        self._push_undo()
        self.features.loc[rows, "pair_id"] = new_id
        self.save()
        return new_id

    def unpair(self, rows: Sequence[int]) -> None:
        """Clear the pair ids of points ``rows``."""
        self._push_undo()
        self.features.loc[sorted({int(r) for r in rows}), "pair_id"] = -1
        self.save()

    def undo(self) -> bool:
        """Restore the state before the last change; False when there is nothing to undo."""
        if not self.undo_stack:
            return False
        self.data, self.features, self.deleted = self.undo_stack.pop()
        self.save()
        return True

    # ------------------------------------------------------------------ review

    def start_review(
        self, threshold: float | None = None, score_map: Any = None, floor: float | None = None
    ) -> int:
        """Get ready to hand out spots by uncertainty; returns the number of candidate spots.

        Parameters
        ----------
        threshold
            The detector's threshold (None: the bundled default model's).
        score_map : (Z, Y, X) or (T, Z, Y, X) array, optional
            The detector's score map (probability), with the points' axes;
            its peaks that no point covers become candidate spots
            (:func:`~napari_kinetochores.analysis.review.candidate_spots`).
            None: only the points' own scores are reviewed.
        floor
            Candidates score above this (default: a third of the threshold).

        Spots already handed out stay reviewed.
        """
        from napari_kinetochores.analysis.review import default_threshold, iter_movie_candidates

        threshold = default_threshold() if threshold is None else float(threshold)
        if score_map is not None:
            self.check_score_map(score_map)
            found = list(
                iter_movie_candidates(
                    score_map, self.voxel_size_um, threshold, floor, self.covered()
                )
            )
        else:
            found = []
        return self.set_review(threshold, found)

    def check_score_map(self, score_map: Any) -> None:
        """Raise :class:`InputError` unless the score map has the points' axes."""
        if len(score_map.shape) != self.ndim:
            raise InputError(
                f"the score map has {len(score_map.shape)} dimensions but the points have "
                f"{self.ndim}; choose the score map of this movie"
            )

    def set_review(
        self, threshold: float, candidates: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> int:
        """Review with ``threshold`` and these candidate spots (``(coords, scores)`` per frame,
        as :func:`~napari_kinetochores.analysis.review.iter_movie_candidates` yields them);
        returns their number. Spots already handed out stay reviewed."""
        self.review_threshold = float(threshold)
        self.candidates = np.concatenate(
            [np.zeros((0, self.ndim))] + [np.reshape(c, (-1, self.ndim)) for c, _ in candidates]
        )
        self.candidate_scores = np.concatenate([np.zeros(0)] + [s for _, s in candidates])
        return len(self.candidates)

    def covered(self) -> np.ndarray:
        """The live and the deleted points (N, ndim): a candidate near one is its spot."""
        deleted = np.zeros((0, self.ndim))
        if len(self.deleted):
            columns = ["t", "z", "y", "x"][4 - self.ndim :]
            deleted = self.deleted[columns].to_numpy(float)
        return np.concatenate([self.data, deleted])

    def next_uncertain(self) -> ReviewItem | None:
        """The next spot to review, the score nearest the threshold first; None when all are done.

        Detections (points with status ``auto`` and a score) and candidate
        spots that no point covers are ranked by
        :func:`~napari_kinetochores.analysis.review.review_order`; points
        corrected by hand and spots already handed out are skipped. The spot
        returned counts as reviewed.
        """
        from napari_kinetochores.analysis.review import near_any, review_order

        if self.review_threshold is None:
            self.start_review()
        auto = (self.features["status"] == "auto").to_numpy()
        score = pd.to_numeric(
            self.features.get("score", pd.Series(np.nan, index=self.features.index)),
            errors="coerce",
        ).to_numpy(float)
        open_candidates = ~near_any(
            self.candidates, self.covered(), self.voxel_size_um, CANDIDATE_COVER_UM
        )
        points = np.concatenate([self.data, self.candidates])
        scores = np.concatenate(
            [
                np.where(auto, score, np.nan),
                np.where(open_candidates, self.candidate_scores, np.nan),
            ]
        )
        detected = np.arange(len(points)) < len(self.data)
        reviewed = near_any(points, self.reviewed_points, self.voxel_size_um, DUPLICATE_DISTANCE_UM)
        order = review_order(scores, self.review_threshold, reviewed, detected)
        if not len(order):
            return None
        k = int(order[0])
        self.reviewed_points = np.concatenate([self.reviewed_points, points[k : k + 1]])
        self._save_reviewed()
        return ReviewItem(
            points[k].copy(),
            float(scores[k]),
            "detection" if detected[k] else "candidate",
            k if detected[k] else -1,
            len(order) - 1,
        )

    # ------------------------------------------------------------------ output

    def table_of(self, rows: Sequence[int] | None = None) -> pd.DataFrame:
        """The points (all, or ``rows``) as a point table (t = 0 for 3-D points)."""
        from napari_kinetochores.io import points_frame

        index = np.arange(len(self.data)) if rows is None else np.asarray(rows, dtype=int)
        coords = self.data[index].reshape(-1, self.ndim)
        if self.ndim == 3:
            coords = np.column_stack([np.zeros(len(coords)), coords])
        features = self.features.iloc[index].reset_index(drop=True)
        extra = {str(c): features[c].to_numpy() for c in features.columns}
        return points_frame(coords, self.voxel_size_um, **extra)

    def table(self) -> pd.DataFrame:
        """Everything the autosave file holds: the live points, then the deleted ones."""
        table = self.table_of()
        if len(self.deleted):
            table = pd.concat([table, self.deleted], ignore_index=True)
        return table

    def save(self) -> Path:
        """Write the autosave CSV now (temporary file, then rename)."""
        from napari_kinetochores.io import write_points

        write_points(self.path, self.table(), self.voxel_size_um)
        self.saved_at = time.time()
        return self.path

    def counts(self) -> dict[str, int]:
        """Number of points per status (deleted ones included)."""
        status = self.features["status"]
        counts = {s: int((status == s).sum()) for s in STATUSES[:3]}
        counts["deleted"] = len(self.deleted)
        return counts

    def summary(self) -> str:
        """One line: the counts per status and when the file was last saved."""
        parts = " · ".join(f"{s} {n}" for s, n in self.counts().items())
        stamp = time.strftime("%H:%M:%S", time.localtime(self.saved_at or time.time()))
        return f"{parts} — saved {stamp}"


def _with_statuses(features: pd.DataFrame) -> pd.DataFrame:
    """Features with ``status`` (auto/added/moved; default auto) and ``pair_id`` (default -1)."""
    features = features.copy()
    n = len(features)
    if "status" not in features.columns:
        features["status"] = np.full(n, "auto", dtype=object)
    else:
        status = features["status"].astype(object)
        features["status"] = status.where(status.isin(STATUSES[:3]), "auto")
    if "pair_id" not in features.columns:
        features["pair_id"] = np.full(n, -1, dtype=np.int64)
    else:
        features["pair_id"] = (
            pd.to_numeric(features["pair_id"], errors="coerce").fillna(-1).astype(np.int64)
        )
    return features
