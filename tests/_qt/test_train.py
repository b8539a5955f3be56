"""Train / fine-tune widget: live plot, Cancel keeping the best checkpoint, new model in Detect.

Also checks that all six widgets open from the plugin's manifest.
"""

from __future__ import annotations

import pytest

from _napari_helpers import add_sample, messages, quick_config, skip_without_display

skip_without_display()
pytestmark = pytest.mark.gui

WIDGETS = (
    "Load movie",
    "Detect kinetochores",
    "Correct labels",
    "Evaluate / match",
    "Train / fine-tune",
    "Export",
)


def test_all_widgets_open_from_the_plugin_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    add_sample(viewer)
    opened = {}
    for name in WIDGETS:
        dock, widget = viewer.window.add_plugin_dock_widget("napari-kinetochores", name)
        assert name in dock.name and widget.viewer is not None
        opened[name] = widget
    detect = opened["Detect kinetochores"]
    assert detect.image.value.name == "EGFP"  # layer lists follow the viewer
    viewer.layers.remove("EGFP")
    assert detect.image.value.name == "mCherry"


def test_train_cancel_keeps_best_and_detect_lists_it(make_napari_viewer, qtbot, tmp_path):
    from napari_kinetochores._widgets._models import registry
    from napari_kinetochores._widgets.detect import DetectWidget
    from napari_kinetochores._widgets.train import NEW_MODEL, TrainWidget

    viewer = make_napari_viewer()
    egfp, _, gt = add_sample(viewer)
    viewer.layers.remove(viewer.layers["mCherry"])
    widget = TrainWidget(viewer)
    detect = DetectWidget(viewer)
    widget.image.value, widget.points.value = egfp, gt
    widget.start_model.value = NEW_MODEL
    widget.base_config.value = quick_config(tmp_path)
    widget.epochs.value, widget.steps.value = 20, 1
    widget.output.value = tmp_path / "run"
    widget.train_button.changed.emit(True)
    assert widget.running and widget.cancel_button.enabled
    qtbot.waitUntil(lambda: len(widget.history) >= 1, timeout=120_000)
    widget.cancel_button.changed.emit(True)
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)

    assert 1 <= len(widget.history) < 20  # stopped early
    best = tmp_path / "run" / "best.pt"
    assert best.is_file() and widget.result.best_checkpoint == best
    assert "cancelled; kept the best model" in messages("info")[-1]
    loss_line = widget.plot.figure.axes[0].lines[0]
    assert len(loss_line.get_ydata()) == len(widget.history)
    # the new model is selectable in Detect
    assert str(best.resolve()) in detect.model.choices
    assert best.resolve() in registry.trained

    # fine-tuning from a missing file is refused with a notification
    widget.start_model.value = "model file…"
    widget.model_file.value = tmp_path / "nope.pt"
    widget.train_button.changed.emit(True)
    assert "model file not found" in messages("error")[-1] and not widget.running
