"""Tests of napari_kinetochores.nn.model: input channels, per-level pooling, config checks."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from napari_kinetochores.errors import InputError  # noqa: E402
from napari_kinetochores.nn.model import ModelConfig, build_model  # noqa: E402


@pytest.mark.parametrize(
    ("image_channels", "window", "expected"),
    [([0], 1, 1), ([0, 1], 1, 2), ([0], 3, 3), ([0, 1], 3, 6)],
)
def test_input_channels_are_channels_times_window(image_channels, window, expected, tiny_config):
    config = tiny_config(image_channels=image_channels, temporal_window=window)
    model = build_model(config)
    assert config.in_channels == expected
    assert model.encoders[0].basic_module.SingleConv1.conv.in_channels == expected
    out = model(torch.zeros(1, expected, 4, 16, 16))
    assert out.shape == (1, 1, 4, 16, 16)


def test_per_level_pooling_is_applied():
    config = ModelConfig(f_maps=8, num_levels=3, num_groups=8, pool_kernels=[[1, 2, 2], [2, 2, 2]])
    model = build_model(config)
    assert model.encoders[1].pooling.kernel_size == (1, 2, 2)
    assert model.encoders[2].pooling.kernel_size == (2, 2, 2)
    assert config.divisor == (2, 4, 4)
    assert model(torch.zeros(1, 1, 4, 16, 16)).shape == (1, 1, 4, 16, 16)


def test_residual_unet_with_anisotropic_pooling():
    config = ModelConfig(
        architecture="ResidualUNet3D",
        f_maps=8,
        num_levels=3,
        num_groups=8,
        pool_kernels=[[1, 2, 2], [2, 2, 2]],
    )
    model = build_model(config)
    assert model(torch.zeros(1, 1, 4, 16, 16)).shape == (1, 1, 4, 16, 16)


def test_bad_model_configs():
    with pytest.raises(InputError, match="pool_kernels"):
        ModelConfig(num_levels=3, pool_kernels=[[1, 2, 2]]).validate()
    with pytest.raises(InputError, match="temporal_window"):
        ModelConfig(temporal_window=2).validate()
    with pytest.raises(InputError, match="architecture"):
        ModelConfig(architecture="VNet").validate()
    with pytest.raises(InputError, match="num_groups"):
        ModelConfig(image_channels=[0, 1], temporal_window=3, num_groups=4).validate()
