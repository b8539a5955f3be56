"""Screenshots of the napari-kinetochores widgets on the sample movie, for docs/napari.md.

Run from the repository root, under a (virtual) display::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py

It opens the sample movie through the plugin's reader, opens each dock widget
in turn, runs it on the sample data (detection with the classical detector
unless a bundled model is installed, a few corrections, evaluation against
the ground truth, a tiny training run, an export) and writes
``docs/images/<widget>.png``. Every view is a 2D z slice through the
metaphase plate (as ``make demo`` shows it), where the markers' circles leave
the spots visible.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
SAMPLE = ROOT / "sample_data" / "sample_movie.tif"
SAMPLE_GT = ROOT / "sample_data" / "sample_movie_gt.csv"
PLUGIN = "napari-kinetochores"


def wait(condition, timeout: float = 600.0) -> None:
    """Process Qt events until ``condition()`` holds."""
    from qtpy.QtWidgets import QApplication

    start = time.monotonic()
    while not condition():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError("the widget did not finish in time")
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.01)


def shoot(viewer, name: str) -> Path:
    """Save a screenshot of the whole window (canvas and docks), without notification toasts."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    wait(lambda: True)
    path = IMAGES / f"{name}.png"
    viewer.screenshot(str(path), canvas_only=False)
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def open_widget(viewer, name: str):
    """Open one plugin widget, closing the previous ones."""
    for dock in list(viewer.window._dock_widgets.values()):
        if dock.name.endswith(("(Kinetochores)", f"({PLUGIN})")):
            viewer.window.remove_dock_widget(dock)
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def main() -> int:
    import napari

    from napari_kinetochores.demo import default_method, show_plate_slice
    from napari_kinetochores.io import read_points

    IMAGES.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kinetochore-screens-"))
    viewer = napari.Viewer(title="napari-kinetochores", show=True)
    viewer.window._qt_window.resize(1500, 950)
    viewer.window._qt_window.move(0, 0)

    # 0. Load movie
    load = open_widget(viewer, "Load movie")
    load.path.value = SAMPLE
    load.reference.value = SAMPLE_GT
    load.open.changed.emit(True)
    gt = viewer.layers["sample_movie_gt"]
    gt.name = "ground truth"
    truth = read_points(SAMPLE_GT, voxel_size_um=tuple(gt.scale[1:]))
    show_plate_slice(viewer, truth[truth["channel"] == 0], gt.scale[1:])
    shoot(viewer, "load_movie")

    # 1. Detect
    detect = open_widget(viewer, "Detect kinetochores")
    detect.method.value = default_method()
    detect.run_button.changed.emit(True)
    wait(lambda: not detect.running)
    gt.visible = False
    shoot(viewer, "detect")

    # 2. Correct labels: start, add a missed spot (snapped), delete one, pair two
    detections = viewer.layers["detections"]
    correct = open_widget(viewer, "Correct labels")
    correct.points.value = detections
    correct.image.value = viewer.layers["EGFP"]
    correct.autosave.value = work / "sample_movie.detections.corrections.csv"
    correct.start_button.changed.emit(True)
    table = gt.features.assign(t=gt.data[:, 0], z=gt.data[:, 1], y=gt.data[:, 2], x=gt.data[:, 3])
    first = table[(table["t"] == 0) & (table["channel"] == 0)]
    near = np.linalg.norm(
        (detections.data[:, None, 1:] - first[["z", "y", "x"]].to_numpy()[None])
        * (0.3, 0.13, 0.13),
        axis=2,
    ).min(axis=0)
    missed = first.iloc[int(np.argmax(near))][["t", "z", "y", "x"]].to_numpy(float)
    detections.add(missed + [0, 0.7, 1.0, -1.0])
    detections.selected_data = {0}
    detections.remove_selected()
    detections.selected_data = {1, 2}
    correct.pair_button.changed.emit(True)
    detections.selected_data = {len(detections.data) - 1}
    detections.mode = "select"
    shoot(viewer, "correct")
    correct.stop_button.changed.emit(True)

    # 3. Evaluate / match
    gt.visible = True
    evaluate = open_widget(viewer, "Evaluate / match")
    evaluate.prediction.value = detections
    evaluate.reference.value = gt
    evaluate.run_button.changed.emit(True)
    for layer in (gt, detections):
        layer.visible = False
    shoot(viewer, "evaluate")

    # 4. Train / fine-tune: a tiny run on the corrected points
    train = open_widget(viewer, "Train / fine-tune")
    train.image.value = viewer.layers["EGFP"]
    train.points.value = gt
    train.start_model.value = "new model"
    train.base_config.value = ROOT / "configs" / "tiny.yaml"
    train.epochs.value, train.steps.value = 4, 4
    train.output.value = work / "run"
    train.train_button.changed.emit(True)
    wait(lambda: not train.running)
    shoot(viewer, "train")

    # 5. Export
    for layer in (gt, detections):
        layer.visible = True
    evaluate.match_layer.visible = evaluate.link_layer.visible = False
    export = open_widget(viewer, "Export")
    export.kind.value = "matched"
    export.points.value = detections
    export.reference.value = gt
    export.path.value = work / "matched.csv"
    export.export_button.changed.emit(True)
    shoot(viewer, "export")

    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
