"""Export: write points, matched points and sister pairs as CSV tables.

- **points**: a Points layer in the package schema (``t, z, y, x`` voxels,
  ``z_um, y_um, x_um``, then ``channel, score, status, pair_id, …``);
- **matched points**: every prediction with its matched reference point, the
  distance in nm and its status (TP/FP), and every missed reference point
  (FN), from :func:`napari_kinetochores.analysis.matching.match_table`;
- **sister pairs**: the points sorted by frame and pair, with their
  ``pair_id`` (assigned in Correct labels, or by the library's pairing when
  the layer has none).

Every file is written to a temporary file and renamed, so an existing file is
never left half-written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from magicgui.widgets import ComboBox, FileEdit, FloatSpinBox, PushButton, SpinBox

from napari_kinetochores._widgets._common import KinetochoreWidget
from napari_kinetochores._widgets._layers import (
    check_same_scale,
    points_to_table,
    require_layer,
    source_path,
)
from napari_kinetochores.analysis.matching import DEFAULT_CUTOFF_UM
from napari_kinetochores.errors import InputError

KINDS = (("points", "points"), ("matched points", "matched"), ("sister pairs", "pairs"))


def pairs_table(points: pd.DataFrame, voxel_size_um: tuple[float, float, float]) -> pd.DataFrame:
    """The points with sister-pair ids, sorted by frame and pair.

    Uses the table's ``pair_id`` when any point has one (hand-assigned);
    otherwise pairs the kinetochores with the library's pairing.
    """
    has_ids = "pair_id" in points.columns and (pd.to_numeric(points["pair_id"]) >= 0).any()
    if not has_ids:
        try:
            from napari_kinetochores.analysis.pairing import pair_table
        except ImportError:
            raise InputError(
                "the points have no pair ids; assign them in Correct labels (Shift-P)"
            ) from None
        points = pair_table(points, voxel_size_um)
    out = points[pd.to_numeric(points["pair_id"]) >= 0]
    return out.sort_values(["t", "pair_id"], kind="stable").reset_index(drop=True)


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
        self.channel = SpinBox(label="channel (-1: all)", value=0, min=-1, max=16, visible=False)
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
        self.reference.visible = self.cutoff.visible = self.channel.visible = matched
        self._suggest_path()

    def _suggest_path(self, *_: Any) -> None:
        layer = self.points.value
        if layer is None:
            return
        folder = source_path(layer)
        folder = folder.parent if folder is not None else Path.home()
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in layer.name)
        self.path.value = folder / f"{name}.{self.kind.value}.csv"

    def table(self) -> tuple[pd.DataFrame, tuple[float, float, float]]:
        """The table to export and its voxel size, from the form."""
        from napari_kinetochores.analysis.matching import match_table

        layer = require_layer(self.points.value, "points", "export")
        voxel = tuple(float(s) for s in layer.scale[-3:])
        table = points_to_table(layer, voxel)
        if self.kind.value == "matched":
            reference = require_layer(self.reference.value, "points", "the reference")
            check_same_scale(layer, reference)
            channel = None if self.channel.value < 0 else int(self.channel.value)
            ref = points_to_table(reference, voxel)
            table = match_table(table, ref, voxel, float(self.cutoff.value), channel)
        elif self.kind.value == "pairs":
            table = pairs_table(table, voxel)
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
