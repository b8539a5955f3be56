"""Dock widget: sister pairs, tracks, plate and two-colour delta measurements.

A thin shell over :func:`napari_kinetochores.analysis.measurements.measure_points`,
the pipeline ``kinetochores measure`` runs too (same defaults, same rule for
existing ids, so both give the same table):

1. takes a kinetochore Points layer (``(T, Z, Y, X)`` points; a ``channel``
   feature may mark mCherry spots, or a second Points layer holds them);
2. tracks the kinetochores over time (laptrack) and pairs sisters over whole
   tracks, off the GUI thread; a layer's own ``pair_id`` (hand-assigned in
   *Correct labels*, or a reference's) and ``track_id`` are kept unless
   *recompute* is ticked;
3. shows a Tracks layer of the trajectories, a Shapes layer with one line
   per sister pair and frame, a plot of the K–K distance over time per pair
   and of the plate position over time, and a table of the measurements
   whose selected rows select the points (and move the viewer to their
   frame);
4. exports the measurements as CSV (temporary file + rename).

The ``pair_id`` and ``track_id`` are written back to the points layer's
features, so exporting the layer keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, FloatSpinBox, PushButton
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QTableWidget,
    QTableWidgetItem,
)

from napari_kinetochores._widgets._common import (
    KinetochoreWidget,
    PlotCanvas,
    voxel_size_spinboxes,
)
from napari_kinetochores._widgets._layers import points_to_table
from napari_kinetochores.analysis.pairing import PairingParams
from napari_kinetochores.errors import InputError

__all__ = ["MeasurementsWidget", "MeasurementResult", "compute_measurements"]

#: Columns shown in the table (all columns are exported).
TABLE_COLUMNS = (
    "t",
    "track_id",
    "pair_id",
    "kk_distance_um",
    "kk_angle_deg",
    "plate_distance_um",
    "delta_nm",
    "delta_1d_nm",
    "pair_reason",
)


@dataclass
class MeasurementResult:
    """What the widget shows: the measurements and the layers' data.

    Attributes
    ----------
    table : pandas.DataFrame
        :func:`~napari_kinetochores.analysis.measurements.measure_table` output; its
        index is the row of each kinetochore in the points layer.
    plates : pandas.DataFrame
        Per-frame plate fits.
    tracks : (K, 5) float array
        napari Tracks data ``(track_id, t, z, y, x)`` in voxels.
    links : list of (2, 4) arrays
        One line ``[[t, z, y, x], [t, z, y, x]]`` (voxels) per sister pair and
        frame with both sisters.
    pair_id, track_id : (N,) int arrays
        Per point of the layer (-1: none; mCherry rows take their
        kinetochore's ids).
    voxel_size_um : tuple
    summary : str
        One line for the user (the same as ``kinetochores measure`` prints).
    """

    table: pd.DataFrame
    plates: pd.DataFrame
    tracks: np.ndarray
    links: list[np.ndarray]
    pair_id: np.ndarray
    track_id: np.ndarray
    voxel_size_um: tuple[float, float, float]
    summary: str = ""


def compute_measurements(
    points: pd.DataFrame,
    voxel_size_um: tuple[float, float, float],
    *,
    mcherry: pd.DataFrame | None = None,
    track: bool = True,
    recompute: bool = False,
    pairing: PairingParams | None = None,
) -> MeasurementResult:
    """Run the measurement pipeline and shape its result for the layers (no Qt).

    Parameters
    ----------
    points : pandas.DataFrame
        Kinetochore point table (voxels; optional ``channel`` feature, 0 =
        kinetochore, 1 = mCherry). Its index is the layer's point index.
    voxel_size_um : (3,) tuple
        Voxel size (z, y, x) in µm.
    mcherry : pandas.DataFrame, optional
        mCherry spots from a second layer.
    track, recompute, pairing
        As in :func:`~napari_kinetochores.analysis.measurements.measure_points`.

    Returns
    -------
    MeasurementResult
    """
    from napari_kinetochores.analysis.measurements import measure_points

    if len(points) == 0:
        raise InputError("the points layer is empty")
    measured = measure_points(
        points, voxel_size_um, mcherry=mcherry, track=track, recompute=recompute, pairing=pairing
    )
    table = measured.table
    tracks = np.zeros((0, 5))
    if (table["track_id"] >= 0).any():
        tr = table[table["track_id"] >= 0].sort_values(["track_id", "t"])
        tracks = tr[["track_id", "t", "z", "y", "x"]].to_numpy(dtype=float)
    sister = table["sister_row"].to_numpy()
    coords = table[["t", "z", "y", "x"]].to_numpy(dtype=float)
    links = [
        np.stack([coords[row], coords[sister[row]]])
        for row in np.flatnonzero(sister > np.arange(len(sister)))
    ]
    ids = measured.points
    none = np.full(len(ids), -1, dtype=np.int64)
    return MeasurementResult(
        table=table,
        plates=measured.plates,
        tracks=tracks,
        links=links,
        pair_id=ids["pair_id"].to_numpy(np.int64),
        track_id=ids["track_id"].to_numpy(np.int64) if "track_id" in ids else none,
        voxel_size_um=tuple(float(v) for v in voxel_size_um),
        summary=measured.summary(),
    )


class MeasurementsWidget(KinetochoreWidget):
    """Pairs, tracks and measurements of kinetochores, with plots and a table.

    Parameters
    ----------
    napari_viewer
        The viewer (napari passes it when it opens the widget).
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.points_combo = self.layer_combo("kinetochores", "points")
        self.mcherry_combo = self.layer_combo(
            "mCherry spots",
            "points",
            nullable=True,
            tooltip="optional: mCherry spots in their own layer (else the 'channel' feature)",
        )
        self.voxel = voxel_size_spinboxes()
        self.track_box = CheckBox(value=True, text="track over time (laptrack)")
        self.recompute_box = CheckBox(
            value=False,
            text="recompute pairs and tracks",
            tooltip="ignore the layer's own pair_id and track_id (hand-assigned, a reference's, "
            "or an earlier run's) and pair afresh",
        )
        defaults = PairingParams()
        self.min_um = FloatSpinBox(
            label="sister min (µm)", value=defaults.min_distance_um, min=0.0, max=10.0, step=0.05
        )
        self.max_um = FloatSpinBox(
            label="sister max (µm)", value=defaults.max_distance_um, min=0.05, max=10.0, step=0.05
        )
        self.run_button = PushButton(text="Track, pair and measure")
        self.export_button = PushButton(text="Export measurements CSV…")
        self.form.extend(
            [
                self.points_combo,
                self.mcherry_combo,
                *self.voxel,
                self.track_box,
                self.recompute_box,
                self.min_um,
                self.max_um,
                self.run_button,
                self.export_button,
            ]
        )
        self.points_combo.changed.connect(self._take_layer_scale)
        self.run_button.changed.connect(self.guarded("measure", self.run))
        self.export_button.changed.connect(self.guarded("export", self._export_dialog))

        self.plot = PlotCanvas(height=3.6)
        self.table_widget = QTableWidget(0, len(TABLE_COLUMNS))
        self.table_widget.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.table_widget.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table_widget.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table_widget.itemSelectionChanged.connect(self._select_points)
        self.table_widget.setMinimumHeight(180)
        layout = self.layout()
        layout.addWidget(self.plot.canvas)
        layout.addWidget(self.table_widget)

        self.result: MeasurementResult | None = None
        self._layer: Any = None
        self.worker: Any = None
        self._take_layer_scale()

    # ------------------------------------------------------------------ inputs

    def _take_layer_scale(self, *_: Any) -> None:
        layer = self.points_combo.value
        if layer is None:
            return
        scale = np.asarray(layer.scale[-3:], dtype=float)
        if not np.allclose(scale, 1.0):
            for box, value in zip(self.voxel, scale, strict=True):
                box.value = float(value)

    def voxel_size(self) -> tuple[float, float, float]:
        """Voxel size (z, y, x) µm from the spin boxes."""
        return tuple(float(box.value) for box in self.voxel)  # type: ignore[return-value]

    # ------------------------------------------------------------------ run

    def run(self, blocking: bool = False) -> MeasurementResult | None:
        """Compute in a worker thread (``blocking=True``: here, and return the result)."""
        layer = self.points_combo.value
        if layer is None:
            raise InputError("choose a points layer of kinetochores")
        voxel = self.voxel_size()
        points = points_to_table(layer, voxel)
        if len(points) == 0:
            raise InputError(f"the points layer {layer.name!r} is empty")
        mcherry_layer = self.mcherry_combo.value
        mcherry = None
        if mcherry_layer is not None and mcherry_layer is not layer:
            mcherry = points_to_table(mcherry_layer, voxel)
        kwargs = {
            "mcherry": mcherry,
            "track": bool(self.track_box.value) and layer.ndim == 4,
            "recompute": bool(self.recompute_box.value),
            "pairing": PairingParams(
                min_distance_um=float(self.min_um.value), max_distance_um=float(self.max_um.value)
            ),
        }
        self._layer = layer
        if blocking:
            result = compute_measurements(points, voxel, **kwargs)
            self.show_result(result)
            return result
        from napari.qt.threading import create_worker

        self.set_status("tracking, pairing and measuring…")
        self.run_button.enabled = False
        worker = create_worker(compute_measurements, points, voxel, **kwargs)
        worker.returned.connect(self.show_result)
        worker.errored.connect(lambda error: self.fail(error, "measure"))
        worker.finished.connect(lambda: setattr(self.run_button, "enabled", True))
        self.worker = worker
        worker.start()
        return None

    # ------------------------------------------------------------------ output

    def show_result(self, result: MeasurementResult) -> None:
        """Update the layers, the plots and the table."""
        self.result = result
        layer = self._layer
        scale = tuple(float(s) for s in layer.scale) if layer is not None else None
        if layer is not None:
            features = layer.features.copy()
            features["pair_id"] = result.pair_id
            features["track_id"] = result.track_id
            layer.features = features
        name = layer.name if layer is not None else "kinetochores"
        self._show_tracks(result, f"{name} tracks", scale)
        self._show_links(result, f"{name} pairs", scale)
        self._plot(result)
        self._fill_table(result.table)
        self.set_status(result.summary)

    def _replace_layer(self, name: str) -> None:
        old = self.layer_named(name)
        if old is not None:
            self.viewer.layers.remove(old)

    def _show_tracks(self, result: MeasurementResult, name: str, scale: Any) -> None:
        self._replace_layer(name)
        if len(result.tracks) == 0:
            return
        kwargs = {"name": name, "tail_length": 10, "blending": "translucent"}
        if scale is not None and len(scale) == 4:
            kwargs["scale"] = scale
        self.viewer.add_tracks(result.tracks, **kwargs)

    def _show_links(self, result: MeasurementResult, name: str, scale: Any) -> None:
        self._replace_layer(name)
        if not result.links:
            return
        lines = result.links
        kwargs: dict[str, Any] = {"name": name, "edge_color": "yellow", "edge_width": 0.5}
        if scale is not None and len(scale) == 3:
            lines = [line[:, 1:] for line in lines]
        if scale is not None:
            kwargs["scale"] = scale
        self.viewer.add_shapes(lines, shape_type="line", **kwargs)

    def _plot(self, result: MeasurementResult) -> None:
        figure = self.plot.figure
        figure.clear()
        ax_kk = figure.add_subplot(211)
        ax_plate = figure.add_subplot(212, sharex=ax_kk)
        self.plot.style(ax_kk, "K–K distance (µm)")
        self.plot.style(ax_plate, "plate position (µm)", "frame")
        table = result.table
        paired = table[(table["pair_id"] >= 0) & table["kk_distance_um"].notna()]
        per_pair = paired.groupby(["pair_id", "t"])["kk_distance_um"].first().reset_index()
        for _, group in per_pair.groupby("pair_id"):
            ax_kk.plot(group["t"], group["kk_distance_um"], lw=0.8, alpha=0.7)
        plates = result.plates
        if len(plates):
            ax_plate.plot(
                plates["t"], plates["plate_position_um"], color="#7fc97f", marker=".", lw=1.2
            )
        self.plot.draw()

    def _fill_table(self, table: pd.DataFrame) -> None:
        widget = self.table_widget
        widget.blockSignals(True)
        widget.clearContents()
        widget.setRowCount(len(table))
        for c, column in enumerate(TABLE_COLUMNS):
            if column not in table.columns:
                continue
            values = table[column].to_numpy()
            for r, value in enumerate(values):
                if isinstance(value, float | np.floating):
                    digits = ".0f" if column == "t" else ".3f"
                    text = "" if not np.isfinite(value) else f"{value:{digits}}"
                else:
                    text = str(value)
                widget.setItem(r, c, QTableWidgetItem(text))
        widget.blockSignals(False)

    def _select_points(self) -> None:
        if self.result is None or self._layer is None:
            return
        rows = sorted({index.row() for index in self.table_widget.selectedIndexes()})
        if rows:
            self.select_rows(rows)

    def select_rows(self, rows: list[int]) -> set[int]:
        """Select the points of table rows ``rows``; move the viewer to the first one's frame.

        Returns the selected point indices of the layer.
        """
        assert self.result is not None
        indices = {int(i) for i in self.result.table.index.to_numpy()[list(rows)]}
        layer = self._layer
        layer.selected_data = indices
        if layer.ndim == 4:
            t = float(self.result.table["t"].iloc[rows[0]])
            axis = self.viewer.dims.ndim - layer.ndim
            self.viewer.dims.set_point(axis, t * float(layer.scale[0]) + float(layer.translate[0]))
        return indices

    # ------------------------------------------------------------------ export

    def export(self, path: str | Path) -> Path:
        """Write the measurements as CSV (temporary file + rename)."""
        from napari_kinetochores.analysis.measurements import write_measurements

        if self.result is None:
            raise InputError("nothing to export yet: run the measurements first")
        return write_measurements(path, self.result.table, self.result.voxel_size_um)

    def _export_dialog(self) -> None:
        if self.result is None:
            raise InputError("nothing to export yet: run the measurements first")
        path, _ = QFileDialog.getSaveFileName(
            self, "Export measurements", "measurements.csv", "CSV (*.csv)"
        )
        if path:
            self.set_status(f"wrote {self.export(path)}")
