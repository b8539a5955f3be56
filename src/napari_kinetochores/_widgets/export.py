"""Export: write points, matched points and sister pairs as CSV tables.

- **points**: a Points layer in the package schema (``t, z, y, x`` voxels,
  ``z_um, y_um, x_um``, then ``channel, score, status, pair_id, …``);
- **matched points**: every prediction with its matched reference point, the
  distance in nm and its ``match_status`` (TP/FP), and every missed reference
  point (FN); the points' own columns stay, so ``status`` is still the
  correction status (:func:`napari_kinetochores.analysis.matching.matched_export_table`);
- **sister pairs**: the paired points sorted by frame and pair, with ids
  stable along tracks: the layer's own pairs (*Correct labels*, a reference)
  or pairs of whole tracks, as the Measurements widget computes them
  (:func:`napari_kinetochores.analysis.measurements.sister_pairs_table`).

Files default beside the movie (the folder of the image layer the points sit
on, as the corrections' autosave file), named ``<movie>.<layer>.<kind>.csv``.
Every file is written to a temporary file and renamed, so an existing file is
never left half-written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, FileEdit, FloatSpinBox, PushButton, SpinBox

from napari_kinetochores._widgets._common import KinetochoreWidget
from napari_kinetochores._widgets._layers import (
    SCALE_RTOL,
    check_same_scale,
    layer_kind,
    points_to_table,
    require_layer,
    source_path,
)
from napari_kinetochores.analysis.matching import DEFAULT_CUTOFF_UM
from napari_kinetochores.errors import InputError

KINDS = (("points", "points"), ("matched points", "matched"), ("sister pairs", "pairs"))


def movie_path(viewer: Any, points: Any) -> Path | None:
    """The file of the movie a points layer sits on: the newest image layer of the same
    scale with a known file (else any image with one), else the points' own file."""
    images = [
        layer
        for layer in reversed(list(viewer.layers))
        if layer_kind(layer) == "image" and source_path(layer) is not None
    ]
    scale = np.asarray(points.scale[-3:], float)
    same = [i for i in images if np.allclose(i.scale[-3:], scale, rtol=SCALE_RTOL, atol=0)]
    for layer in (*same, *images, points):
        path = source_path(layer)
        if path is not None:
            return path
    return None


def default_export_path(viewer: Any, points: Any, kind: str) -> Path:
    """``<movie>.<layer>.<kind>.csv`` beside the movie; ``~/napari-kinetochores/`` without one."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in points.name).strip("_")
    path = movie_path(viewer, points)
    if path is None:
        return Path.home() / "napari-kinetochores" / f"{safe or 'points'}.{kind}.csv"
    stem = path.name.split(".")[0]
    return path.parent / f"{stem}.{safe or 'points'}.{kind}.csv"


class ExportWidget(KinetochoreWidget):
    """Write points, matched points or sister pairs to CSV (atomically).

    Parameters
    ----------
    napari_viewer
        The viewer holding the Points layers.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.kind = ComboBox(label="export", choices=list(KINDS), value="points")
        self.points = self.layer_combo("points / prediction", "points")
        self.reference = self.layer_combo("reference", "points", nullable=True, visible=False)
        self.cutoff = FloatSpinBox(
            label="cutoff (µm)", value=DEFAULT_CUTOFF_UM, min=0.01, max=10.0, visible=False
        )
        self.channel = SpinBox(
            label="channel (-1: all)",
            value=0,
            min=-1,
            max=16,
            visible=False,
            tooltip="matched: the channel compared; pairs: the kinetochore channel "
            "(other channels' spots follow their kinetochore)",
        )
        self.path = FileEdit(label="CSV file", mode="w", filter="*.csv", nullable=True)
        self.export_button = PushButton(text="Export")
        self.form.extend(
            [
                self.kind,
                self.points,
                self.reference,
                self.cutoff,
                self.channel,
                self.path,
                self.export_button,
            ]
        )
        self.kind.changed.connect(self._kind_changed)
        self.points.changed.connect(self._suggest_path)
        self.export_button.changed.connect(self.guarded("Export", self.export))
        self._suggest_path()

    def _kind_changed(self, *_: Any) -> None:
        matched = self.kind.value == "matched"
        self.reference.visible = self.cutoff.visible = matched
        self.channel.visible = matched or self.kind.value == "pairs"
        self._suggest_path()

    def _suggest_path(self, *_: Any) -> None:
        layer = self.points.value
        if layer is not None:
            self.path.value = default_export_path(self.viewer, layer, self.kind.value)

    def table(self) -> tuple[pd.DataFrame, tuple[float, float, float]]:
        """The table to export and its voxel size, from the form."""
        from napari_kinetochores.analysis.matching import matched_export_table
        from napari_kinetochores.analysis.measurements import sister_pairs_table

        layer = require_layer(self.points.value, "points", "export")
        voxel = tuple(float(s) for s in layer.scale[-3:])
        table = points_to_table(layer, voxel)
        channel = None if self.channel.value < 0 else int(self.channel.value)
        if self.kind.value == "matched":
            reference = require_layer(self.reference.value, "points", "the reference")
            check_same_scale(layer, reference)
            ref = points_to_table(reference, voxel)
            table = matched_export_table(table, ref, voxel, float(self.cutoff.value), channel)
        elif self.kind.value == "pairs":
            table = sister_pairs_table(table, voxel, channel=channel)
        return table, voxel  # type: ignore[return-value]

    def export(self) -> Path:
        """Write the chosen table (temporary file, then rename).

        Returns
        -------
        Path
            The file written.
        """
        from napari_kinetochores.io import write_points

        if self.path.value is None or not str(self.path.value).strip():
            raise InputError("choose the CSV file to write")
        path = Path(self.path.value)
        if path.suffix.lower() != ".csv":
            path = path.with_name(path.name + ".csv")
        if not path.parent.is_dir():
            raise InputError("the folder does not exist", path.parent)
        table, voxel = self.table()
        write_points(path, table, voxel)
        message = f"wrote {len(table)} rows to {path}"
        self.announce(message)
        return path
