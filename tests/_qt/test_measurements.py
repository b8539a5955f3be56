"""The measurements dock widget: tracks, pair lines, plots, table selection, export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _napari_helpers import skip_without_display

skip_without_display()
pytest.importorskip("napari")

VOXEL = (0.3, 0.13, 0.13)


@pytest.fixture(scope="module")
def detections() -> pd.DataFrame:
    """Both channels of a small simulated movie, with 30 nm noise and the truth kept."""
    from napari_kinetochores.analysis.measurements import perturb_points
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    params = SimulationParams(n_frames=4, shape_zyx=(24, 72, 72), n_pairs=8, plate_tilt_deg=20)
    movie = simulate_movie(params, seed=4)
    return perturb_points(movie.points, VOXEL, noise_nm=17, dropout=0.0, seed=2)


def test_widget_tracks_pairs_plots_table_and_export(make_napari_viewer, detections, tmp_path):
    from napari_kinetochores._widgets.measurements import TABLE_COLUMNS, MeasurementsWidget
    from napari_kinetochores.analysis.measurements import pairing_accuracy

    viewer = make_napari_viewer()
    features = detections[["channel"]].reset_index(drop=True)
    layer = viewer.add_points(
        detections[["t", "z", "y", "x"]].to_numpy(),
        features=features,
        scale=(1, *VOXEL),
        name="spots",
    )
    widget = MeasurementsWidget(viewer)
    widget.points_combo.value = layer
    assert widget.voxel_size() == pytest.approx(VOXEL)  # taken from the layer scale

    result = widget.run(blocking=True)
    kin = detections["channel"].to_numpy() == 0
    n_kin = int(kin.sum())

    # ids are written back to the layer and match the truth
    acc = pairing_accuracy(
        detections["t"][kin], detections["pair_id"][kin], layer.features["pair_id"][kin]
    )
    assert acc["pair_recall"] == 1.0
    assert layer.features["track_id"][kin].nunique() == detections["track_id"][kin].nunique()

    tracks = viewer.layers["spots tracks"]
    assert tracks.__class__.__name__ == "Tracks"
    assert len(np.unique(tracks.data[:, 0])) == detections["track_id"][kin].nunique()
    assert tuple(tracks.scale) == pytest.approx((1, *VOXEL))

    links = viewer.layers["spots pairs"]
    assert links.__class__.__name__ == "Shapes"
    assert set(links.shape_type) == {"line"}
    assert links.nshapes == n_kin // 2  # every sister pair in every frame
    line = links.data[0]
    assert line.shape == (2, 4) and line[0, 0] == line[1, 0]  # both ends in one frame

    # plots: one K–K line per pair, the plate position over time
    ax_kk, ax_plate = widget.plot.figure.axes
    assert len(ax_kk.lines) == 8
    assert len(ax_plate.lines[0].get_xdata()) == 4

    # table: one row per kinetochore and frame; selecting rows selects the points
    table = widget.table_widget
    assert table.rowCount() == n_kin
    assert [table.horizontalHeaderItem(i).text() for i in range(table.columnCount())] == list(
        TABLE_COLUMNS
    )
    row = 5
    table.selectRow(row)
    expected = int(result.table.index[row])
    assert layer.selected_data == {expected}
    assert viewer.dims.point[0] == pytest.approx(result.table["t"].iloc[row])
    assert float(table.item(row, TABLE_COLUMNS.index("kk_distance_um")).text()) == pytest.approx(
        result.table["kk_distance_um"].iloc[row], abs=1e-3
    )

    # the delta came from the mCherry rows (channel 1) of the same layer
    assert result.table["delta_nm"].notna().mean() > 0.95

    out = widget.export(tmp_path / "measurements.csv")
    written = pd.read_csv(out)
    assert len(written) == n_kin
    assert {"kk_distance_um", "plate_distance_um", "delta_nm", "pair_id"} <= set(written.columns)

    # running again replaces the layers instead of adding more
    widget.run(blocking=True)
    assert [lyr.name for lyr in viewer.layers].count("spots pairs") == 1


def test_widget_reports_empty_layer(make_napari_viewer):
    from napari_kinetochores._widgets.measurements import MeasurementsWidget

    viewer = make_napari_viewer()
    layer = viewer.add_points(np.zeros((0, 4)), name="empty")
    widget = MeasurementsWidget(viewer)
    widget.points_combo.value = layer
    widget.run_button.changed.emit(True)  # the guarded button: an error becomes a notification
    assert "empty" in widget.status.value
    assert widget.result is None
