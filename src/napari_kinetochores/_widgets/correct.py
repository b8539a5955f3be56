"""Correct labels: fast editing of a Points layer in 3D+t, audited and never lost.

The state (statuses, pairs, deleted points, undo, autosave) lives in a
Qt-free :class:`~napari_kinetochores._napari.correction.CorrectionSession`;
this widget forwards napari's layer events to it and shows its state. While
correcting, every change to the chosen Points layer is recorded:

- a ``status`` feature: ``auto`` (as detected), ``added``, ``moved``; deleted
  points leave the layer but are kept in the autosave file as ``deleted``;
- new points snap to the nearest spot centre, never onto a point already
  there (:func:`napari_kinetochores._napari.correction.snap_click`), and the
  view follows the point's z; selected points snap with ``Shift-S``;
- sister-pair ids: ``Shift-P`` pairs the two selected points, ``Shift-U``
  clears the selected points' pair ids;
- undo: ``Control-Z`` (or the Undo button) restores the state before the last
  change;
- review by uncertainty: ``N`` (or Next uncertain) shows the next spot whose
  score is nearest the threshold, centred, in its frame and z slice: a
  detection (selected; delete it if it is no kinetochore) or a candidate spot
  below the threshold from the chosen score map (a white square; add a point
  there if it is one). Spots corrected by hand or already shown are skipped
  (:meth:`~napari_kinetochores._napari.correction.CorrectionSession.next_uncertain`).
  The first ``N`` finds the candidate spots in a worker thread, with a
  progress bar (``N`` again while it runs only reports its progress);
- every change is written at once (atomically) to a CSV beside the image, and
  starting again on the same layer restores it.

napari's own keys still add (``P``), select (``S``) and delete (``Delete``)
points.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, Container, FileEdit, FloatSpinBox, Label, PushButton
from napari.qt.threading import thread_worker
from napari.utils import progress
from qtpy.QtCore import QTimer

from napari_kinetochores._napari.correction import CorrectionSession, ReviewItem, snap_click
from napari_kinetochores._napari.io import marker_style
from napari_kinetochores._widgets._common import KinetochoreWidget, show_info, show_warning
from napari_kinetochores._widgets._layers import (
    check_same_scale,
    image_voxel_size,
    layer_kind,
    require_layer,
    source_path,
)
from napari_kinetochores.core.refine import DEFAULT_SNAP_WINDOW_UM
from napari_kinetochores.errors import InputError

KEYS = {
    "snap": "Shift-S",
    "pair": "Shift-P",
    "unpair": "Shift-U",
    "undo": "Control-Z",
    "next": "N",  # napari binds no N on points layers or the viewer
}
#: Quiet time (ms) after a drag before a move is recorded and saved.
MOVE_SETTLE_MS = 150


@thread_worker
def review_worker(
    score_map: Any,
    voxel_size_um: tuple[float, float, float],
    threshold: float | None,
    covered: np.ndarray,
) -> Iterator[tuple[int, int]]:
    """Find the candidate spots of a score map; yield (frames done, frames) after each frame.

    Returns ``{"result": (threshold, candidates)}`` (``candidates`` as
    :meth:`CorrectionSession.set_review` takes them) or ``{"error": …}``
    (wrapped: the worker would re-raise a returned exception). A ``threshold``
    of None loads the bundled default model's.
    """
    from napari_kinetochores.analysis.review import default_threshold, iter_movie_candidates

    try:
        threshold = default_threshold() if threshold is None else float(threshold)
        found: list[tuple[np.ndarray, np.ndarray]] = []
        if score_map is not None:
            frames = score_map.shape[0] if len(score_map.shape) == 4 else 1
            steps = iter_movie_candidates(score_map, voxel_size_um, threshold, existing=covered)
            for step in steps:
                found.append(step)
                yield len(found), frames
        return {"result": (threshold, found)}
    except Exception as error:  # reported by the widget as a notification
        return {"error": error}


def default_autosave_path(points: Any, image: Any) -> Path:
    """``<image>.<points layer>.corrections.csv`` beside the image file.

    Without a known image file: beside the points' file, else in
    ``~/napari-kinetochores/``.
    """
    safe = re.sub(r"[^\w.-]+", "_", points.name).strip("_") or "points"
    for layer in (image, points):
        path = source_path(layer) if layer is not None else None
        if path is not None:
            stem = path.name.split(".")[0] if path.is_file() or path.suffix else path.name
            return path.parent / f"{stem}.{safe}.corrections.csv"
    return Path.home() / "napari-kinetochores" / f"{safe}.corrections.csv"


class CorrectWidget(KinetochoreWidget):
    """Add, delete, move and snap points, assign pairs, undo; autosave every change.

    The state is a :class:`~napari_kinetochores._napari.correction.CorrectionSession`
    (``self.session``); the widget forwards the layer's events to it and shows
    the session's points in the layer.

    Parameters
    ----------
    napari_viewer
        The viewer holding the points and image layers.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.points = self.layer_combo("points to correct", "points", role="prediction")
        self.image = self.layer_combo("image (for snapping)", "image", nullable=True, role="image")
        self.window = FloatSpinBox(
            label="snap window (µm)", value=DEFAULT_SNAP_WINDOW_UM, min=0.05, max=5.0, step=0.05
        )
        self.snap_new = CheckBox(text="snap new points to the spot centre", value=True)
        self.autosave = FileEdit(label="autosave CSV", mode="w", filter="*.csv", nullable=True)
        self.restore = CheckBox(text="restore the autosaved corrections on start", value=True)
        self.start_button = PushButton(text="Start correcting")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.snap_button = PushButton(text=f"Snap selected ({KEYS['snap']})", enabled=False)
        self.pair_button = PushButton(text=f"Pair selected ({KEYS['pair']})", enabled=False)
        self.unpair_button = PushButton(text=f"Unpair ({KEYS['unpair']})", enabled=False)
        self.undo_button = PushButton(text=f"Undo ({KEYS['undo']})", enabled=False)
        self.score_map = self.layer_combo(
            "score map (review)",
            "image",
            nullable=True,
            tooltip="the detector's probability map (Detect: show the probability map); its "
            "peaks that no point covers are offered as candidate spots",
        )
        self.review_threshold = FloatSpinBox(
            label="review threshold (0: model's)",
            value=0.0,
            min=0.0,
            max=1.0,
            step=0.05,
            tooltip="the threshold the detections were made with (0: the bundled default "
            "model's); spots scoring nearest it are shown first",
        )
        self.next_button = PushButton(text=f"Next uncertain ({KEYS['next']})", enabled=False)
        self.summary = Label(value="")
        self.help = Label(
            value="napari keys: P add, S select, Delete remove, drag to move. "
            f"{KEYS['snap']} snap, {KEYS['pair']} pair two, {KEYS['unpair']} unpair, "
            f"{KEYS['undo']} undo, {KEYS['next']} next uncertain spot (score nearest the "
            "threshold: a selected detection, or a candidate in a white square)."
        )
        self.help.native.setWordWrap(True)
        rows = [
            Container(widgets=[self.start_button, self.stop_button], layout="horizontal"),
            Container(widgets=[self.snap_button, self.undo_button], layout="horizontal"),
            Container(widgets=[self.pair_button, self.unpair_button], layout="horizontal"),
        ]
        review = [self.score_map, self.review_threshold, self.next_button]
        for row in rows:
            row.margins = (0, 0, 0, 0)
        self.form.extend(
            [
                self.points,
                self.image,
                self.window,
                self.snap_new,
                self.autosave,
                self.restore,
                *rows,
                *review,
                self.summary,
                self.help,
            ]
        )
        self.layer: Any = None
        self.image_layer: Any = None
        self.session: CorrectionSession | None = None
        self._candidate_layer: Any = None
        self._review_stale = True
        self._review_worker: Any = None
        self._review_progress: Any = None
        self._pending_removal: list[int] = []
        self._suspended = False
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(MOVE_SETTLE_MS)
        self._settle.timeout.connect(self.guarded("Recording the change", self._sync))

        self.points.changed.connect(self._suggest_path)
        self.image.changed.connect(self._suggest_path)
        self.start_button.changed.connect(self.guarded("Starting corrections", self.start))
        self.stop_button.changed.connect(self.guarded("Stopping corrections", self.stop))
        self.snap_button.changed.connect(self.guarded("Snapping", self.snap_selected))
        self.pair_button.changed.connect(self.guarded("Pairing", self.pair_selected))
        self.unpair_button.changed.connect(self.guarded("Unpairing", self.unpair_selected))
        self.undo_button.changed.connect(self.guarded("Undo", self.undo))
        self.next_button.changed.connect(self.guarded("Next uncertain", self.next_uncertain))
        self.score_map.changed.connect(self._review_settings_changed)
        self.review_threshold.changed.connect(self._review_settings_changed)
        self._suggest_path()

    # ------------------------------------------------------------------ set-up

    def _suggest_path(self, *_: Any) -> None:
        if self.layer is None and self.points.value is not None:
            self.autosave.value = default_autosave_path(self.points.value, self.image.value)
            probability = self.layer_named(f"{self.points.value.name} probability")
            if self.score_map.value is None and layer_kind(probability) == "image":
                self.score_map.value = probability  # the probability map Detect made for them

    def _review_settings_changed(self, *_: Any) -> None:
        self._review_stale = True

    @property
    def active(self) -> bool:
        """True while a layer is being corrected."""
        return self.layer is not None

    @property
    def path(self) -> Path | None:
        """The autosave CSV of the running session."""
        return None if self.session is None else self.session.path

    @property
    def deleted(self) -> pd.DataFrame:
        """The points deleted so far (kept in the autosave file)."""
        return pd.DataFrame() if self.session is None else self.session.deleted

    def start(self) -> None:
        """Start correcting the chosen layer (restoring its autosave file if asked)."""
        if self.active:
            self.stop()
        layer = require_layer(self.points.value, "points", "correction")
        if layer.ndim not in (3, 4):
            raise InputError(f"points layer {layer.name!r} must be (Z, Y, X) or (T, Z, Y, X)")
        image = self.image.value
        if image is not None:
            image_voxel_size(image)
            check_same_scale(layer, image)
        if self.autosave.value is None:
            raise InputError("choose the autosave CSV file")
        voxel = tuple(float(s) for s in layer.scale[-3:])
        session = CorrectionSession(Path(self.autosave.value), voxel, layer.ndim)
        restored = session.begin(layer.data, layer.features, restore=bool(self.restore.value))
        self.layer, self.image_layer, self.session = layer, image, session
        self._show_session()
        defaults = layer.feature_defaults
        defaults["status"] = "added"
        defaults["pair_id"] = -1
        layer.feature_defaults = defaults
        layer.events.data.connect(self._on_data)
        for action, key in KEYS.items():
            layer.bind_key(key, self._key_handler(action), overwrite=True)
        for button in (self.snap_button, self.pair_button, self.unpair_button, self.next_button):
            button.enabled = True
        self._review_stale = True
        self.stop_button.enabled = True
        self.undo_button.enabled = False
        self.points.enabled = self.autosave.enabled = False
        message = f"correcting {layer.name!r}; every change is saved to {session.path}"
        self.set_status(message)
        if restored:
            show_info(restored)
            self.set_status(f"{restored}. {message}")

    def stop(self) -> None:
        """Stop recording changes (after saving any pending move)."""
        if self.layer is None:
            return
        if self._settle.isActive():
            self._settle.stop()
            self._sync()
        self.layer.events.data.disconnect(self._on_data)
        for key in KEYS.values():
            self.layer.bind_key(key, None, overwrite=True)
        self.set_status(f"stopped correcting {self.layer.name!r}; saved in {self.path}")
        self.layer = None
        self._end_review_search()
        if self._candidate_layer is not None and self._candidate_layer in self.viewer.layers:
            self.viewer.layers.remove(self._candidate_layer)
        self._candidate_layer = None
        buttons = (self.snap_button, self.pair_button, self.unpair_button, self.undo_button)
        for button in (*buttons, self.next_button):
            button.enabled = False
        self.stop_button.enabled = False
        self.points.enabled = self.autosave.enabled = True

    def _key_handler(self, action: str):
        method = {
            "snap": self.snap_selected,
            "pair": self.pair_selected,
            "unpair": self.unpair_selected,
            "undo": self.undo,
            "next": self.next_uncertain,
        }[action]
        guarded = self.guarded(action.capitalize(), method)

        def handler(_layer: Any) -> None:
            guarded()

        handler.__doc__ = f"napari-kinetochores: {action} (Correct labels)"
        return handler

    # ------------------------------------------------------------------ session <-> layer

    def _show_session(self) -> None:
        """Show the session's points in the layer, without recording it as a user change."""
        self._suspended = True
        try:
            self.layer.data = self.session.data.copy()
            self.layer.features = self.session.features.copy()
        finally:
            self._suspended = False
        self.summary.value = self.session.summary()
        self.undo_button.enabled = bool(self.session.undo_stack)

    def _on_data(self, event: Any) -> None:
        if self._suspended or self.layer is None:
            return
        action = str(getattr(event, "action", ""))
        indices = [int(i) for i in getattr(event, "data_indices", ()) or ()]
        try:
            if action == "removing":
                self._flush_move()
                self._pending_removal = indices
            elif action == "removed":
                self.session.delete(self._pending_removal)
                self._pending_removal = []
                self._show_session()
            elif action == "added" and indices and min(indices) < 0:
                self._added(indices)
            elif action in ("added", "changed"):  # a drag, or the whole data set
                self._settle.start()
        except Exception as error:  # never let an edit escape as a Qt error
            self.fail(error, "Recording the change")

    def _flush_move(self) -> None:
        if self._settle.isActive():
            self._settle.stop()
            self._sync()

    def _added(self, indices: list[int]) -> None:
        self._flush_move()
        n = len(self.layer.data)
        rows = sorted({i % n for i in indices})
        data = np.asarray(self.layer.data, dtype=float).copy()
        if self.snap_new.value and self.image_layer is not None:
            data[rows] = self._snapped(data, rows, others=self.session.data)
        self.session.add(data, self.layer.features, rows)
        self._show_session()
        self._follow(data[rows[-1]])

    def _sync(self) -> None:
        """Record moves (coordinates that differ from the session's), or a replaced layer."""
        if self.layer is None or self.session is None:
            return
        data = np.asarray(self.layer.data, dtype=float)
        if len(data) == len(self.session.data):
            moved = self.session.move(data)
            if moved:
                self.set_status(f"moved {moved} point(s)")
        else:
            self.session.replace(data, self.layer.features)
            self.set_status(f"the layer was replaced ({len(data)} points)")
        self._show_session()

    # ------------------------------------------------------------------ actions

    def _snapped(self, data: np.ndarray, rows: list[int], others: np.ndarray) -> np.ndarray:
        """Snap points ``rows`` of ``data``; ``others``: the points they must not land on."""
        image = self.image_layer
        voxel = image_voxel_size(image)
        out = data[rows].copy()
        for k, row in enumerate(out):
            same = others
            frame = image.data
            if image.ndim == 4:  # (t, z, y, x): the point's frame, and the others in it
                t = int(np.clip(np.round(row[0]), 0, image.data.shape[0] - 1))
                frame = image.data[t]
                same = others[np.round(others[:, 0]) == np.round(row[0])]
            zyx = np.clip(row[-3:], 0, np.asarray(frame.shape) - 1)
            snap = snap_click(frame, zyx, voxel, float(self.window.value), same[:, -3:])
            row[-3:] = snap.point_zyx
            if not snap.snapped:
                show_info(f"point {rows[k]} not snapped: {snap.reason}")
        return out

    def _follow(self, point: np.ndarray) -> None:
        """Move the viewer's z slice to a point's z, so the point stays in view."""
        world = np.asarray(self.layer.data_to_world(point), dtype=float)
        self.viewer.dims.set_point(self.viewer.dims.ndim - 3, float(world[-3]))

    def _selected(self, at_least: int = 1) -> list[int]:
        if self.layer is None:
            raise InputError("press Start correcting first")
        self._flush_move()  # a drag still settling is recorded first
        selected = sorted(int(i) for i in self.layer.selected_data)
        if len(selected) < at_least:
            raise InputError(f"select at least {at_least} point(s) first (napari key S)")
        return selected

    def snap_selected(self) -> None:
        """Snap the selected points to the spot centres under them."""
        if self.image_layer is None:
            raise InputError("choose an image to snap to, then press Start correcting again")
        rows = self._selected()
        data = self.session.data
        others = np.delete(data, rows, axis=0)
        self.session.move(self._snapped(data, rows, others), rows)
        self._show_session()
        self.layer.selected_data = set(rows)
        self._follow(self.session.data[rows[-1]])
        self.set_status(f"snapped {len(rows)} point(s)")

    def pair_selected(self) -> None:
        """Give the two selected points (sisters) a new shared pair id."""
        rows = self._selected(2)
        new_id = self.session.pair(rows)
        self._show_session()
        self.set_status(f"paired points {rows[0]} and {rows[1]} as pair {new_id}")

    def unpair_selected(self) -> None:
        """Clear the pair ids of the selected points."""
        rows = self._selected()
        self.session.unpair(rows)
        self._show_session()
        self.set_status(f"cleared the pair id of {len(rows)} point(s)")

    def undo(self) -> None:
        """Restore the state before the last change."""
        if self.layer is None:
            raise InputError("press Start correcting first")
        self._settle.stop()
        if not self.session.undo():
            show_warning("nothing to undo")
            return
        self._show_session()
        self.set_status("undone")

    # ------------------------------------------------------------------ review by uncertainty

    def next_uncertain(self) -> None:
        """Show the next spot to review (score nearest the threshold), centred in its z slice.

        The first call (and the first after the score map or threshold
        changed) finds the candidate spots in a worker, then shows the spot.
        """
        if self.layer is None:
            raise InputError("press Start correcting first")
        self._flush_move()
        if self._review_worker is not None:
            self.set_status("still finding candidate spots in the score map…")
            return
        if self._review_stale or self.session.review_threshold is None:
            self._start_review()
            return
        self._show_next()

    def _show_next(self) -> None:
        item = self.session.next_uncertain()
        if item is None:
            self._show_candidate(None)
            self.set_status("review done: every detection and candidate spot has been shown")
            return
        self._go_to(item.point)
        if item.kind == "detection":
            self._show_candidate(None)
            self.layer.selected_data = {item.row}
            advice = "selected; Delete if it is no kinetochore"
        else:
            self.layer.selected_data = set()
            self._show_candidate(item.point)
            advice = "in the white square; add a point (P, click) if it is a kinetochore"
        self.set_status(self._review_line(item, advice))

    def _review_line(self, item: ReviewItem, advice: str) -> str:
        t = f"frame {round(item.point[0])}, " if len(item.point) == 4 else ""
        return (
            f"{item.kind} score {item.score:.2f} (threshold {self.session.review_threshold:g}), "
            f"{t}z {item.point[-3]:.1f}: {advice}. {item.remaining} left to review"
        )

    def _start_review(self) -> None:
        """Find the candidate spots in a worker; :meth:`_review_ready` then shows the first spot."""
        score = self.score_map.value
        if score is not None:
            check_same_scale(self.layer, score)
            self.session.check_score_map(score.data)
        threshold = float(self.review_threshold.value) or None
        data = None if score is None else score.data
        frames = 1 if data is None or len(data.shape) == 3 else data.shape[0]
        self._review_progress = progress(total=frames, desc="Finding candidate spots")
        self._review_stale = True  # until _review_ready installs the result
        worker = review_worker(data, self.session.voxel_size_um, threshold, self.session.covered())
        worker.yielded.connect(self._review_step)
        worker.returned.connect(self._review_ready)
        worker.finished.connect(self._end_review_search)
        self._review_worker = worker
        self.set_status("finding candidate spots in the score map…")
        worker.start()

    def _review_step(self, step: tuple[int, int]) -> None:
        if not self._review_stale:  # a step delivered after the result: the search is over
            return
        done, frames = step
        self.set_status(f"finding candidate spots: frame {done} of {frames}…")
        if self._review_progress is not None:  # its update may run the event loop: last
            self._review_progress.update(1)

    def _review_ready(self, outcome: dict) -> None:
        if self.layer is None or self.session is None:  # stopped meanwhile
            return
        if "error" in outcome:
            self.fail(outcome["error"], "Next uncertain")
            return
        threshold, candidates = outcome["result"]
        found = self.session.set_review(threshold, candidates)
        self._review_stale = False
        score = self.score_map.value
        if score is None:
            show_info(
                "no score map chosen: only the detections' scores are reviewed (Detect with "
                "'show the probability map' makes one, for the spots below the threshold)"
            )
        else:
            show_info(f"{found} candidate spot(s) below the threshold in {score.name!r}")
        self.guarded("Next uncertain", self._show_next)()

    def _end_review_search(self) -> None:
        """Close the progress bar; stop a search still running (Stop pressed)."""
        if self._review_worker is not None:
            self._review_worker.quit()
            self._review_worker = None
        if self._review_progress is not None:
            self._review_progress.close()
            self._review_progress = None

    def _go_to(self, point: np.ndarray) -> None:
        """Move the frame and z slice to a point of the layer and centre the camera on it."""
        world = np.asarray(self.layer.data_to_world(point), dtype=float)
        dims = self.viewer.dims
        first = dims.ndim - len(world)
        for k in range(len(world)):
            if first + k not in dims.displayed:
                dims.set_point(first + k, float(world[k]))
        full = np.asarray(dims.point, dtype=float)
        full[first:] = world
        camera = self.viewer.scene.camera if hasattr(self.viewer, "scene") else self.viewer.camera
        camera.center = tuple(float(full[d]) for d in dims.displayed)

    def _show_candidate(self, point: np.ndarray | None) -> None:
        """Mark a candidate spot with a white square (None: clear the mark)."""
        layer = self._candidate_layer
        if point is None:
            if layer is not None and layer in self.viewer.layers:
                layer.data = np.zeros((0, self.layer.ndim))
            return
        if layer is None or layer not in self.viewer.layers:
            style = {**marker_style(True, self.layer.scale), "symbol": "square"}
            style["border_color"] = "white"
            layer = self._candidate_layer = self.viewer.add_points(
                np.zeros((0, self.layer.ndim)),
                ndim=self.layer.ndim,
                name=f"review: {self.layer.name}",
                scale=self.layer.scale,
                translate=self.layer.translate,
                **style,
            )
            self.viewer.layers.selection.active = self.layer  # its keys stay active
        layer.data = np.asarray(point, dtype=float)[None]
