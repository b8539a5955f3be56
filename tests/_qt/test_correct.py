"""Correct labels widget: statuses, snapping, pairs, undo, autosave and restore."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _napari_helpers import SAMPLE, SAMPLE_GT, VOXEL, add_sample, messages, skip_without_display
from napari_kinetochores.io import read_points

skip_without_display()
pytestmark = pytest.mark.gui


def detections_layer(viewer, gt: pd.DataFrame):
    """A 'detections' layer made of the frame-0/1 ground truth minus two spots."""
    rows = gt[(gt["channel"] == 0) & (gt["t"] < 2)].iloc[2:]
    return viewer.add_points(
        rows[["t", "z", "y", "x"]].to_numpy(),
        name="detections",
        scale=(1.0, *VOXEL),
        features=pd.DataFrame({"score": np.ones(len(rows)), "status": "auto"}),
    )


def press(layer, key: str) -> None:
    """Run the function bound to a key on the layer, as a key press does."""
    from napari.utils.key_bindings import coerce_keybinding

    layer.keymap[coerce_keybinding(key)](layer)


def test_corrections_are_audited_undone_saved_and_restored(make_napari_viewer, qtbot, tmp_path):
    from napari_kinetochores._widgets.correct import CorrectWidget

    viewer = make_napari_viewer()
    egfp = add_sample(viewer, reference=False)[0]
    gt = read_points(SAMPLE_GT, voxel_size_um=VOXEL)
    layer = detections_layer(viewer, gt)
    original = layer.data.copy()
    widget = CorrectWidget(viewer)
    widget.points.value, widget.image.value = layer, egfp
    autosave = tmp_path / "sample_movie.detections.corrections.csv"
    widget.autosave.value = autosave
    widget.start_button.changed.emit(True)
    assert widget.active and autosave.is_file()
    assert "auto 54" in widget.summary.value

    # add a missed kinetochore with an imprecise click: it snaps to the spot centre
    missed = gt[(gt["channel"] == 0) & (gt["t"] == 0)].iloc[0]
    truth = missed[["t", "z", "y", "x"]].to_numpy(float)
    layer.add(truth + [0, 0.8, 1.2, -1.0])
    assert layer.features["status"].iloc[-1] == "added"
    error_nm = np.linalg.norm((layer.data[-1, 1:] - truth[1:]) * VOXEL) * 1000
    assert error_nm < 80
    assert read_points(autosave)["status"].tolist().count("added") == 1

    # move a point (what a drag does), then delete another
    moved = layer.data.copy()
    moved[0, 1:] += [1.0, 2.0, 2.0]
    layer.data = moved
    qtbot.waitUntil(lambda: layer.features["status"].iloc[0] == "moved", timeout=5000)
    layer.selected_data = {3}
    gone = layer.data[3].copy()
    layer.remove_selected()
    assert widget.deleted["status"].tolist() == ["deleted"]
    assert "moved 1" in widget.summary.value and "deleted 1" in widget.summary.value

    # pair two points with the keyboard, undo it
    layer.selected_data = {1, 2}
    press(layer, "Shift-P")
    assert layer.features["pair_id"].iloc[1] == layer.features["pair_id"].iloc[2] >= 0
    press(layer, "Control-Z")
    assert (layer.features["pair_id"].iloc[[1, 2]] == -1).all()
    layer.selected_data = {4, 5}
    widget.pair_button.changed.emit(True)
    pair = int(layer.features["pair_id"].iloc[4])

    # snap a selected point (Shift-S) back to its spot
    layer.selected_data = {0}
    press(layer, "Shift-S")
    assert np.linalg.norm((layer.data[0, 1:] - original[0, 1:]) * VOXEL) < 0.1

    saved = read_points(autosave, voxel_size_um=VOXEL)
    assert sorted(saved["status"].unique()) == ["added", "auto", "deleted", "moved"]
    np.testing.assert_allclose(saved[saved["status"] == "deleted"][["t", "z", "y", "x"]], [gone])
    state = layer.data.copy(), layer.features.copy()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary file

    # "close napari": the layer is gone; reopen the detections and restore
    widget.stop_button.changed.emit(True)
    viewer.layers.remove(layer)
    fresh = detections_layer(viewer, gt)
    again = CorrectWidget(viewer)
    again.points.value, again.image.value = fresh, egfp
    again.autosave.value = autosave
    again.start_button.changed.emit(True)
    np.testing.assert_allclose(fresh.data, state[0])
    assert fresh.features["status"].tolist() == state[1]["status"].tolist()
    assert int(fresh.features["pair_id"].iloc[4]) == pair
    assert len(again.deleted) == 1
    assert any("restored 54 points" in m for m in messages("info"))


def test_mismatched_scale_and_missing_selection(make_napari_viewer):
    from napari_kinetochores._widgets.correct import CorrectWidget, default_autosave_path

    viewer = make_napari_viewer()
    egfp = add_sample(viewer, reference=False)[0]
    unscaled = viewer.add_points(np.array([[0, 10, 40, 40]]), name="clicked")
    widget = CorrectWidget(viewer)
    widget.points.value, widget.image.value = unscaled, egfp
    assert widget.autosave.value == default_autosave_path(unscaled, egfp)
    assert widget.autosave.value == SAMPLE.parent / "sample_movie.clicked.corrections.csv"
    widget.start_button.changed.emit(True)
    assert "different scales" in messages("error")[-1]
    assert not widget.active and len(unscaled.data) == 1

    unscaled.scale = egfp.scale
    widget.autosave.value = None
    widget.start_button.changed.emit(True)
    assert "autosave" in messages("error")[-1]


def test_snap_keeps_clicks_off_existing_points_and_the_view_follows_z(make_napari_viewer, tmp_path):
    from napari_kinetochores._widgets.correct import CorrectWidget

    viewer = make_napari_viewer()
    egfp = add_sample(viewer, reference=False)[0]
    gt = read_points(SAMPLE_GT, voxel_size_um=VOXEL)
    layer = detections_layer(viewer, gt)
    widget = CorrectWidget(viewer)
    assert widget.points.value is layer and widget.image.value is egfp  # the newest detections
    widget.autosave.value = tmp_path / "corrections.csv"
    widget.start_button.changed.emit(True)
    # a click beside a detected spot: snapping would duplicate it, so the click stays
    detected = layer.data[0].copy()
    click = detected + [0, 0, 1.5, 0]
    layer.add(click)
    np.testing.assert_allclose(layer.data[-1], click)
    assert layer.features["status"].iloc[-1] == "added"
    assert any("not snapped" in m and "already has a point" in m for m in messages("info"))

    # a click on a missed spot, one plane off: it snaps, and the z slice follows the point
    missed = gt[(gt["channel"] == 0) & (gt["t"] == 0)].iloc[1][["t", "z", "y", "x"]]
    viewer.dims.set_point(1, 0.0)
    layer.add(missed.to_numpy(float) + [0, 1.0, 0, 0])
    snapped = layer.data[-1]
    assert np.linalg.norm((snapped[1:] - missed.to_numpy(float)[1:]) * VOXEL) < 0.1
    assert viewer.dims.point[1] == pytest.approx(snapped[1] * VOXEL[0], abs=VOXEL[0] / 2)


def test_next_uncertain_key_shows_the_spots_nearest_the_threshold_centred(
    make_napari_viewer, qtbot, tmp_path
):
    from napari_kinetochores._widgets.correct import CorrectWidget

    viewer = make_napari_viewer()
    egfp = add_sample(viewer, reference=False)[0]
    gt = read_points(SAMPLE_GT, voxel_size_um=VOXEL)
    layer = detections_layer(viewer, gt)
    scores = np.full(len(layer.data), 0.9)
    scores[5] = 0.33
    layer.features = pd.DataFrame({"score": scores, "status": "auto"})
    missed = gt[(gt["channel"] == 0) & (gt["t"] < 2)].iloc[1][["t", "z", "y", "x"]]
    missed = missed.to_numpy(float)  # left out of the layer
    grids = np.meshgrid(*(np.arange(n) for n in egfp.data.shape[1:]), indexing="ij")
    offsets = zip(grids, missed[1:], (1.0, 2.0, 2.0), strict=True)
    blob = np.exp(-0.5 * sum(((g - c) / s) ** 2 for g, c, s in offsets))
    score_map = np.zeros(egfp.data.shape, np.float32)
    score_map[int(missed[0])] = 0.24 * blob
    viewer.add_image(score_map, name="detections probability", scale=egfp.scale)
    widget = CorrectWidget(viewer)
    widget.points.value, widget.image.value = layer, egfp
    assert widget.score_map.value.name == "detections probability"  # Detect's name for it
    widget.review_threshold.value = 0.3
    widget.autosave.value = tmp_path / "corrections.csv"
    widget.start_button.changed.emit(True)

    press(layer, "N")  # candidates are found in a worker, then the detection scoring 0.33 first
    assert widget._review_worker is not None and "finding candidate" in widget.status.value
    press(layer, "N")  # pressed again while it runs: only a progress line, nothing skipped
    qtbot.waitUntil(lambda: widget._review_worker is None, timeout=30_000)
    point = layer.data[5]  # selected, in its frame and z slice
    assert layer.selected_data == {5}
    assert viewer.dims.point[0] == point[0]
    assert viewer.dims.point[1] == pytest.approx(point[1] * VOXEL[0], abs=VOXEL[0] / 2)
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    np.testing.assert_allclose(camera.center[-2:], point[2:] * VOXEL[1:], atol=1e-6)
    assert "score 0.33" in widget.status.value and "left to review" in widget.status.value

    widget.next_button.changed.emit(True)  # then the candidate below the threshold (0.24)
    marks = viewer.layers["review: detections"]
    np.testing.assert_allclose(marks.data, [missed], atol=0.1)
    assert layer.selected_data == set() and viewer.layers.selection.active is layer
    assert viewer.dims.point[0] == missed[0] and "candidate" in widget.status.value

    press(layer, "N")  # then the sure detections; the mark is cleared
    assert len(marks.data) == 0 and len(layer.selected_data) == 1
    widget.stop_button.changed.emit(True)
    assert "review: detections" not in viewer.layers


def test_stop_while_candidate_spots_are_searched_drops_the_search(
    make_napari_viewer, qtbot, tmp_path
):
    from napari_kinetochores._widgets.correct import CorrectWidget

    viewer = make_napari_viewer()
    egfp = add_sample(viewer, reference=False)[0]
    layer = detections_layer(viewer, read_points(SAMPLE_GT, voxel_size_um=VOXEL))
    layer.features = pd.DataFrame({"score": np.full(len(layer.data), 0.9), "status": "auto"})
    viewer.add_image(np.zeros(egfp.data.shape, np.float32), name="map", scale=egfp.scale)
    widget = CorrectWidget(viewer)
    widget.points.value, widget.image.value = layer, egfp
    widget.score_map.value = viewer.layers["map"]
    widget.review_threshold.value = 0.3
    widget.autosave.value = tmp_path / "corrections.csv"
    widget.start_button.changed.emit(True)
    press(layer, "N")
    worker = widget._review_worker
    assert worker is not None
    widget.stop_button.changed.emit(True)
    assert widget._review_worker is None and widget._review_progress is None
    qtbot.waitUntil(lambda: not worker.is_running, timeout=30_000)
    assert widget.session.review_threshold is None  # the search's result was dropped
    assert layer.selected_data == set() and "stopped correcting" in widget.status.value
