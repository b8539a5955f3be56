"""``make demo``'s view: a 2D slice through the plate, Detect in front, spots inside their circles."""

from __future__ import annotations

import numpy as np
import pytest

from _napari_helpers import VOXEL, skip_without_display

skip_without_display()
pytestmark = pytest.mark.gui


def test_demo_shows_a_plate_slice_with_the_detect_dock_in_front(make_napari_viewer, tmp_path):
    from qtpy.QtWidgets import QApplication, QDockWidget

    from napari_kinetochores._napari.io import DETECTION_MARKER_UM
    from napari_kinetochores.demo import fill_viewer, run_pipeline

    volume, points, reference, method = run_pipeline(tmp_path, "classical")
    assert (tmp_path / "detections.csv").is_file() and (tmp_path / "metrics.json").is_file()
    viewer = make_napari_viewer(show=True)
    fill_viewer(viewer, volume, points, reference, method)
    QApplication.processEvents()

    assert viewer.dims.ndisplay == 2 and viewer.dims.axis_labels == ("t", "z", "y", "x")
    frame0 = np.round(points[np.round(points["t"]) == 0]["z"]).astype(int)
    plane = viewer.dims.current_step[1]
    assert (frame0 == plane).sum() == np.bincount(frame0).max()  # the plate's busiest plane
    shown = {
        dock.windowTitle().split(" (")[0]
        for dock in viewer.window._qt_window.findChildren(QDockWidget)
        if "napari-kinetochores" in dock.windowTitle() and not dock.visibleRegion().isEmpty()
    }
    assert shown == {"Detect kinetochores"}
    detections = viewer.layers[f"detections ({method})"]
    assert detections.size[0] * VOXEL[2] == pytest.approx(DETECTION_MARKER_UM)
    assert "small yellow circle: detection" in viewer.canvas.overlays.text.text
