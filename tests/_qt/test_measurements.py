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


@pytest.mark.parametrize("ids", ["none", "hand-assigned"])
def test_widget_and_cli_give_identical_tables(make_napari_viewer, detections, tmp_path, ids):
    """One pipeline: the widget's defaults and `kinetochores measure`'s give the same CSV,
    with pairs computed, and with hand-assigned pairs (kept by both unless recomputed)."""
    from napari_kinetochores._widgets.measurements import MeasurementsWidget
    from napari_kinetochores.cli import main as cli
    from napari_kinetochores.io import write_points

    table = detections.drop(columns=["pair_id", "track_id", "true_row"])
    if ids == "hand-assigned":  # Correct labels gives every pair a new id in every frame
        table["pair_id"] = detections["pair_id"] + 100 * detections["t"].astype(int)
    points_csv = tmp_path / "points.csv"
    write_points(points_csv, table, VOXEL)
    voxel_args = ["--voxel-size", *map(str, VOXEL)]

    viewer = make_napari_viewer()
    [layer] = viewer.open(str(points_csv), plugin="napari-kinetochores")
    widget = MeasurementsWidget(viewer)
    widget.points_combo.value = layer
    for recompute in (False, True):
        widget.recompute_box.value = recompute
        widget.run(blocking=True)
        widget.export(tmp_path / "widget.csv")
        args = ["measure", str(points_csv), "-o", str(tmp_path / "cli.csv"), *voxel_args]
        assert cli([*args, "--quiet", *(["--recompute"] if recompute else [])]) == 0
        assert (tmp_path / "widget.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()
        kept = ids == "hand-assigned" and not recompute
        assert ("kept from the input" in widget.status.value) == kept
        measured = pd.read_csv(tmp_path / "cli.csv")
        assert (measured.groupby("pair_id")["t"].nunique() > 1).mean() > 0.9  # stable ids
        if kept:  # the user's partners, with one id per pair of tracks
            egfp = table[table["channel"] == 0]
            assert measured["pair_id"].nunique() == detections["pair_id"][egfp.index].nunique()
        # the widget's second run starts from the ids it wrote into the layer: recompute
        # makes it start from scratch, so both runs above compare like with like
        layer.features = layer.features.drop(columns=["pair_id", "track_id"], errors="ignore")
        if ids == "hand-assigned":
            features = layer.features.copy()
            features["pair_id"] = table["pair_id"].to_numpy()
            layer.features = features


def test_pairing_defaults_are_defined_once(make_napari_viewer):
    from napari_kinetochores._widgets.measurements import MeasurementsWidget
    from napari_kinetochores.analysis.pairing import PairingParams
    from napari_kinetochores.cli import build_parser

    defaults = PairingParams()
    widget = MeasurementsWidget(make_napari_viewer())
    assert widget.min_um.value == defaults.min_distance_um
    assert widget.max_um.value == defaults.max_distance_um
    args = build_parser().parse_args(
        ["measure", "p.csv", "-o", "m.csv", "--voxel-size", "1", "1", "1"]
    )
    assert (args.min_distance_um, args.max_distance_um, args.expected_distance_um) == (
        defaults.min_distance_um,
        defaults.max_distance_um,
        defaults.expected_distance_um,
    )
    assert args.track and not args.recompute  # as the widget's "track" and "recompute" boxes
    assert widget.track_box.value and not widget.recompute_box.value
