"""npe2 manifest, readers, writer and sample data of the napari plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _napari_helpers import SAMPLE, SAMPLE_GT, SCALE, VOXEL, add_sample, skip_without_display
from napari_kinetochores._napari import io as nio
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import read_points, read_volume, write_zarr

ROOT = Path(__file__).resolve().parents[2]


def test_npe2_validate_with_imports():
    npe2 = Path(sys.executable).with_name("npe2")
    command = [str(npe2)] if npe2.exists() else [sys.executable, "-m", "npe2"]
    result = subprocess.run(
        [*command, "validate", "napari-kinetochores", "--imports"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_manifest_contributions():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-kinetochores")
    widgets = [w.display_name for w in manifest.contributions.widgets]
    assert widgets[:6] == [
        "Load movie",
        "Detect kinetochores",
        "Correct labels",
        "Evaluate / match",
        "Train / fine-tune",
        "Export",
    ]
    assert {s.key for s in manifest.contributions.sample_data} == {
        "sample_movie",
        "simulated_movie",
    }
    menus = manifest.contributions.menus
    assert {m.command for m in menus["napari/layers/annotate"]} >= {"napari-kinetochores.correct"}
    assert {m.command for m in menus["napari/layers/segment"]} >= {"napari-kinetochores.detect"}
    assert manifest.contributions.writers[0].layer_types == ["points"]


def test_volume_reader_gives_one_scaled_layer_per_channel():
    assert nio.get_volume_reader("points.csv") is None
    assert nio.get_volume_reader(["a.tif", "b.tif"]) is None
    reader = nio.get_volume_reader(str(SAMPLE))
    layers = reader(str(SAMPLE))
    assert [(kw["name"], kw["colormap"], kind) for _, kw, kind in layers] == [
        ("EGFP", "green", "image"),
        ("mCherry", "magenta", "image"),
    ]
    volume = read_volume(SAMPLE)
    for c, (data, kwargs, _) in enumerate(layers):
        assert kwargs["scale"] == SCALE
        assert kwargs["blending"] == "additive"
        np.testing.assert_array_equal(np.asarray(data), np.asarray(volume.data[:, c]))
        low, high = kwargs["contrast_limits"]
        assert low < high


def test_zarr_and_hdf5_stay_lazy_with_their_voxel_size(tmp_path):
    import h5py

    image = np.random.default_rng(0).integers(0, 1000, (3, 2, 6, 16, 16)).astype(np.uint16)
    store = write_zarr(tmp_path / "movie.ome.zarr", image, (0.5, 0.1, 0.1))
    layers = nio.get_volume_reader(str(store))(str(store))
    assert len(layers) == 2 and layers[0][1]["scale"] == (1.0, 0.5, 0.1, 0.1)
    assert hasattr(layers[0][0], "dask") or hasattr(layers[0][0], "chunks")
    np.testing.assert_array_equal(np.asarray(layers[1][0]), image[:, 1])

    h5 = tmp_path / "movie.h5"
    with h5py.File(h5, "w") as handle:
        handle["raw"] = image[0, 0]
        handle["raw"].attrs["element_size_um"] = [0.4, 0.2, 0.2]
    data, kwargs, _ = nio.get_volume_reader(str(h5))(str(h5))[0]
    assert kwargs["scale"] == (1.0, 0.4, 0.2, 0.2)
    assert data.shape == (1, 6, 16, 16) and hasattr(data, "chunks")

    two = tmp_path / "two.h5"
    with h5py.File(two, "w") as handle:
        handle["a"] = image[0, 0]
        handle["b"] = image[0, 1]
    with pytest.raises(InputError, match="Load movie"):
        nio.read_volume_layers(str(two))


def test_points_reader_keeps_features_and_scale():
    assert nio.get_points_reader("movie.tif") is None
    data, kwargs, kind = nio.get_points_reader(str(SAMPLE_GT))(str(SAMPLE_GT))[0]
    table = read_points(SAMPLE_GT, voxel_size_um=VOXEL)
    assert kind == "points" and data.shape == (len(table), 4)
    np.testing.assert_allclose(data, table[["t", "z", "y", "x"]].to_numpy())
    assert kwargs["scale"] == pytest.approx(SCALE)
    assert {"channel", "pair_id", "track_id", "amplitude"} <= set(kwargs["features"].columns)
    assert kwargs["border_color"] is not None and kwargs["face_color"] == "transparent"


def test_points_reader_arivis_and_napari_tables(tmp_path):
    arivis = tmp_path / "arivis.csv"
    arivis.write_text(
        "X (px), Center of Mass (Intensities) #1;Y (px), Center of Mass (Intensities) #1;"
        "Z (px), Center of Mass (Intensities) #1;Tags\n10;20;5;Pair03_1\n11;21;6;Pair03_2\n"
    )
    with pytest.warns(UserWarning, match="default"):
        data, kwargs, _ = nio.read_points_layer(str(arivis))[0]
    np.testing.assert_allclose(data[:, 1:], [[5, 20, 10], [6, 21, 11]])
    assert kwargs["features"]["pair_id"].tolist() == [3, 3]

    napari_csv = tmp_path / "napari.csv"
    napari_csv.write_text("index,axis-0,axis-1,axis-2,axis-3\n0,1,3.0,2.6,1.3\n")
    data, kwargs, _ = nio.read_points_layer(str(napari_csv))[0]
    assert kwargs["scale"] == (1.0, 1.0, 1.0, 1.0)  # napari writes world coordinates
    np.testing.assert_allclose(data, [[1, 3.0, 2.6, 1.3]])


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ("t,z,y,x,channel\n0,1,2,3,0\n0,1,2,3,EGFP\n", r"'channel' is not numeric.*line 3.*'EGFP'"),
        ("t,z,y,x\n0,1,2,1e308\n", r"'x' is beyond.*line 2"),
        ("t,z,y,x,z_um,y_um,x_um\n0,1,2,4,1e-300,2e-300,4e-300\n", "voxel size"),
    ],
)
def test_points_reader_refuses_bad_cells_and_scales_before_making_a_layer(tmp_path, table, match):
    path = tmp_path / "bad.csv"
    path.write_text(table)
    with pytest.raises(InputError, match=match) as caught:
        nio.read_points_layer(str(path))
    assert "bad.csv" in str(caught.value)


def test_writer_round_trip(tmp_path):
    coords = np.array([[0, 10.25, 20.5, 30.75], [2, 1.0, 2.0, 3.0]])
    features = pd.DataFrame({"score": [0.9, 0.4], "status": ["auto", "moved"], "pair_id": [4, -1]})
    meta = {"scale": SCALE, "features": features, "name": "detections"}
    written = nio.write_points_csv(str(tmp_path / "out"), coords, meta)
    assert written == [str(tmp_path / "out.csv")]
    table = read_points(written[0])
    np.testing.assert_allclose(table[["t", "z", "y", "x"]].to_numpy(), coords)
    np.testing.assert_allclose(table["z_um"], coords[:, 1] * 0.3)
    np.testing.assert_allclose(table["x_um"], coords[:, 3] * 0.13)
    assert table["status"].tolist() == ["auto", "moved"]
    assert table["pair_id"].tolist() == [4, -1]
    assert list(table.columns[:7]) == ["t", "z", "y", "x", "z_um", "y_um", "x_um"]
    with pytest.raises(InputError):
        nio.write_points_csv(str(tmp_path / "bad.csv"), np.zeros((2, 2)), meta)


def test_sample_data():
    layers = nio.sample_movie()
    assert [kw["name"] for _, kw, _ in layers] == ["EGFP", "mCherry", "ground truth"]
    assert layers[2][0].shape[1] == 4 and layers[2][1]["scale"] == pytest.approx(SCALE)
    simulated = nio.simulated_movie()
    assert [kind for _, _, kind in simulated] == ["image", "image", "points"]
    assert simulated[0][0].shape == (5, 32, 128, 128)


@pytest.mark.gui
def test_open_and_save_through_the_viewer(make_napari_viewer, tmp_path):
    skip_without_display()
    viewer = make_napari_viewer()
    egfp, mcherry, gt = add_sample(viewer)
    assert viewer.dims.axis_labels == ("t", "z", "y", "x")  # named by the reader's layers
    assert tuple(egfp.scale) == pytest.approx(SCALE) and egfp.colormap.name == "green"
    assert mcherry.colormap.name == "magenta" and mcherry.blending == "additive"
    # a ground-truth point sits on its spot: world = voxel × voxel size
    table = read_points(SAMPLE_GT, voxel_size_um=VOXEL)
    np.testing.assert_allclose(
        gt.data_to_world(gt.data[5]), table.loc[5, ["t", "z_um", "y_um", "x_um"]].astype(float)
    )
    out = tmp_path / "saved.csv"
    viewer.layers.selection = {gt}
    viewer.layers.save(str(out), selected=True, plugin="napari-kinetochores")
    again = viewer.open(str(out), plugin="napari-kinetochores")[0]
    np.testing.assert_allclose(again.data, gt.data)
    assert tuple(again.scale) == pytest.approx(SCALE)
    pd.testing.assert_series_equal(again.features["pair_id"], gt.features["pair_id"])


def test_every_format_read_volume_reads_has_a_reader_pattern(tmp_path):
    """A dropped .npy (or any movie format) is offered to the plugin, which scales it."""
    from napari.plugins import _npe2
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-kinetochores")
    volume_reader = next(
        r for r in manifest.contributions.readers if r.command.endswith("get_volume_reader")
    )
    assert set(volume_reader.filename_patterns) == {f"*{s}" for s in nio.VOLUME_SUFFIXES}
    path = tmp_path / "stack.npy"
    np.save(path, np.random.default_rng(0).integers(0, 500, (6, 16, 16)).astype(np.uint16))
    assert "napari-kinetochores" in _npe2.get_readers(str(path))
    compatible = [r.command for r in pm.iter_compatible_readers([str(path)])]
    assert "napari-kinetochores.get_volume_reader" in compatible
    with pytest.warns(UserWarning, match="voxel size"):
        (data, kwargs, kind), *_ = nio.get_volume_reader(str(path))(str(path))
    assert kind == "image" and data.shape == (1, 6, 16, 16)
    assert kwargs["scale"] == pytest.approx((1.0, 0.3, 0.13, 0.13))


def test_sample_files_are_found_where_they_live():
    movie, truth = nio.sample_files()
    assert movie.is_file() and truth.is_file()
    assert {movie.name, truth.name} == {"sample_movie.tif", "sample_movie_gt.csv"}


def test_markers_come_from_the_psf_and_the_legend_names_them():
    detections = nio.points_layer(read_points(SAMPLE_GT), VOXEL, "detections")[1]
    reference = nio.points_layer(read_points(SAMPLE_GT), VOXEL, "ground truth", reference=True)[1]
    assert detections["size"] * VOXEL[2] == pytest.approx(nio.DETECTION_MARKER_UM)
    assert reference["size"] * VOXEL[2] == pytest.approx(nio.REFERENCE_MARKER_UM)
    assert reference["face_color"] == detections["face_color"] == "transparent"  # circles
    assert len(reference["border_color"]) == len(read_points(SAMPLE_GT))  # by channel

    class Layer:
        def __init__(self, kwargs):
            self.metadata, self.features, self.visible = (
                kwargs["metadata"],
                kwargs["features"],
                True,
            )

    legend = nio.legend_text([Layer(detections), Layer(reference)])
    assert legend.splitlines() == [
        "small yellow circle: detection (mCherry spots: magenta)",
        "large cyan circle: reference label (mCherry: orange)",
    ]
