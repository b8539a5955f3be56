"""Layer defaults of the dock widgets: prediction = newest detections, reference = the reference."""

from __future__ import annotations

import numpy as np
import pytest

from _napari_helpers import VOXEL, add_sample, messages, skip_without_display

skip_without_display()
pytestmark = pytest.mark.gui


@pytest.fixture
def viewer_with_results(make_napari_viewer, sample_cli_detections):
    out = sample_cli_detections
    viewer = make_napari_viewer()
    add_sample(viewer)  # EGFP, mCherry, sample_movie_gt
    viewer.open(str(out), plugin="napari-kinetochores")  # "detections"
    return viewer


def test_new_widgets_pick_the_newest_detections_against_the_reference(viewer_with_results):
    """Evaluate, Correct, Export, Train, Measurements: prediction = newest detections."""
    from napari_kinetochores._napari.io import legend_text
    from napari_kinetochores._widgets.correct import CorrectWidget
    from napari_kinetochores._widgets.evaluate import EvaluateWidget
    from napari_kinetochores._widgets.export import ExportWidget
    from napari_kinetochores._widgets.measurements import MeasurementsWidget
    from napari_kinetochores._widgets.train import TrainWidget

    viewer = viewer_with_results  # EGFP, mCherry, sample_movie_gt, detections
    gt, detections = viewer.layers["sample_movie_gt"], viewer.layers["detections"]
    viewer.layers.move(viewer.layers.index(detections), 2)  # below the reference in the list
    evaluate = EvaluateWidget(viewer)
    assert evaluate.prediction.value is detections and evaluate.reference.value is gt
    export = ExportWidget(viewer)
    assert export.points.value is detections
    assert CorrectWidget(viewer).points.value is detections
    assert TrainWidget(viewer).points.value is detections
    assert MeasurementsWidget(viewer).points_combo.value is detections

    # a newer detections layer becomes the prediction of an untouched widget ...
    newer = viewer.add_points(
        detections.data, name="detections [2]", scale=detections.scale, metadata=detections.metadata
    )
    assert evaluate.prediction.value is newer and evaluate.reference.value is gt
    # ... but never overrides what the user chose
    evaluate.prediction.value = detections
    viewer.add_points(detections.data[:3], name="detections [3]", scale=detections.scale)
    assert evaluate.prediction.value is detections

    # the legend names every marker kind shown; the axes are t, z, y, x
    assert viewer.dims.axis_labels == ("t", "z", "y", "x")
    legend = legend_text(list(viewer.layers))
    assert "yellow circle: detection" in legend and "cyan circle: reference" in legend
    assert viewer.canvas.overlays.text.text == legend and viewer.canvas.overlays.text.visible


def test_evaluate_never_compares_a_layer_with_itself(make_napari_viewer):
    from napari_kinetochores._widgets.evaluate import EvaluateWidget

    viewer = make_napari_viewer()
    add_sample(viewer, reference=False)
    only = viewer.add_points(np.array([[0, 3.0, 10.0, 10.0]]), name="clicks", scale=(1, *VOXEL))
    widget = EvaluateWidget(viewer)
    assert widget.prediction.value is only
    widget.run_button.changed.emit(True)
    assert "same layer" in messages("error")[-1]
    assert widget.evaluation is None
