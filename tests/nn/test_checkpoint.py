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
