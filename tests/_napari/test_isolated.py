"""Tests of running the pipeline in a separate process (napari_kinetochores._napari.isolated).

The napari widgets run StarDist this way, because TensorFlow and Qt crash in
one process. The machinery is tested here with the classical detector (no
TensorFlow needed); the StarDist round trip through the widgets is at the end.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_kinetochores._napari.isolated import iter_detections_isolated
from napari_kinetochores.detection import DetectionOptions, iter_detections
from napari_kinetochores.errors import InputError
from napari_kinetochores.io.volumes import volume_from_array
from napari_kinetochores.simulate import SimulationParams, simulate_movie

REPO = Path(__file__).resolve().parents[2]
VOXEL = (0.3, 0.13, 0.13)


@pytest.fixture(scope="module")
def movie():
    simulated = simulate_movie(
        SimulationParams(n_frames=3, shape_zyx=(12, 64, 64), n_pairs=8, snr=14.0), seed=3
    )
    return simulated, volume_from_array(simulated.image, VOXEL)


def test_isolated_detection_equals_in_process(movie):
    _, volume = movie
    options = DetectionOptions(method="classical")
    expected = list(iter_detections(volume, options, [0, 2]))
    found = list(iter_detections_isolated(volume, options, [0, 2]))
    assert [t for t, _ in found] == [0, 2]
    for (t_expected, table_expected), (t_found, table_found) in zip(expected, found, strict=True):
        assert t_found == t_expected and len(table_found) > 0
        pd.testing.assert_frame_equal(table_found, table_expected)


def test_isolated_errors_come_back_as_input_errors(movie, tmp_path):
    _, volume = movie
    options = DetectionOptions(method="unet", model=str(tmp_path / "missing.pt"))
    with pytest.raises(InputError, match="model file not found"):
        list(iter_detections_isolated(volume, options))


def test_cancelled_isolated_detection_yields_nothing(movie):
    _, volume = movie
    found = list(
        iter_detections_isolated(
            volume, DetectionOptions(method="classical"), cancelled=lambda: True
        )
    )
    assert found == []


def fine_tuning_config(folder: Path) -> Path:
    """A short StarDist fine-tuning of the bundled model: ``configs/stardist_tiny.yaml`` with the
    bundled network (``configs/stardist.yaml``), started from its weights at a low rate.

    Started from a model that finds spots, the GUI round trip compares non-empty detections on
    every run; the tiny training from scratch (240 steps, 50 s) sometimes stayed on StarDist's
    all-background plateau and then compared two empty tables.
    """
    import yaml

    values = yaml.safe_load((REPO / "configs" / "stardist_tiny.yaml").read_text())
    bundled = yaml.safe_load((REPO / "configs" / "stardist.yaml").read_text())
    values.update(net=bundled["net"], radius_um=bundled["radius_um"], init_from="stardist_default")
    values.update(lr=1e-4, tile_shape=[16, 48, 48])
    path = folder / "fine_tune.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.slow
@pytest.mark.gui
@pytest.mark.skipif(importlib.util.find_spec("stardist") is None, reason='needs "[stardist]"')
def test_stardist_trains_and_detects_from_the_widgets(make_napari_viewer, qtbot, tmp_path):
    """The GUI path of StarDist: Train widget then Detect widget, TensorFlow in child processes."""
    from _napari_helpers import skip_without_display

    skip_without_display()
    from napari_kinetochores._widgets.detect import DetectWidget
    from napari_kinetochores._widgets.train import TrainWidget

    viewer = make_napari_viewer()
    simulated = simulate_movie(
        SimulationParams(n_frames=1, shape_zyx=(16, 48, 48), n_pairs=6, snr=14.0), seed=4242
    )
    image = viewer.add_image(simulated.image[:, 0], scale=(1.0, *VOXEL), name="EGFP")
    truth = simulated.points[simulated.points["channel"] == 0]
    labels = viewer.add_points(
        truth[["t", "z", "y", "x"]].to_numpy(), scale=(1.0, *VOXEL), name="labels"
    )

    train = TrainWidget(viewer)
    train.image.value, train.points.value = image, labels
    train.network.value = "stardist"
    assert train.loss.native.isHidden() and train.start_model.native.isHidden()
    train.base_config.value = fine_tuning_config(tmp_path)
    train.epochs.value, train.steps.value = 2, 6
    train.output.value = tmp_path / "stardist_gui"
    train.train_button.changed.emit(True)
    # generous waits: the suite on a loaded 2-core machine once took 4x its idle time
    qtbot.waitUntil(lambda: not train.running, timeout=900_000)
    assert "StarDist training done" in train.status.value, train.status.value
    assert len(train.history) == 2  # one live plot point per epoch
    folder = tmp_path / "stardist_gui"
    assert (folder / "weights_best.h5").is_file()

    detect = DetectWidget(viewer)
    detect.image.value = image
    detect.method.value = "stardist"
    assert not detect.stardist_folder.native.isHidden() and detect.model.native.isHidden()
    detect.stardist_folder.value = folder
    detect.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not detect.running, timeout=600_000)
    assert "detection done" in detect.status.value, detect.status.value
    found = viewer.layers["detections"].data[:, 1:]
    # The GUI gives what the library gives with the model it trained (TensorFlow training
    # is not bit-reproducible, so the reference is the trained model, not fixed numbers).
    options = DetectionOptions(method="stardist", model=str(folder))
    expected = pd.concat(
        [
            table
            for _, table in iter_detections_isolated(
                volume_from_array(simulated.image, VOXEL), options
            )
        ]
    )[["z", "y", "x"]].to_numpy()
    assert len(found) >= len(truth) // 2, "the fine-tuned model lost the spots"
    assert found.shape == expected.shape
    np.testing.assert_allclose(
        found[np.lexsort(found.T[::-1])], expected[np.lexsort(expected.T[::-1])], atol=1e-6
    )
