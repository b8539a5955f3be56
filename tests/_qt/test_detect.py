"""Load movie and Detect kinetochores widgets, end to end on the sample movie."""

from __future__ import annotations

import numpy as np
import pytest

from _napari_helpers import (
    SAMPLE,
    SAMPLE_GT,
    SCALE,
    VOXEL,
    add_sample,
    messages,
    random_checkpoint,
    skip_without_display,
    world,
)
from napari_kinetochores.cli import main as cli
from napari_kinetochores.io import read_points

skip_without_display()
pytestmark = pytest.mark.gui


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def run_detection(qtbot, widget, timeout=60_000):
    widget.run_button.changed.emit(True)  # what a click does
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


# ---------------------------------------------------------------------- load movie


def test_load_movie_with_overrides_and_reference(viewer):
    from napari_kinetochores._widgets.load_movie import LoadMovieWidget

    widget = LoadMovieWidget(viewer)
    widget.path.value = SAMPLE
    assert "metadata" in widget.found.value and "(4, 2, 26, 88, 88)" in widget.found.value
    assert [box.value for box in widget.voxel] == pytest.approx(list(VOXEL))
    assert widget.names.value == "EGFP, mCherry" and widget.last.value == 3
    widget.voxel[0].value = 0.6  # the user knows better than the metadata
    widget.first.value, widget.last.value = 1, 2
    widget.names.value = "Ndc80-EGFP, CENP-A-mCherry"
    widget.reference.value = SAMPLE_GT
    widget.open.changed.emit(True)
    egfp, mcherry, reference = viewer.layers
    assert egfp.name == "Ndc80-EGFP" and egfp.colormap.name == "green"
    assert mcherry.colormap.name == "magenta"
    assert egfp.data.shape == (2, 26, 88, 88)
    assert tuple(egfp.scale) == pytest.approx((1.0, 0.6, 0.13, 0.13))
    assert tuple(reference.scale) == tuple(egfp.scale)
    gt = read_points(SAMPLE_GT, voxel_size_um=(0.6, 0.13, 0.13))
    kept = gt[(gt["t"] >= 1) & (gt["t"] <= 2)]
    assert len(reference.data) == len(kept)
    # frame 1 of the file is frame 0 of the layers, at z × 0.6 µm
    np.testing.assert_allclose(
        world(reference, reference.data[:1])[0],
        [0.0, *kept.iloc[0][["z_um", "y_um", "x_um"]].astype(float)],
    )


def test_load_movie_ambiguous_axes_then_override(viewer, tmp_path):
    from napari_kinetochores._widgets.load_movie import LoadMovieWidget

    path = tmp_path / "movie.npy"
    np.save(path, np.random.default_rng(0).integers(0, 99, (3, 5, 16, 16)).astype(np.uint16))
    widget = LoadMovieWidget(viewer)
    widget.path.value = path
    assert "ambiguous" in widget.found.value
    assert any("ambiguous" in m for m in messages("error"))
    widget.axes.value = "TZYX"
    widget.apply_axes.changed.emit(True)
    assert "(3, 1, 5, 16, 16)" in widget.found.value and "default" in widget.found.value
    widget.open.changed.emit(True)
    assert viewer.layers[0].data.shape == (3, 5, 16, 16)


def test_load_movie_tells_gui_users_what_to_set(viewer, tmp_path):
    from napari_kinetochores._widgets.load_movie import LoadMovieWidget

    path = tmp_path / "stack.npy"  # no metadata: the default voxel size, with a warning
    np.save(path, np.random.default_rng(0).integers(0, 99, (5, 16, 16)).astype(np.uint16))
    widget = LoadMovieWidget(viewer)
    widget.path.value = path
    assert "NOT in the metadata" in widget.found.value
    status = widget.status.value
    assert "no voxel size" in status and "set the voxel size (z, y, x) µm below" in status
    assert "--voxel-size" not in status and "voxel_size_um" not in status


# ---------------------------------------------------------------------- detect


def test_detect_equals_cli_and_points_sit_on_the_spots(viewer, qtbot, sample_cli_detections):
    from napari_kinetochores._widgets.detect import DetectWidget

    add_sample(viewer, reference=False)
    widget = DetectWidget(viewer)
    assert widget.image.value.name == "EGFP"
    assert [box.value for box in widget.voxel] == pytest.approx(list(VOXEL))
    widget.method.value = "classical"
    run_detection(qtbot, widget)
    layer = viewer.layers["detections"]
    assert "detection done" in widget.status.value

    expected = read_points(sample_cli_detections, voxel_size_um=VOXEL)
    np.testing.assert_allclose(layer.data, expected[["t", "z", "y", "x"]].to_numpy(), atol=1e-9)
    np.testing.assert_allclose(layer.features["score"], expected["score"])
    assert set(layer.features["status"]) == {"auto"}
    # anisotropic scale: the viewer places each point at voxel × (1, 0.3, 0.13, 0.13)
    assert tuple(layer.scale) == pytest.approx(SCALE)
    np.testing.assert_allclose(
        world(layer, layer.data[:5]), expected[["t", "z_um", "y_um", "x_um"]].to_numpy()[:5]
    )

    # re-running one frame replaces that frame's points, never stacks duplicates
    before = len(layer.data)
    widget.frames.value = "current"
    viewer.dims.set_current_step(0, 2)
    run_detection(qtbot, widget)
    assert len(layer.data) == before
    np.testing.assert_allclose(np.sort(layer.data[:, 0]), np.sort(expected["t"].to_numpy()))
    assert len(viewer.layers) == 3


def test_cancel_stops_the_worker_and_keeps_done_frames(viewer, qtbot):
    import time

    import dask.array as da

    from napari_kinetochores._widgets.detect import DetectWidget

    egfp = add_sample(viewer, reference=False)[0]

    def slow(block):
        time.sleep(0.4)
        return block

    movie = da.concatenate([da.from_array(np.asarray(egfp.data), chunks=(1, 26, 88, 88))] * 3)
    slow_layer = viewer.add_image(movie.map_blocks(slow, dtype=movie.dtype), scale=SCALE)
    widget = DetectWidget(viewer)
    widget.image.value = slow_layer
    widget.method.value = "classical"
    widget.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: len(widget._done) >= 1, timeout=30_000)
    widget.cancel_button.changed.emit(True)
    qtbot.waitUntil(lambda: not widget.running, timeout=30_000)
    done = sorted(widget._done)
    assert 1 <= len(done) < 12
    assert "cancelled" in widget.status.value
    frames = set(np.round(viewer.layers["detections"].data[:, 0]).astype(int))
    assert frames == set(done)
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_unet_probability_map_and_model_errors(viewer, qtbot, tmp_path):
    from napari_kinetochores._widgets._models import FROM_FILE
    from napari_kinetochores._widgets.detect import DetectWidget
    from napari_kinetochores.nn.checkpoint import bundled_model_path

    add_sample(viewer, reference=False)
    n_layers = len(viewer.layers)
    widget = DetectWidget(viewer)
    widget.method.value = "unet"
    if bundled_model_path("default", must_exist=False) is None:
        widget.model.value = "default"
        widget.run_button.changed.emit(True)
        assert "no bundled model named 'default'" in messages("error")[-1]
        assert not widget.running and len(viewer.layers) == n_layers

    widget.model.value = FROM_FILE
    assert not widget.model_file.native.isHidden()  # shown for "model file…"
    widget.model_file.value = tmp_path / "missing.pt"
    widget.run_button.changed.emit(True)
    assert "model file not found" in messages("error")[-1]

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    widget.model_file.value = broken
    run_detection(qtbot, widget)  # fails inside the worker
    assert "not a readable checkpoint" in messages("error")[-1]
    assert widget.run_button.enabled and len(viewer.layers) == n_layers + 1

    widget.model_file.value = random_checkpoint(tmp_path / "random.pt")
    widget.probability.value = True
    widget.frames.value = "range"
    widget.first.value, widget.last.value = 1, 1
    run_detection(qtbot, widget)
    probability = viewer.layers["detections probability"]
    assert probability.data.shape == (4, 26, 88, 88)
    assert tuple(probability.scale) == pytest.approx(SCALE)
    assert float(np.asarray(probability.data[1]).max()) > 0
    assert float(np.asarray(probability.data[0]).max()) == 0
    points = viewer.layers["detections"]
    assert set(np.round(points.data[:, 0]).astype(int)) <= {1}


def test_flip_averaged_probability_equals_the_library(viewer, qtbot, tmp_path):
    from napari_kinetochores._widgets._models import FROM_FILE
    from napari_kinetochores._widgets.detect import DetectWidget
    from napari_kinetochores.io import read_volume
    from napari_kinetochores.nn.inference import UNetDetector

    add_sample(viewer, reference=False)
    widget = DetectWidget(viewer)
    widget.method.value = "unet"
    assert not widget.test_time_flips.value  # the library's default
    widget.model.value = FROM_FILE
    widget.model_file.value = checkpoint = random_checkpoint(tmp_path / "random.pt")
    widget.test_time_flips.value = True
    widget.probability.value = True
    widget.frames.value = "range"
    widget.first.value, widget.last.value = 1, 1
    run_detection(qtbot, widget)
    shown = np.asarray(viewer.layers["detections probability"].data[1])

    volume = read_volume(SAMPLE)
    flipped = UNetDetector.load(str(checkpoint), test_time_flips=True).predict_frame(volume, 1)[0]
    plain = UNetDetector.load(str(checkpoint)).predict_frame(volume, 1)[0]
    np.testing.assert_allclose(shown, flipped, atol=1e-6)
    assert np.abs(shown - plain).max() > 1e-3


def test_bad_layers_give_notifications(viewer):
    from napari_kinetochores._widgets.detect import DetectWidget

    flat = viewer.add_image(np.zeros((64, 64), np.float32), name="flat")
    widget = DetectWidget(viewer)
    widget.image.value = flat
    widget.method.value = "classical"
    widget.run_button.changed.emit(True)
    assert "2D" in messages("error")[-1] and "3D" in messages("error")[-1]
    assert [layer.name for layer in viewer.layers] == ["flat"]


def test_detect_never_overwrites_a_layer_it_did_not_make(viewer, qtbot):
    from napari_kinetochores._widgets.detect import DetectWidget

    add_sample(viewer)  # EGFP, mCherry, sample_movie_gt (the reference)
    reference = viewer.layers["sample_movie_gt"]
    before = reference.data.copy()
    widget = DetectWidget(viewer)
    widget.method.value = "classical"
    widget.frames.value = "current"
    for taken in ("sample_movie_gt", "EGFP"):  # a points layer, an image layer
        widget.output.value = taken
        run_detection(qtbot, widget)
        assert any(f"layer {taken!r} was not made by Detect" in m for m in messages("warning"))
        assert widget.output.value == f"{taken} [2]"
        assert len(viewer.layers[f"{taken} [2]"].data) > 0
    np.testing.assert_array_equal(reference.data, before)
    # its own layer it re-uses: the frame's points are replaced, no new layer
    n_layers, n_points = len(viewer.layers), len(viewer.layers["EGFP [2]"].data)
    run_detection(qtbot, widget)
    assert len(viewer.layers) == n_layers and len(viewer.layers["EGFP [2]"].data) == n_points


def test_markers_are_psf_sized_and_shown_out_of_slice(viewer, qtbot):
    from napari_kinetochores._napari.io import DETECTION_MARKER_UM, REFERENCE_MARKER_UM
    from napari_kinetochores._widgets.detect import DetectWidget

    add_sample(viewer)
    widget = DetectWidget(viewer)
    widget.method.value = "classical"
    widget.frames.value = "current"
    run_detection(qtbot, widget)
    detections, reference = viewer.layers["detections"], viewer.layers["sample_movie_gt"]
    # napari draws sizes in units of the x axis: the markers span their size in µm
    assert detections.size[0] * VOXEL[2] == pytest.approx(DETECTION_MARKER_UM)
    assert reference.size[0] * VOXEL[2] == pytest.approx(REFERENCE_MARKER_UM)
    assert 0.24 < DETECTION_MARKER_UM < REFERENCE_MARKER_UM  # circles around a spot's FWHM
    assert str(reference.symbol[0]) == "disc" and reference.border_width[0] <= 0.15
    assert reference.face_color[0][3] == 0 and detections.face_color[0][3] == 0  # circles
    for layer in (detections, reference):
        assert str(layer.projection_mode) == "rescale_linear"
    assert viewer.dims.margin_left[1] > 0 and viewer.dims.margin_right[1] > 0  # z only
    assert viewer.dims.margin_left[0] == 0
    assert viewer.dims.axis_labels == ("t", "z", "y", "x")
    assert "small yellow circle: detection" in viewer.canvas.overlays.text.text


@pytest.mark.slow
def test_default_settings_give_the_cli_points_and_show_its_warning(viewer, qtbot, tmp_path):
    """GUI = CLI with the defaults: the bundled model, and its short-movie rule."""
    from napari.utils.notifications import notification_manager

    from napari_kinetochores._widgets.detect import DetectWidget
    from napari_kinetochores.io import read_volume, write_tiff
    from napari_kinetochores.nn.checkpoint import bundled_model_path

    if bundled_model_path("default", must_exist=False) is None:
        pytest.skip("no bundled default model")
    movie = read_volume(SAMPLE)
    stack = tmp_path / "stack.tif"  # one 3D frame of one channel
    write_tiff(stack, np.asarray(movie.data[1:2, :1]), movie.voxel_size_um)
    for path in (stack, SAMPLE):
        viewer.layers.clear()
        viewer.open(str(path), plugin="napari-kinetochores")
        widget = DetectWidget(viewer)
        assert widget.method.value == "unet" and widget.model.value == "default"
        run_detection(qtbot, widget, timeout=300_000)
        shown = viewer.layers["detections"].data
        told = [m for m in messages("warning") if "bundled 'single_frame' model" in m]
        # the worker's warning reached the user (a notification, from the GUI thread), once
        assert len(told) == (1 if path == stack else 0)
        assert any("single_frame" in m for m in widget._warned) == (path == stack)
        out = tmp_path / f"{path.stem}.csv"
        assert cli(["detect", str(path), "-o", str(out), "--quiet"]) == 0
        expected = read_points(out, voxel_size_um=VOXEL)
        np.testing.assert_array_equal(shown, expected[["t", "z", "y", "x"]].to_numpy())
        widget.close()
        if path == stack:  # the same stack as a plain 3D (Z, Y, X) layer: the same points
            viewer.layers.clear()
            viewer.add_image(np.asarray(movie.data[1, 0]), name="EGFP", scale=VOXEL)
            widget = DetectWidget(viewer)
            run_detection(qtbot, widget, timeout=300_000)
            plain = viewer.layers["detections"].data
            np.testing.assert_array_equal(plain, expected[["z", "y", "x"]].to_numpy())
            assert any(m.startswith("layer 'EGFP': the movie has 1 frame") for m in widget._warned)
            widget.close()
        notification_manager.records.clear()
