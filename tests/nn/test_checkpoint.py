"""Tests of napari_kinetochores.nn.checkpoint: round trip and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_kinetochores.errors import InputError  # noqa: E402
from napari_kinetochores.nn.checkpoint import ModelInfo, load_checkpoint, save_checkpoint  # noqa: E402
from napari_kinetochores.nn.model import build_model  # noqa: E402


def test_checkpoint_round_trip(tmp_path, tiny_config):
    torch.manual_seed(0)
    config = tiny_config(temporal_window=3, image_channels=[0, 1])
    model = build_model(config)
    info = ModelInfo(threshold=0.37, voxel_size_um=(0.3, 0.13, 0.13), training={"note": "test"})
    path = save_checkpoint(tmp_path / "m.pt", model, config, info)
    payload = torch.load(path, weights_only=True)
    assert payload["model_config"]["temporal_window"] == 3
    loaded = load_checkpoint(path)
    assert loaded.config == config
    assert loaded.info.threshold == pytest.approx(0.37)
    assert loaded.info.normalization == "noise" and loaded.info.noise_units == 10.0
    # a checkpoint from before noise normalisation keeps its percentile normalisation
    del payload["info"]["normalization"]
    torch.save(payload, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").info.normalization == "percentile"
    x = torch.rand(1, 6, 4, 16, 16)
    model.eval()
    with torch.inference_mode():
        np.testing.assert_allclose(loaded.model(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_checkpoint_errors(tmp_path, tiny_config):
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="corrupt.pt"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(InputError, match="not a napari-kinetochores checkpoint"):
        load_checkpoint(foreign)
    config = tiny_config()
    path = save_checkpoint(tmp_path / "m.pt", build_model(config), config, ModelInfo())
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["f_maps"] = 16  # weights of another architecture
    mismatched = tmp_path / "mismatch.pt"
    torch.save(payload, mismatched)
    with pytest.raises(InputError, match="do not fit the architecture"):
        load_checkpoint(mismatched)
    del payload["model_config"]
    torch.save(payload, tmp_path / "noconfig.pt")
    with pytest.raises(InputError, match="lacks its model config"):
        load_checkpoint(tmp_path / "noconfig.pt")


@pytest.fixture
def checkpoint_payload(tmp_path, tiny_config):
    """``(payload, write)``: a valid tiny checkpoint's content and ``write(payload, name)`` to save one."""
    config = tiny_config()
    path = save_checkpoint(tmp_path / "m.pt", build_model(config), config, ModelInfo())

    def write(payload: dict, name: str = "edited.pt"):
        torch.save(payload, tmp_path / name)
        return tmp_path / name

    return torch.load(path, weights_only=True), write


def test_a_huge_network_is_refused_before_it_is_built(checkpoint_payload, monkeypatch):
    import time

    from napari_kinetochores.nn import checkpoint

    payload, write = checkpoint_payload

    def no_build(config):
        raise AssertionError("the network was built before the config was checked")

    monkeypatch.setattr(checkpoint, "build_model", no_build)
    payload["model_config"]["f_maps"] = 65536  # 232 GB of weights if built
    payload["state_dict"] = {}
    path = write(payload, "huge.pt")
    assert path.stat().st_size < 4000
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"huge\.pt: .*model_config\.f_maps") as caught:
        load_checkpoint(path)
    assert time.perf_counter() - start < 2.0
    assert "parameters" in str(caught.value)
    # deep enough to be too large while every width is small
    payload["model_config"].update(f_maps=64, num_levels=7, pool_kernels=[[1, 2, 2]] * 6)
    with pytest.raises(InputError, match=r"model_config\.num_levels.*parameters"):
        load_checkpoint(write(payload))


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("f_maps", "abc", "an integer"),
        ("f_maps", 0, ">= 1"),
        ("num_levels", 40, "between"),
        ("num_groups", True, "an integer"),
        ("image_channels", [0, "x"], "integers"),
        ("detected_channels", [], "1 to"),
        ("temporal_window", 101, "between"),
        ("pool_kernels", [[1, 2]], "three integers"),
        ("layer_order", "xyz", "letters"),
        ("layer_order", "rcg", "first"),
    ],
)
def test_model_config_fields_are_checked(checkpoint_payload, key, value, problem):
    payload, write = checkpoint_payload
    payload["model_config"][key] = value
    with pytest.raises(InputError, match=rf"edited\.pt: .*model_config\.{key}.*{problem}"):
        load_checkpoint(write(payload))


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("voxel_size_um", "abc", ""),
        ("voxel_size_um", [0.3, -0.1, 0.1], ""),
        ("noise_units", 0, r"\(0, 1e\+06\]"),
        ("noise_units", "many", "a number"),
        ("threshold", float("nan"), "finite"),
        ("threshold", 1.5, r"\(0, 1\]"),
        ("min_distance_um", -0.3, r"\(0, 50\]"),
        ("distance_clip_um", float("inf"), "finite"),
        ("heatmap_sigma_um", [0.1, 0.1], "1 or 3"),
        ("percentiles", [99.8, 1.0], "lower"),
        ("tile_shape", [0, 128, 128], "between"),
        ("tile_shape", [4096, 4096, 4096], "voxels"),
        ("normalization", "zscore", "normalisation"),
        ("training", "notes", "a dict"),
    ],
)
def test_info_fields_are_checked(checkpoint_payload, key, value, problem):
    payload, write = checkpoint_payload
    payload["info"][key] = value
    with pytest.raises(InputError, match=rf"edited\.pt: .*info\.{key}.*{problem}"):
        load_checkpoint(write(payload))


def test_a_malicious_pickle_stays_blocked_without_torch_hint(tmp_path):
    import os

    from napari_kinetochores.nn.checkpoint import FORMAT

    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "info": Payload()}, path)
    with pytest.raises(InputError, match=r"evil\.pt: .*not allowed") as caught:
        load_checkpoint(path)
    assert not marker.exists()
    assert "weights_only" not in str(caught.value)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(
        InputError, match=r"corrupt\.pt: not a readable checkpoint.*corrupt"
    ) as caught:
        load_checkpoint(corrupt)
    assert "weights_only" not in str(caught.value)
