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


def train_widget_on_labels(make_napari_viewer):
    """A Train widget on a small simulated movie (4 frames) and its kinetochores as labels."""
    from napari_kinetochores._widgets.train import TrainWidget
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    movie = simulate_movie(SimulationParams(n_frames=4, shape_zyx=(12, 40, 40), n_pairs=4), seed=3)
    scale = (1.0, *movie.params.voxel_size_um)
    labels = movie.points[movie.points["channel"] == 0][["t", "z", "y", "x"]].to_numpy()
    viewer = make_napari_viewer()
    image = viewer.add_image(movie.image[:, 0], name="EGFP", scale=scale)
    points = viewer.add_points(labels, name="corrected", scale=scale)
    widget = TrainWidget(viewer)
    widget.image.value, widget.points.value = image, points
    return widget


def test_fine_tuning_validates_on_held_out_frames_of_the_users_labels(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    """Issue 18 item 7: the F1 shown is that of a held-out frame of the user's labels, and says so."""
    from napari_kinetochores._widgets.train import NEW_MODEL

    widget = train_widget_on_labels(make_napari_viewer)
    widget.start_model.value = NEW_MODEL
    widget.base_config.value = quick_config(tmp_path)
    widget.epochs.value, widget.steps.value = 1, 1
    widget.output.value = tmp_path / "run"
    statuses = []
    show = widget.set_status
    monkeypatch.setattr(widget, "set_status", lambda text: (statuses.append(text), show(text)))
    widget.train_button.changed.emit(True)
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)

    result = widget.result
    assert result.validated_on == "1 held-out frame of your labels (t=3)"
    assert [row["validated_on"] for row in widget.history] == ["held_out"]
    assert "f1_held_out" in widget.history[0]
    epoch_status = [text for text in statuses if text.startswith("epoch 1: loss")]
    assert epoch_status and epoch_status[0].endswith("on held-out frames of your labels"), statuses
    final = f"validation F1 {result.best_f1:.3f} on 1 held-out frame of your labels (t=3)"
    assert final in messages("info")[-1] and final in widget.status.value


def test_fine_tuning_calls_finetune_and_plots_the_validation_f1_on_the_users_frames(
    make_napari_viewer, qtbot, tmp_path
):
    """Issue 20 item 3: starting from a model runs training.finetune (one implementation) on the
    listed frames; the plot shows the validation F1 on the user's frames beside the start's."""
    from napari_kinetochores._widgets._models import registry
    from napari_kinetochores.nn.checkpoint import load_checkpoint
    from napari_kinetochores.training.finetune import FinetuneResult

    widget = train_widget_on_labels(make_napari_viewer)
    widget.start_model.value = "default"
    assert widget.fine_tuning
    assert not widget.minutes.native.isHidden() and widget.epochs.native.isHidden()
    widget.base_config.value = quick_config(tmp_path)  # tiny steps and patches
    widget.minutes.value, widget.frames.value = 0.02, "0,2"
    widget.output.value = tmp_path / "tuned"
    widget.train_button.changed.emit(True)
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)

    result = widget.result
    assert isinstance(result, FinetuneResult), result
    assert result.train_frames == [0] and "held-out frame t=2" in result.validated_on
    assert result.best_checkpoint == tmp_path / "tuned" / "finetuned.pt"
    assert load_checkpoint(result.best_checkpoint).info.threshold == result.threshold
    assert widget.history[0]["epoch"] == 0 and len(widget.history) >= 2
    f1_axes = widget.plot.figure.axes[1]
    assert list(f1_axes.lines[0].get_ydata()) == [row["val_f1"] for row in widget.history]
    assert f1_axes.lines[1].get_ydata()[0] == widget.history[0]["val_f1"]  # the starting model
    assert "fine-tuning done; saved the best model" in messages("info")[-1]
    assert result.best_checkpoint.resolve() in registry.trained
