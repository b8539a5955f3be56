"""bioimage.io packages: export passes bioimageio.core's test, import rebuilds the checkpoint.

The CLI round trip (``export-bioimageio`` then ``detect --model pkg.zip`` gives
the same CSV as ``--model default``) is in tests/test_cli.py.
"""

from __future__ import annotations

import io
import sys
import zipfile

import numpy as np
import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip(
    "bioimageio.core",
    reason='bioimage.io support not installed: pip install "napari-kinetochores[bioimageio]"',
)

from napari_kinetochores.errors import InputError  # noqa: E402
from napari_kinetochores.nn import bioimageio  # noqa: E402
from napari_kinetochores.nn.checkpoint import (  # noqa: E402
    bundled_model_path,
    load_checkpoint,
)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The bundled default model exported once: the package's path."""
    path = tmp_path_factory.mktemp("bioimageio") / "default.zip"
    assert bioimageio.export_bioimageio("default", path) == path
    return path


def _rdf(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return yaml.safe_load(archive.read("rdf.yaml"))


def _repackage(source, target, edit_rdf=None, files=None):
    """A copy of package ``source`` at ``target`` with its rdf edited and files replaced."""
    files = dict(files or {})
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as copy:
        for name in archive.namelist():
            data = files.pop(name, archive.read(name))
            if name == "rdf.yaml" and edit_rdf is not None:
                rdf = yaml.safe_load(data)
                edit_rdf(rdf)
                data = yaml.safe_dump(rdf, sort_keys=False).encode()
            copy.writestr(name, data)
        for name, data in files.items():
            copy.writestr(name, data)
    return target


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_export_passes_bioimageio_core_test_without_torchvision(package):
    from bioimageio.core import test_model

    summary = test_model(package)
    assert summary.status == "passed", summary.format()
    tested = " ".join(detail.name for detail in summary.details)
    assert "(pytorch_state_dict)" in tested and "(torchscript)" in tested
    assert "torchvision" not in sys.modules  # CPU torch 2.13 cannot import it


def test_rdf_axes_scales_channels_and_metadata(package):
    loaded = load_checkpoint(bundled_model_path("default"))
    rdf = _rdf(package)
    assert rdf["format_version"].startswith("0.5.")
    (tensor,) = rdf["inputs"]
    assert [axis.get("id", axis["type"]) for axis in tensor["axes"]] == [
        "batch",
        "channel",
        "z",
        "y",
        "x",
    ]
    assert tensor["axes"][1]["channel_names"] == ["c0_t-1", "c0_t", "c0_t+1"]
    for tensors in (rdf["inputs"], rdf["outputs"]):
        space = tensors[0]["axes"][2:]
        assert [axis["unit"] for axis in space] == ["micrometer"] * 3
        assert [axis["scale"] for axis in space] == pytest.approx(loaded.info.voxel_size_um)
    assert rdf["outputs"][0]["axes"][1]["channel_names"] == ["c0_heatmap"]
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] == "kinetochore_unet"
    assert rdf["weights"]["torchscript"]["parent"] == "pytorch_state_dict"  # for deepImageJ
    assert rdf["license"] == "BSD-3-Clause"
    assert {"kinetochore", "spot detection", "3D", "time-lapse"} <= set(rdf["tags"])
    assert any("Kinetochores" in entry["text"] for entry in rdf["cite"])
    assert "napari-kinetochores" in rdf["description"]
    assert rdf["config"]["napari-kinetochores"]["threshold"] == pytest.approx(loaded.info.threshold)


def test_test_tensors_are_a_normalised_frame_and_our_network_output(package):
    import torch

    with zipfile.ZipFile(package) as archive:
        test_input = np.load(io.BytesIO(archive.read("test_input.npy")))
        test_output = np.load(io.BytesIO(archive.read("test_output.npy")))
    assert test_input.shape == (1, 3, 24, 64, 64)
    assert test_output.shape == (1, 1, 24, 64, 64)
    # noise units: background at 0, noise 1 / noise_units = 0.1 (spots far above it)
    assert abs(float(np.median(test_input))) < 0.05
    assert 0.05 < float(np.median(np.abs(test_input))) < 0.2
    assert test_output.max() > 0.5  # the frame's spots light up the heatmap
    default = load_checkpoint(bundled_model_path("default")).model
    with torch.inference_mode():
        expected = default(torch.from_numpy(test_input)).numpy()
    np.testing.assert_allclose(test_output, expected, atol=1e-5)


def test_package_loads_as_the_same_checkpoint(package):
    import torch

    original = load_checkpoint(bundled_model_path("default"))
    rebuilt = load_checkpoint(package)
    assert rebuilt.path == package
    assert rebuilt.config == original.config
    for name in ("voxel_size_um", "normalization", "noise_units", "threshold", "min_distance_um"):
        assert getattr(rebuilt.info, name) == pytest.approx(getattr(original.info, name))
    assert tuple(rebuilt.info.tile_shape) == tuple(original.info.tile_shape)
    weights, expected = rebuilt.model.state_dict(), original.model.state_dict()
    assert all(torch.equal(weights[k], expected[k]) for k in expected)


def test_a_checkpoint_of_its_own_exports_and_loads_back(tiny_config, tmp_path):
    """A single-frame, 2-level checkpoint whose file name is not a valid rdf name."""
    from napari_kinetochores.nn.checkpoint import ModelInfo, save_checkpoint
    from napari_kinetochores.nn.model import build_model

    config = tiny_config(target="distance")
    info = ModelInfo(voxel_size_um=(0.25, 0.1, 0.1), normalization="noise", threshold=0.4)
    checkpoint = save_checkpoint(tmp_path / "run.v2.pt", build_model(config), config, info)
    package = bioimageio.export_bioimageio(checkpoint, tmp_path / "run.zip")
    rdf = _rdf(package)
    assert rdf["name"] == "napari-kinetochores run-v2 3D UNet"
    assert rdf["inputs"][0]["axes"][1]["channel_names"] == ["c0_t"]
    assert rdf["outputs"][0]["axes"][1]["channel_names"] == ["c0_distance"]
    assert [axis["scale"] for axis in rdf["inputs"][0]["axes"][2:]] == [0.25, 0.1, 0.1]
    loaded = load_checkpoint(package)
    assert loaded.config == config
    assert loaded.info.voxel_size_um == (0.25, 0.1, 0.1) and loaded.info.threshold == 0.4


def test_percentile_normalised_checkpoint_is_refused(tiny_config, tmp_path):
    from napari_kinetochores.nn.checkpoint import ModelInfo, save_checkpoint
    from napari_kinetochores.nn.model import build_model

    config = tiny_config()
    info = ModelInfo(normalization="percentile")
    checkpoint = save_checkpoint(tmp_path / "old.pt", build_model(config), config, info)
    with pytest.raises(InputError, match="percentile-normalised.*old.pt|old.pt.*percentile"):
        bioimageio.export_bioimageio(checkpoint, tmp_path / "old.zip")
    assert not (tmp_path / "old.zip").exists()


def test_bundled_model_path_takes_a_package_name(tmp_path):
    with pytest.raises(InputError, match="model file not found"):
        bundled_model_path("missing.zip")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rdf: rdf["inputs"][0]["axes"][2].pop("unit"), "micrometer"),
        (
            lambda rdf: rdf["outputs"][0]["axes"][1].update(channel_names=["probability"]),
            "output kind",
        ),
        (
            lambda rdf: rdf["inputs"][0]["axes"][1].update(channel_names=["a", "b", "c"]),
            "c<channel>_t<offset>",
        ),
        (
            lambda rdf: rdf["inputs"][0]["axes"][1].update(
                channel_names=["c0_t-1", "c1_t", "c0_t+1"]
            ),
            "channel-major window",
        ),
        (
            lambda rdf: rdf["inputs"][0].update(
                preprocessing=[{"id": "zero_mean_unit_variance", "kwargs": {"axes": ["z"]}}]
            ),
            "zero_mean_unit_variance",
        ),
        (
            lambda rdf: rdf["weights"]["pytorch_state_dict"]["architecture"].update(
                callable="OtherNet"
            ),
            "OtherNet",
        ),
        (
            lambda rdf: rdf["config"]["napari-kinetochores"].update(threshold=7),
            "info.threshold",
        ),
    ],
)
def test_package_that_does_not_fit_says_what(package, tmp_path, edit, message):
    broken = _repackage(package, tmp_path / "broken.zip", edit)
    with pytest.raises(InputError, match=message) as raised:
        load_checkpoint(broken)
    assert "broken.zip" in str(raised.value)


def test_a_zip_without_rdf_is_not_a_package(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert not bioimageio.is_bioimageio_package(path)
    with pytest.raises(InputError, match="other.zip"):
        load_checkpoint(path)


def test_pytorch3dunet_library_architecture_with_one_pooling_kernel(package, tmp_path):
    """A package of the same contract built on pytorch-3dunet's own UNet3D (not our file)."""
    import torch
    from pytorch3dunet.unet3d.model import UNet3D

    network = UNet3D(3, 1, f_maps=8, num_levels=2, layer_order="cbr", pool_kernel_size=(1, 2, 2))
    buffer = io.BytesIO()
    torch.save(network.state_dict(), buffer)

    def library(rdf):
        entry = rdf["weights"]["pytorch_state_dict"]
        entry.pop("sha256")
        kwargs = {"in_channels": 3, "out_channels": 1, "f_maps": 8, "num_levels": 2}
        kwargs.update(layer_order="cbr", pool_kernel_size=[1, 2, 2], is_segmentation=True)
        entry["architecture"] = {
            "callable": "UNet3D",
            "import_from": "pytorch3dunet.unet3d.model",
            "kwargs": kwargs,
        }
        del rdf["config"]

    other = _repackage(
        package, tmp_path / "library.zip", library, {"weights.pt": buffer.getvalue()}
    )
    loaded = load_checkpoint(other)
    assert loaded.config.pool_kernels == [[1, 2, 2]]
    assert loaded.config.temporal_window == 3 and loaded.config.f_maps == 8
    assert loaded.info.threshold == pytest.approx(0.5)  # no config block: ModelInfo's default
    assert loaded.info.normalization == "noise"
    stack = torch.zeros((1, 3, 8, 16, 16))
    network.eval()
    with torch.inference_mode():
        np.testing.assert_allclose(loaded.model(stack).numpy(), network(stack).numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "changes",
    [{}, {"temporal_window": 3}, {"image_channels": [0, 1], "temporal_window": 5}],
)
def test_input_channel_names_round_trip(tiny_config, changes):
    config = tiny_config(**changes)
    names = bioimageio.input_channel_names(config)
    assert bioimageio._input_layout(names, "m.zip") == (
        config.image_channels,
        config.temporal_window,
    )


def test_missing_extra_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)  # import fails
    with pytest.raises(InputError, match=r"napari-kinetochores\[bioimageio\]"):
        bioimageio.export_bioimageio("default", tmp_path / "pkg.zip")
