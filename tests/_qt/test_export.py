"""Export widget: points, matched points (correction status kept) and sister pairs (stable ids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _napari_helpers import SAMPLE, SAMPLE_GT, VOXEL, add_sample, messages, skip_without_display
from napari_kinetochores.analysis.matching import match_table
from napari_kinetochores.io import read_points

skip_without_display()
pytestmark = pytest.mark.gui


@pytest.fixture
def cli_detections(sample_cli_detections):
    return sample_cli_detections


@pytest.fixture
def viewer_with_results(make_napari_viewer, cli_detections):
    viewer = make_napari_viewer()
    add_sample(viewer)  # EGFP, mCherry, sample_movie_gt
    viewer.open(str(cli_detections), plugin="napari-kinetochores")  # "detections"
    return viewer


def export(widget, kind: str, layer, path: Path) -> pd.DataFrame:
    """Export through the form, as a user does, and read the file back."""
    widget.kind.value = kind
    widget.points.value = layer
    widget.path.value = path
    widget.export_button.changed.emit(True)
    return read_points(path)


def row_of(layer) -> dict[tuple, int]:
    """Point index of the layer for each rounded (t, z, y, x)."""
    return {tuple(np.round(p, 4)): i for i, p in enumerate(np.asarray(layer.data))}


def test_export_points_and_matched_keeps_the_correction_status(viewer_with_results, tmp_path):
    from napari_kinetochores._widgets.export import ExportWidget

    viewer = viewer_with_results
    detections = viewer.layers["detections"]
    widget = ExportWidget(viewer)
    widget.points.value = detections
    # beside the movie (as the corrections' autosave), not in the home folder
    assert widget.path.value == SAMPLE.parent / "sample_movie.detections.points.csv"

    table = export(widget, "points", detections, tmp_path / "points.csv")
    np.testing.assert_allclose(table[["t", "z", "y", "x"]], detections.data)
    np.testing.assert_allclose(table["y_um"], detections.data[:, 2] * 0.13)
    assert "wrote" in messages("info")[-1]

    # corrections give the points a status; the matched export keeps it
    features = detections.features.copy()
    status = np.array(["auto"] * len(detections.data), dtype=object)
    status[[0, 5, 9]] = ["moved", "added", "moved"]
    features["status"] = status
    detections.features = features
    widget.kind.value = "matched"
    assert not widget.reference.native.isHidden()
    assert widget.path.value.name == "sample_movie.detections.matched.csv"
    widget.reference.value = viewer.layers["sample_movie_gt"]
    matched = export(widget, "matched", detections, tmp_path / "matched.csv")
    pred = read_points(tmp_path / "points.csv")
    gt = read_points(SAMPLE_GT, voxel_size_um=VOXEL)
    expected = match_table(pred, gt, VOXEL, 0.3, 0)
    assert matched["match_status"].tolist() == expected["status"].tolist()
    np.testing.assert_allclose(matched["distance_nm"], expected["distance_nm"])
    predicted = matched["pred_row"].to_numpy() >= 0
    assert (
        matched.loc[predicted, "status"].tolist() == status[matched["pred_row"][predicted]].tolist()
    )
    assert set(matched.loc[predicted, "status"]) == {"auto", "moved", "added"}
    assert matched.loc[~predicted, "status"].isna().all()  # a missed reference point has none
    assert {"ref_z_um", "ref_y_um", "ref_x_um", "distance_nm"} <= set(matched.columns)

    widget.path.value = tmp_path / "missing-folder" / "x.csv"
    widget.export_button.changed.emit(True)
    assert "does not exist" in messages("error")[-1]
    assert not list(tmp_path.glob(".*tmp"))


def test_pair_ids_are_stable_along_tracks_and_equal_the_measurements(viewer_with_results, tmp_path):
    from napari_kinetochores._widgets.export import ExportWidget
    from napari_kinetochores._widgets.measurements import MeasurementsWidget

    viewer = viewer_with_results
    detections = viewer.layers["detections"]
    assert "pair_id" not in detections.features.columns
    pairs = export(ExportWidget(viewer), "pairs", detections, tmp_path / "pairs.csv")
    n_frames = int(pairs["t"].nunique())
    assert n_frames == 4
    per_frame = pairs.groupby("t")["pair_id"].nunique()
    # one id per sister pair, not per pair and frame (it was 52 for 13 pairs x 4 frames)
    assert pairs["pair_id"].nunique() <= per_frame.max() + 2
    assert (pairs.groupby("pair_id")["t"].nunique() >= 3).mean() > 0.9
    assert (pairs.groupby("pair_id")["track_id"].nunique() == 2).all()
    assert pairs.groupby(["t", "pair_id"]).size().max() == 2

    # the Measurements widget gives the same pairs the same ids
    measurements = MeasurementsWidget(viewer)
    measurements.points_combo.value = detections
    measurements.run(blocking=True)
    rows = row_of(detections)
    index = [rows[tuple(np.round(p, 4))] for p in pairs[["t", "z", "y", "x"]].to_numpy()]
    np.testing.assert_array_equal(
        detections.features["pair_id"].to_numpy()[index], pairs["pair_id"]
    )


def test_hand_assigned_pairs_keep_their_partners_and_get_one_id(make_napari_viewer, tmp_path):
    """Pairs assigned frame by frame (Correct labels gives each a new id) export with one id."""
    from napari_kinetochores._widgets.export import ExportWidget

    viewer = make_napari_viewer()
    add_sample(viewer, reference=False)
    gt = read_points(SAMPLE_GT, voxel_size_um=VOXEL)
    hand = gt["pair_id"] + 100 * gt["t"].astype(int)  # a new id in every frame
    layer = viewer.add_points(
        gt[["t", "z", "y", "x"]].to_numpy(),
        features=pd.DataFrame({"channel": gt["channel"], "pair_id": hand}),
        scale=(1, *VOXEL),
        name="corrected",
    )
    pairs = export(ExportWidget(viewer), "pairs", layer, tmp_path / "pairs.csv")
    assert len(pairs) == len(gt)
    truth = {
        tuple(np.round(p, 4)): k
        for p, k in zip(gt[["t", "z", "y", "x"]].to_numpy(), gt["pair_id"], strict=True)
    }
    true_pair = np.array(
        [truth[tuple(np.round(p, 4))] for p in pairs[["t", "z", "y", "x"]].to_numpy()]
    )
    # partners unchanged, and one id per true pair over all frames
    mapping = pd.DataFrame({"true": true_pair, "exported": pairs["pair_id"]}).drop_duplicates()
    assert len(mapping) == gt["pair_id"].nunique() == pairs["pair_id"].nunique()


def test_export_path_without_a_movie_file(make_napari_viewer):
    from napari_kinetochores._widgets.export import ExportWidget

    viewer = make_napari_viewer()
    viewer.add_points(np.zeros((1, 4)), name="my clicks")
    widget = ExportWidget(viewer)
    assert widget.path.value == Path.home() / "napari-kinetochores" / "my_clicks.points.csv"
