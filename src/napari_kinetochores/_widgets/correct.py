"""Correct labels: fast editing of a Points layer in 3D+t, audited and never lost.

While correcting, every change to the chosen Points layer is recorded:

- a ``status`` feature: ``auto`` (as detected), ``added``, ``moved``; deleted
  points leave the layer but are kept in the autosave file as ``deleted``;
- new points can be snapped to the local intensity centre
  (:func:`napari_kinetochores.core.refine.snap_to_centre`), and so can selected
  points (``Shift-S``);
- sister-pair ids: ``Shift-P`` pairs the two selected points, ``Shift-U``
  clears the selected points' pair ids;
- undo: ``Control-Z`` (or the Undo button) restores the state before the last
  change;
- every change is written at once (atomically) to a CSV beside the image, and
  starting again on the same layer restores it.

napari's own keys still add (``P``), select (``S``) and delete (``Delete``)
points.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, Container, FileEdit, FloatSpinBox, Label, PushButton
from qtpy.QtCore import QTimer

from napari_kinetochores._widgets._common import KinetochoreWidget, show_info, show_warning
from napari_kinetochores._widgets._layers import (
    check_same_scale,
    image_voxel_size,
    points_to_table,
    require_layer,
    set_points,
    source_path,
)
from napari_kinetochores.core.refine import DEFAULT_SNAP_WINDOW_UM, snap_to_centre
from napari_kinetochores.errors import InputError

STATUSES = ("auto", "added", "moved", "deleted")
KEYS = {"snap": "Shift-S", "pair": "Shift-P", "unpair": "Shift-U", "undo": "Control-Z"}
#: Quiet time (ms) after a drag before a move is recorded and saved.
MOVE_SETTLE_MS = 150
UNDO_DEPTH = 200


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

    Parameters
    ----------
    napari_viewer
        The viewer holding the points and image layers.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.points = self.layer_combo("points to correct", "points")
        self.image = self.layer_combo("image (for snapping)", "image", nullable=True)
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
        self.summary = Label(value="")
        self.help = Label(
            value="napari keys: P add, S select, Delete remove, drag to move. "
            f"{KEYS['snap']} snap, {KEYS['pair']} pair two, {KEYS['unpair']} unpair, "
            f"{KEYS['undo']} undo."
        )
        self.help.native.setWordWrap(True)
        rows = [
            Container(widgets=[self.start_button, self.stop_button], layout="horizontal"),
            Container(widgets=[self.snap_button, self.undo_button], layout="horizontal"),
            Container(widgets=[self.pair_button, self.unpair_button], layout="horizontal"),
        ]
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
                self.summary,
                self.help,
            ]
        )
        self.layer: Any = None
        self.image_layer: Any = None
        self.path: Path | None = None
        self.deleted = pd.DataFrame()
        self.undo_stack: list[tuple[np.ndarray, pd.DataFrame, pd.DataFrame]] = []
        self.saved_at: float | None = None
        self._committed: tuple[np.ndarray, pd.DataFrame, pd.DataFrame] | None = None
        self._pending_deleted: pd.DataFrame | None = None
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
        self._suggest_path()

    # ------------------------------------------------------------------ set-up

    def _suggest_path(self, *_: Any) -> None:
        if self.layer is None and self.points.value is not None:
            self.autosave.value = default_autosave_path(self.points.value, self.image.value)

    @property
    def active(self) -> bool:
        """True while a layer is being corrected."""
        return self.layer is not None

    def start(self) -> None:
        """Start correcting the chosen layer (restoring its autosave file if asked)."""
        from napari_kinetochores.io import read_points

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
        path = Path(self.autosave.value)
        if path.suffix.lower() != ".csv":
            path = path.with_name(path.name + ".csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        voxel = tuple(float(s) for s in layer.scale[-3:])

        self.layer, self.image_layer, self.path = layer, image, path
        self.deleted = pd.DataFrame()
        self._suspended = True
        try:
            restored = ""
            if self.restore.value and path.is_file():
                table = read_points(path, voxel_size_um=voxel)
                status = table.get("status", pd.Series("auto", index=table.index)).astype(str)
                live = table[status != "deleted"].reset_index(drop=True)
                self.deleted = table[status == "deleted"].reset_index(drop=True)
                if layer.ndim == 3:
                    live = live.assign(t=0.0)
                set_points(layer, live)
                changed = int((live.get("status", pd.Series(dtype=str)) != "auto").sum())
                restored = (
                    f"restored {len(live)} points ({changed + len(self.deleted)} corrections) "
                    f"from {path.name}"
                )
            self._ensure_features()
        finally:
            self._suspended = False
        layer.events.data.connect(self._on_data)
        for action, key in KEYS.items():
            layer.bind_key(key, self._key_handler(action), overwrite=True)
        self.undo_stack = []
        self._commit()
        self.save()
        for button in (self.snap_button, self.pair_button, self.unpair_button, self.undo_button):
            button.enabled = True
        self.stop_button.enabled = True
        self.undo_button.enabled = False
        self.points.enabled = self.autosave.enabled = False
        message = f"correcting {layer.name!r}; every change is saved to {path}"
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
        for button in (self.snap_button, self.pair_button, self.unpair_button, self.undo_button):
            button.enabled = False
        self.stop_button.enabled = False
        self.points.enabled = self.autosave.enabled = True

    def _key_handler(self, action: str):
        method = {
            "snap": self.snap_selected,
            "pair": self.pair_selected,
            "unpair": self.unpair_selected,
            "undo": self.undo,
        }[action]
        guarded = self.guarded(action.capitalize(), method)

        def handler(_layer: Any) -> None:
            guarded()

        handler.__doc__ = f"napari-kinetochores: {action} (Correct labels)"
        return handler

    def _ensure_features(self) -> None:
        """Give the layer ``status`` (default ``auto``) and ``pair_id`` (default -1) features."""
        layer = self.layer
        features = layer.features.copy()
        n = len(layer.data)
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
        layer.features = features
        defaults = layer.feature_defaults
        defaults["status"] = "added"
        defaults["pair_id"] = -1
        layer.feature_defaults = defaults

    # ------------------------------------------------------------------ state

    def _snapshot(self) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
        return self.layer.data.copy(), self.layer.features.copy(), self.deleted.copy()

    def _commit(self) -> None:
        self._committed = self._snapshot()

    def _push_undo(self) -> None:
        if self._committed is not None:
            self.undo_stack.append(self._committed)
            del self.undo_stack[:-UNDO_DEPTH]
            self.undo_button.enabled = True

    def table(self) -> pd.DataFrame:
        """Everything the autosave file holds: the layer's points and the deleted ones."""
        table = points_to_table(self.layer)
        if self.layer.ndim == 3:
            table["t"] = 0.0
        if len(self.deleted):
            table = pd.concat([table, self.deleted], ignore_index=True)
        return table

    def save(self) -> Path:
        """Write the autosave CSV now (atomic: temporary file, then rename)."""
        from napari_kinetochores.io import write_points

        write_points(self.path, self.table(), tuple(self.layer.scale[-3:]))
        self.saved_at = time.time()
        self._update_summary()
        return self.path

    def _update_summary(self) -> None:
        status = self.layer.features.get("status", pd.Series(dtype=str))
        counts = {s: int((status == s).sum()) for s in STATUSES[:3]}
        counts["deleted"] = len(self.deleted)
        parts = " · ".join(f"{s} {n}" for s, n in counts.items())
        stamp = time.strftime("%H:%M:%S", time.localtime(self.saved_at or time.time()))
        self.summary.value = f"{parts} — saved {stamp}"

    def _apply(self, data: np.ndarray, features: pd.DataFrame) -> None:
        """Set the layer's data and features without recording it as a user change."""
        self._suspended = True
        try:
            self.layer.data = data
            self.layer.features = features.reset_index(drop=True)
        finally:
            self._suspended = False

    # ------------------------------------------------------------------ events

    def _on_data(self, event: Any) -> None:
        if self._suspended or self.layer is None:
            return
        action = str(getattr(event, "action", ""))
        indices = [int(i) for i in getattr(event, "data_indices", ()) or ()]
        try:
            if action == "removing":
                self._removing(indices)
            elif action == "removed":
                self._removed()
            elif action == "added":
                if indices and min(indices) < 0:
                    self._added(indices)
                else:  # the whole data was set (e.g. a detection re-run)
                    self._settle.start()
            elif action == "changed":
                self._settle.start()
        except Exception as error:  # never let an edit escape as a Qt error
            self.fail(error, "Recording the change")

    def _removing(self, indices: list[int]) -> None:
        if self._settle.isActive():
            self._settle.stop()
            self._sync()
        self._push_undo()
        table = points_to_table(self.layer)
        if self.layer.ndim == 3:
            table["t"] = 0.0
        gone = table.iloc[[i for i in indices if 0 <= i < len(table)]]
        gone = gone[gone.get("status", "auto") != "added"].copy()
        gone["status"] = "deleted"
        self._pending_deleted = gone

    def _removed(self) -> None:
        if self._pending_deleted is not None and len(self._pending_deleted):
            self.deleted = pd.concat([self.deleted, self._pending_deleted], ignore_index=True)
        self._pending_deleted = None
        self._commit()
        self.save()

    def _added(self, indices: list[int]) -> None:
        if self._settle.isActive():
            self._settle.stop()
            self._sync()
        self._push_undo()
        n = len(self.layer.data)
        rows = sorted({i % n for i in indices})
        data = self.layer.data.copy()
        features = self.layer.features.copy()
        features.loc[rows, "status"] = "added"
        features.loc[rows, "pair_id"] = -1
        for column in ("score",):
            if column in features.columns:
                features.loc[rows, column] = np.nan
        if "track_id" in features.columns:
            features.loc[rows, "track_id"] = -1
        if self.snap_new.value and self.image_layer is not None:
            data[rows] = self._snapped(data[rows])
        self._apply(data, features)
        self._commit()
        self.save()

    def _sync(self) -> None:
        """Record moves (coordinates that differ from the last committed state)."""
        if self.layer is None or self._committed is None:
            return
        data, features = self.layer.data, self.layer.features
        old = self._committed[0]
        if len(data) == len(old):
            moved = np.any(np.abs(np.asarray(data) - old) > 1e-6, axis=1)
            if not moved.any():
                self._committed = (old, features.copy(), self.deleted.copy())
                self.save()
                return
            self._push_undo()
            features = features.copy()
            status = features["status"].astype(object)
            features["status"] = status.where(~(moved & (status == "auto").to_numpy()), "moved")
            self._apply(data.copy(), features)
            self.set_status(f"moved {int(moved.sum())} point(s)")
        else:  # replaced as a whole (e.g. a detection re-run): the new baseline
            self._push_undo()
            self._suspended = True
            try:
                self._ensure_features()
            finally:
                self._suspended = False
            self.set_status(f"the layer was replaced ({len(data)} points)")
        self._commit()
        self.save()

    # ------------------------------------------------------------------ actions

    def _snapped(self, coords: np.ndarray) -> np.ndarray:
        image = self.image_layer
        voxel = image_voxel_size(image)
        out = np.asarray(coords, dtype=float).copy()
        for row in out:
            if image.ndim == 4:
                t = int(np.clip(np.round(row[0]), 0, image.data.shape[0] - 1))
                frame = image.data[t]
            else:
                frame = image.data
            zyx = np.clip(row[-3:], 0, np.asarray(frame.shape) - 1)
            row[-3:] = snap_to_centre(frame, zyx, voxel, float(self.window.value))
        return out

    def _selected(self, at_least: int = 1) -> list[int]:
        if self.layer is None:
            raise InputError("press Start correcting first")
        selected = sorted(int(i) for i in self.layer.selected_data)
        if len(selected) < at_least:
            raise InputError(f"select at least {at_least} point(s) first (napari key S)")
        return selected

    def snap_selected(self) -> None:
        """Snap the selected points to the intensity centre of their spots."""
        if self.image_layer is None:
            raise InputError("choose an image to snap to, then press Start correcting again")
        rows = self._selected()
        self._push_undo()
        data = self.layer.data.copy()
        features = self.layer.features.copy()
        new = self._snapped(data[rows])
        moved = np.any(np.abs(new - data[rows]) > 1e-6, axis=1)
        data[rows] = new
        status = features["status"].to_numpy(dtype=object)
        for row, was_moved in zip(rows, moved, strict=True):
            if was_moved and status[row] == "auto":
                status[row] = "moved"
        features["status"] = status
        self._apply(data, features)
        self.layer.selected_data = set(rows)
        self._commit()
        self.save()
        self.set_status(f"snapped {len(rows)} point(s)")

    def pair_selected(self) -> None:
        """Give the two selected points (sisters) a new shared pair id."""
        rows = self._selected(2)
        if len(rows) != 2:
            raise InputError(f"select exactly two points to pair (sisters), not {len(rows)}")
        data = self.layer.data
        if self.layer.ndim == 4 and round(data[rows[0], 0]) != round(data[rows[1], 0]):
            raise InputError("sisters must be in the same frame")
        self._push_undo()
        features = self.layer.features.copy()
        known = pd.to_numeric(features["pair_id"], errors="coerce").fillna(-1)
        if len(self.deleted) and "pair_id" in self.deleted:
            known = pd.concat([known, self.deleted["pair_id"]])
        new_id = int(known.max()) + 1 if len(known) else 0
        features.loc[rows, "pair_id"] = max(new_id, 0)
        self._apply(self.layer.data.copy(), features)
        self._commit()
        self.save()
        self.set_status(f"paired points {rows[0]} and {rows[1]} as pair {max(new_id, 0)}")

    def unpair_selected(self) -> None:
        """Clear the pair ids of the selected points."""
        rows = self._selected()
        self._push_undo()
        features = self.layer.features.copy()
        features.loc[rows, "pair_id"] = -1
        self._apply(self.layer.data.copy(), features)
        self._commit()
        self.save()
        self.set_status(f"cleared the pair id of {len(rows)} point(s)")

    def undo(self) -> None:
        """Restore the state before the last change."""
        if self.layer is None:
            raise InputError("press Start correcting first")
        self._settle.stop()
        if not self.undo_stack:
            show_warning("nothing to undo")
            return
        data, features, deleted = self.undo_stack.pop()
        self._apply(data, features)
        self.deleted = deleted
        self._commit()
        self.save()
        self.undo_button.enabled = bool(self.undo_stack)
        self.set_status("undone")
