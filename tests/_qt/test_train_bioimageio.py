"""Train widget's "Export to bioimage.io": the model just trained becomes a package Detect can use."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from _napari_helpers import random_checkpoint, skip_without_display

skip_without_display()
pytestmark = pytest.mark.gui


def test_export_the_trained_model_and_detect_lists_the_package(make_napari_viewer, qtbot, tmp_path):
    pytest.importorskip(
        "bioimageio.spec",
        reason='bioimage.io support not installed: pip install "napari-kinetochores[bioimageio]"',
    )
    from napari_kinetochores._widgets.detect import DetectWidget
    from napari_kinetochores._widgets.train import TrainWidget

    viewer = make_napari_viewer()
    widget, detect = TrainWidget(viewer), DetectWidget(viewer)
    widget.export_button.changed.emit(True)
    assert "no UNet was trained" in widget.status.value
    # what a finished training leaves: its result names the best checkpoint
    widget.result = SimpleNamespace(best_checkpoint=random_checkpoint(tmp_path / "run" / "best.pt"))
    widget.export_button.changed.emit(True)
    assert not widget.export_button.enabled  # exporting in a worker
    qtbot.waitUntil(lambda: widget.export_button.enabled, timeout=120_000)
    package = tmp_path / "run" / "best.bioimageio.zip"
    assert package.is_file(), widget.status.value
    assert "bioimage.io: run/best.bioimageio.zip" in widget.status.value
    detect.model.value = str(package.resolve())  # listed in Detect's model list
    assert detect.options().model == str(package.resolve())
