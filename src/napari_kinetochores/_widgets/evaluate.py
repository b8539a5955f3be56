"""Evaluate / match: compare a prediction layer with a reference layer.

The numbers come from :func:`napari_kinetochores.analysis.matching.evaluate_points`
with the same cutoffs as ``kinetochores evaluate``, so the widget and the CLI
agree. The widget adds, for the eye:

- a Points layer with one point per prediction (TP or FP) and per missed
  reference point (FN), coloured by its ``status`` feature (TP green, FP red,
  FN blue; see :func:`napari_kinetochores.analysis.matching.match_table`);
- a Vectors layer linking each matched prediction to its reference point;
- a table of P, R, F1 and the localisation errors (nm), overall and per frame;
- a plot of F1 and the median error per frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from magicgui.widgets import FloatSpinBox, PushButton, SpinBox
from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from napari_kinetochores._napari.io import MATCH_COLOURS, META_KEY, marker_style
from napari_kinetochores._widgets._common import KinetochoreWidget, PlotCanvas
from napari_kinetochores._widgets._layers import (
    check_same_scale,
    layer_kind,
    points_to_table,
    require_layer,
)
from napari_kinetochores.analysis.matching import (
    DEFAULT_CUTOFF_UM,
    REPORTED_CUTOFFS_UM,
    error_summary,
    evaluate_points,
    match_table,
)
from napari_kinetochores.errors import InputError

STATUS_COLOURS = MATCH_COLOURS
COLUMNS = (
    ("frame", None),
    ("predicted", "n_pred"),
    ("reference", "n_gt"),
    ("TP", "tp@{c}"),
    ("FP", "fp@{c}"),
    ("FN", "fn@{c}"),
    ("precision", "precision@{c}"),
    ("recall", "recall@{c}"),
    ("F1", "f1@{c}"),
    ("F1@0.15", "f1@0.15"),
    ("median nm", "median_nm"),
    ("mean nm", "mean_nm"),
    ("p95 nm", "p95_nm"),
)


def format_value(key: str, value: Any) -> str:
    """How the table shows a metric: counts as integers, ratios to 4 decimals, nm to 0.1."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if key.startswith(("tp@", "fp@", "fn@", "n_")):
        return str(int(value))
    if key.endswith("_nm"):
        return f"{float(value):.1f}"
    return f"{float(value):.4f}"


class EvaluateWidget(KinetochoreWidget):
    """Match predictions to reference points: coloured points, links, table and plot.

    Parameters
    ----------
    napari_viewer
        The viewer holding the two Points layers.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.prediction = self.layer_combo("prediction", "points")
        self.reference = self.layer_combo("reference", "points")
        self.cutoff = FloatSpinBox(
            label="cutoff (µm)", value=DEFAULT_CUTOFF_UM, min=0.01, max=10.0, step=0.05
        )
        self.channel = SpinBox(
            label="channel (-1: all)",
            value=0,
            min=-1,
            max=16,
            tooltip="evaluate only rows of this channel (0: EGFP kinetochores)",
        )
        self.run_button = PushButton(text="Evaluate")
        self.form.extend(
            [self.prediction, self.reference, self.cutoff, self.channel, self.run_button]
        )
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([name for name, _ in COLUMNS])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(140)
        self.plot = PlotCanvas()
        self.layout().addWidget(self.table)
        self.layout().addWidget(self.plot.canvas)
        self.evaluation: Any = None
        self.matches: pd.DataFrame | None = None
        self.match_layer: Any = None
        self.link_layer: Any = None
        self.run_button.changed.connect(self.guarded("Evaluation", self.run))

    # ------------------------------------------------------------------ run

    def run(self) -> Any:
        """Evaluate the chosen layers and show the results.

        Returns
        -------
        napari_kinetochores.analysis.matching.Evaluation
        """
        pred_layer = require_layer(self.prediction.value, "points", "the prediction")
        ref_layer = require_layer(self.reference.value, "points", "the reference")
        if pred_layer is ref_layer:
            raise InputError(
                f"prediction and reference are the same layer ({pred_layer.name!r}); "
                "choose the reference labels as reference"
            )
        check_same_scale(pred_layer, ref_layer)
        voxel = tuple(float(s) for s in pred_layer.scale[-3:])
        pred = points_to_table(pred_layer, voxel)
        ref = points_to_table(ref_layer, voxel)
        cutoff = float(self.cutoff.value)
        channel = None if self.channel.value < 0 else int(self.channel.value)
        cutoffs = sorted(set(REPORTED_CUTOFFS_UM) | {cutoff})
        self.evaluation = evaluate_points(
            pred, ref, voxel, cutoffs_um=cutoffs, main_cutoff_um=cutoff, channel=channel
        )
        self.matches = match_table(pred, ref, voxel, cutoff, channel)
        self._show_layers(pred_layer, ref_layer)
        self._fill_table()
        self._draw()
        o = self.evaluation.overall
        c = f"{cutoff:g}"
        message = (
            f"F1 {o[f'f1@{c}']:.4f} (P {o[f'precision@{c}']:.4f}, R {o[f'recall@{c}']:.4f}) "
            f"at {c} µm; {error_summary(o, cutoff, detail=False)}"
        )
        self.announce(message)
        return self.evaluation

    def _show_layers(self, pred_layer: Any, ref_layer: Any) -> None:
        from matplotlib.colors import to_rgba

        table = self.matches
        ndim = pred_layer.ndim
        coords = table[["t", "z", "y", "x"]].to_numpy(float)[:, 4 - ndim :]
        colours = np.array([to_rgba(STATUS_COLOURS[s]) for s in table["status"]]).reshape(-1, 4)
        features = table[["status", "distance_nm"]].reset_index(drop=True)
        name = f"{pred_layer.name} vs {ref_layer.name}"
        layer = self.layer_named(f"{name}: matches")
        if layer_kind(layer) != "points" or layer.ndim != ndim:
            layer = self.viewer.add_points(
                np.zeros((0, ndim)),
                ndim=ndim,
                name=f"{name}: matches",
                scale=pred_layer.scale,
                translate=pred_layer.translate,
                **marker_style(True, pred_layer.scale),
                metadata={META_KEY: {"kind": "matches"}},
            )
        layer.data = coords
        layer.features = features
        layer.border_color = colours
        layer.scale = pred_layer.scale
        self.match_layer = layer

        tp = table[table["status"] == "TP"]
        start = tp[["t", "z", "y", "x"]].to_numpy(float)[:, 4 - ndim :]
        end = tp[["t", "ref_z", "ref_y", "ref_x"]].to_numpy(float)[:, 4 - ndim :]
        vectors = np.stack([start, end - start], axis=1).reshape(-1, 2, ndim)
        links = self.layer_named(f"{name}: links")
        if layer_kind(links) != "vectors" or links.ndim != ndim:
            links = self.viewer.add_vectors(
                np.zeros((0, 2, ndim)),
                ndim=ndim,
                name=f"{name}: links",
                scale=pred_layer.scale,
                translate=pred_layer.translate,
                edge_color="white",
                edge_width=0.6,
                vector_style="line",
            )
        links.data = vectors
        links.edge_color = "white"
        links.features = pd.DataFrame({"distance_nm": tp["distance_nm"].to_numpy()})
        self.link_layer = links

    def _fill_table(self) -> None:
        evaluation = self.evaluation
        c = f"{evaluation.main_cutoff_um:g}"
        rows = [("all", evaluation.overall)]
        rows += [(str(int(r["t"])), r) for r in evaluation.per_frame.to_dict(orient="records")]
        self.table.setRowCount(len(rows))
        for i, (label, values) in enumerate(rows):
            for j, (_, key) in enumerate(COLUMNS):
                if key is None:
                    text = label
                else:
                    key = key.format(c=c)
                    text = format_value(key, values.get(key))
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def cell(self, row: int, column: str) -> str:
        """The text the table shows in a row (0 = overall) and a named column."""
        j = [name for name, _ in COLUMNS].index(column)
        return self.table.item(row, j).text()

    def _draw(self) -> None:
        per_frame = self.evaluation.per_frame
        c = f"{self.evaluation.main_cutoff_um:g}"
        ax = self.plot.axes(f"F1 at {c} µm", "frame")
        if len(per_frame):
            ax.plot(per_frame["t"], per_frame[f"f1@{c}"], "o-", color=STATUS_COLOURS["TP"])
        ax.set_ylim(0, 1.05)
        twin = ax.twinx()
        self.plot.style(twin, "median error (nm)")
        if len(per_frame):
            twin.plot(per_frame["t"], per_frame["median_nm"], "s--", color="#ffb000")
            medians = per_frame["median_nm"].to_numpy(float)
            top = medians[np.isfinite(medians)].max(initial=0.0)  # no matches: all NaN
            twin.set_ylim(0, max(10.0, 1.2 * top))
        ax.set_xticks(per_frame["t"].tolist() if len(per_frame) <= 20 else ax.get_xticks())
        self.plot.draw()
