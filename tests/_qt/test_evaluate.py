"""Evaluate / match widget: the same numbers and messages as ``kinetochores evaluate``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _napari_helpers import SAMPLE_GT, VOXEL, add_sample, messages, skip_without_display
from napari_kinetochores.cli import main as cli

skip_without_display()
pytestmark = pytest.mark.gui

VOXEL_ARGS = ["--voxel-size", *map(str, VOXEL)]


@pytest.fixture
def cli_detections(sample_cli_detections):
    return sample_cli_detections


@pytest.fixture
def viewer_with_results(make_napari_viewer, cli_detections):
    viewer = make_napari_viewer()
    add_sample(viewer)  # EGFP, mCherry, sample_movie_gt
    viewer.open(str(cli_detections), plugin="napari-kinetochores")  # "detections"
    return viewer


def test_evaluate_equals_the_cli(viewer_with_results, cli_detections, capsys):
    from napari_kinetochores._widgets.evaluate import EvaluateWidget, format_value

    viewer = viewer_with_results
    widget = EvaluateWidget(viewer)
    widget.prediction.value = viewer.layers["detections"]
    widget.reference.value = viewer.layers["sample_movie_gt"]
    widget.cutoff.value = 0.25
    widget.run_button.changed.emit(True)

    capsys.readouterr()
    args = ["evaluate", str(cli_detections), str(SAMPLE_GT), *VOXEL_ARGS, "--cutoff-um", "0.25"]
    assert cli([*args, "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    overall = expected["overall"]
    for key in ("tp@0.25", "fp@0.25", "fn@0.25", "f1@0.25", "f1@0.15", "f1@0.3", "median_nm"):
        assert widget.evaluation.overall[key] == pytest.approx(overall[key]), key
    # what the user reads in the table (row 0 = all frames) matches the CLI
    assert widget.cell(0, "F1") == f"{overall['f1@0.25']:.4f}"
    assert widget.cell(0, "TP") == str(overall["tp@0.25"])
    assert widget.cell(0, "median nm") == format_value("median_nm", overall["median_nm"])
    for i, row in enumerate(expected["per_frame"], start=1):
        assert widget.cell(i, "frame") == str(row["t"])
        assert widget.cell(i, "F1") == f"{row['f1@0.25']:.4f}"
        assert widget.cell(i, "FN") == str(row["fn@0.25"])
    assert widget.table.rowCount() == 1 + 4

    # TP/FP/FN rings coloured by status, and links between matched pairs
    matches = viewer.layers["detections vs sample_movie_gt: matches"]
    status = matches.features["status"]
    assert (status == "TP").sum() == overall["tp@0.25"]
    assert (status == "FN").sum() == overall["fn@0.25"]
    green = np.array([46, 204, 64]) / 255
    np.testing.assert_allclose(
        matches.border_color[(status == "TP").to_numpy()][:, :3],
        [green] * int((status == "TP").sum()),
        atol=0.01,
    )
    links = viewer.layers["detections vs sample_movie_gt: links"]
    assert len(links.data) == overall["tp@0.25"]
    lengths_um = np.linalg.norm(links.data[:, 1, 1:] * VOXEL, axis=1)
    assert np.median(lengths_um) * 1000 == pytest.approx(overall["median_nm"], rel=1e-6)
    # the plot shows F1 per frame
    line = widget.plot.figure.axes[0].lines[0]
    assert list(line.get_ydata()) == pytest.approx([r["f1@0.25"] for r in expected["per_frame"]])

    # re-running replaces the layers' content, it does not add layers
    n_layers = len(viewer.layers)
    widget.run_button.changed.emit(True)
    assert len(viewer.layers) == n_layers


def test_evaluate_rejects_mismatched_scales(viewer_with_results):
    from napari_kinetochores._widgets.evaluate import EvaluateWidget

    viewer = viewer_with_results
    clicked = viewer.add_points(np.array([[0, 3.0, 10.0, 10.0]]), name="clicked")
    widget = EvaluateWidget(viewer)
    widget.prediction.value = clicked
    widget.reference.value = viewer.layers["sample_movie_gt"]
    widget.run_button.changed.emit(True)
    assert "different scales" in messages("error")[-1]
    assert widget.evaluation is None


def test_no_matches_says_so_in_the_widget_and_the_cli(viewer_with_results, cli_detections, capsys):
    """A channel with nothing to match: "no matches", no "median error – nm", no NaN warning."""
    import warnings

    from napari_kinetochores._widgets.evaluate import EvaluateWidget

    viewer = viewer_with_results
    widget = EvaluateWidget(viewer)
    widget.prediction.value = viewer.layers["detections"]  # channel 0 only
    widget.reference.value = viewer.layers["sample_movie_gt"]
    widget.channel.value = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        widget.run_button.changed.emit(True)
    assert widget.evaluation.overall["tp@0.3"] == 0
    assert "no matches" in widget.status.value and "no matches" in messages("info")[-1]
    assert "–" not in widget.status.value and "nan" not in widget.status.value.lower()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], caught

    capsys.readouterr()
    args = ["evaluate", str(cli_detections), str(SAMPLE_GT), *VOXEL_ARGS, "--channel", "1"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli(args) == 0
    out = capsys.readouterr().out
    assert "localisation error at 0.3 µm: no matches" in out and "nan" not in out
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
