"""Tests of napari_kinetochores.nn.inference: tiling, flips, empty tiles, precision."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_kinetochores.errors import InputError  # noqa: E402
from napari_kinetochores.nn.inference import predict_volume, signal_mask  # noqa: E402
from napari_kinetochores.nn.model import build_model  # noqa: E402


def test_signal_mask_finds_the_cell_not_the_noise(field_with_cell):
    frame, _ = field_with_cell(256)
    mask = signal_mask(frame)
    assert mask[:, 104:152, 104:152].any()
    outside = mask.copy()
    outside[:, 96:160, 96:160] = False
    assert not outside.any()


def test_tiled_prediction_equals_whole_prediction(tiny_config):
    torch.manual_seed(0)
    config = tiny_config()
    model = build_model(config).eval()
    rng = np.random.default_rng(1)
    stack = rng.random((1, 8, 48, 56)).astype(np.float32)
    whole = predict_volume(model, stack, (8, 48, 56), skip_empty=False, divisor=config.divisor)
    tiled = predict_volume(
        model,
        stack,
        (8, 32, 32),
        overlap=(0, 16, 16),
        skip_empty=False,
        divisor=config.divisor,
        batch_size=3,
    )
    assert tiled.shape == whole.shape == (1, 8, 48, 56)
    # Tiles see less context at their borders; blending keeps the difference small.
    assert np.abs(tiled - whole).mean() < 0.01
    assert np.abs(tiled - whole).max() < 0.1


def test_flip_average_is_the_mean_of_the_flipped_back_outputs(tiny_config):
    from napari_kinetochores.nn.inference import forward_flip_average

    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    tensor = torch.rand(2, 1, 8, 16, 24)
    with torch.inference_mode():
        averaged = forward_flip_average(model, tensor)
        by_hand = (
            model(tensor)
            + model(tensor.flip(-1)).flip(-1)
            + model(tensor.flip(-2)).flip(-2)
            + model(tensor.flip(-2, -1)).flip(-2, -1)
        ) / 4
        plain = model(tensor)
    assert averaged.shape == (2, 1, 8, 16, 24)
    assert torch.allclose(averaged, by_hand, atol=1e-6)
    # A random network is not flip-symmetric, so the average is not the plain output.
    assert not torch.allclose(averaged, plain, atol=1e-4)


def test_flip_average_in_tiles_is_flip_invariant(tiny_config):
    """Tiling, blending and flipping compose: the flip-averaged prediction of a
    flipped volume is the flipped prediction of the volume."""
    torch.manual_seed(0)
    config = tiny_config()
    model = build_model(config).eval()
    stack = np.random.default_rng(2).random((1, 8, 48, 48)).astype(np.float32)
    options = dict(overlap=(0, 16, 16), skip_empty=False, divisor=config.divisor)
    prediction = predict_volume(model, stack, (8, 32, 32), test_time_flips=True, **options)
    flipped = predict_volume(
        model, stack[..., ::-1].copy(), (8, 32, 32), test_time_flips=True, **options
    )
    assert np.allclose(flipped[..., ::-1], prediction, atol=1e-5)
    plain = predict_volume(model, stack, (8, 32, 32), **options)
    plain_flipped = predict_volume(model, stack[..., ::-1].copy(), (8, 32, 32), **options)
    assert not np.allclose(plain_flipped[..., ::-1], plain, atol=1e-3)


def test_empty_tiles_are_skipped(tiny_config):
    config = tiny_config()
    model = build_model(config).eval()
    calls = []
    original_forward = model.forward

    def counting_forward(x, *args, **kwargs):
        calls.append(x.shape[0])
        return original_forward(x, *args, **kwargs)

    model.forward = counting_forward
    rng = np.random.default_rng(5)
    stack = rng.normal(0, 0.1, (1, 8, 64, 64)).astype(np.float32)  # noise, in noise units
    stack[0, 2:6, 5:10, 5:10] += 0.5  # one dim spot, 5 sigmas, in the first tile
    prediction = predict_volume(
        model, stack, (8, 32, 32), overlap=(0, 0, 0), divisor=config.divisor
    )
    assert sum(calls) == 1
    assert prediction.shape == (1, 8, 64, 64)
    assert np.all(prediction[:, :, 32:, 32:] == 0)
    noise_only = rng.normal(0, 0.1, (1, 8, 64, 64)).astype(np.float32)
    nothing = predict_volume(
        model, noise_only, (8, 32, 32), empty_value=1.0, divisor=config.divisor
    )
    assert np.all(nothing == 1.0) and sum(calls) == 1
    constant = predict_volume(
        model, np.zeros((1, 8, 64, 64), np.float32), (8, 32, 32), divisor=config.divisor
    )
    assert not constant.any() and sum(calls) == 1
    predict_volume(
        model, noise_only, (8, 32, 32), (0, 0, 0), skip_empty=False, divisor=config.divisor
    )
    assert sum(calls) == 5


def test_precision_choice_and_bf16_agreement(tiny_config):
    from napari_kinetochores.nn.inference import reduced_precision

    assert reduced_precision("cpu", "fp32") is False
    assert reduced_precision("cuda", "auto") is True
    with pytest.raises(InputError, match="precision"):
        reduced_precision("cpu", "half")
    torch.manual_seed(0)
    config = tiny_config()
    model = build_model(config).eval()
    stack = np.random.default_rng(2).normal(0, 0.1, (1, 8, 32, 32)).astype(np.float32)
    stack[0, 3:5, 10:13, 10:13] += 1.0
    exact = predict_volume(
        model, stack, (8, 32, 32), skip_empty=False, autocast=False, divisor=config.divisor
    )
    reduced = predict_volume(
        model, stack, (8, 32, 32), skip_empty=False, autocast=True, divisor=config.divisor
    )
    assert np.abs(reduced - exact).max() < 0.05  # bfloat16 keeps 8 bits of mantissa
