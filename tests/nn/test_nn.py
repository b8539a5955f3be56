"""Tests of the UNet package: model, losses, temporal stacking, tiling, checkpoints, training."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_kinetochores.errors import InputError  # noqa: E402
from napari_kinetochores.nn import losses  # noqa: E402
from napari_kinetochores.nn.checkpoint import ModelInfo, load_checkpoint, save_checkpoint  # noqa: E402
from napari_kinetochores.nn.data import (  # noqa: E402
    noise_statistics,
    normalize_noise,
    normalize_percentile,
    sample_patch,
    sample_rows,
    stack_input,
    temporal_indices,
)
from napari_kinetochores.nn.inference import predict_volume, signal_mask  # noqa: E402
from napari_kinetochores.nn.model import ModelConfig, build_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def tiny_config(**changes) -> ModelConfig:
    values = dict(f_maps=8, num_levels=2, num_groups=8, pool_kernels=[[1, 2, 2]])
    values.update(changes)
    return ModelConfig(**values)


# --- model -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_channels", "window", "expected"),
    [([0], 1, 1), ([0, 1], 1, 2), ([0], 3, 3), ([0, 1], 3, 6)],
)
def test_input_channels_are_channels_times_window(image_channels, window, expected):
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


# --- losses ----------------------------------------------------------------


def test_gaussian_kernel_values():
    kernel = losses.gaussian_kernel_1d(3, 1.0)
    expected = np.exp(-0.5 * np.array([1.0, 0.0, 1.0]))
    np.testing.assert_allclose(kernel.numpy(), expected / expected.sum(), rtol=1e-6)
    with pytest.raises(InputError):
        losses.gaussian_kernel_1d(4, 1.0)


def test_soft_dice_known_values():
    target = torch.zeros(1, 1, 1, 2, 2)
    target[..., 0, 0] = 1
    prediction = torch.full_like(target, 0.5)
    # 1 - 2 * 0.5 / (4 * 0.25 + 1) = 0.5
    assert losses.soft_dice_loss(prediction, target).item() == pytest.approx(0.5, abs=1e-5)
    assert losses.soft_dice_loss(target, target).item() == pytest.approx(0.0, abs=1e-5)


def test_gaussian_dice_smooths_both_sides_and_rewards_near_misses():
    target = torch.zeros(1, 1, 5, 15, 15)
    target[0, 0, 2, 7, 7] = 1
    near = torch.zeros_like(target)
    near[0, 0, 2, 7, 8] = 1
    far = torch.zeros_like(target)
    far[0, 0, 2, 7, 13] = 1
    loss = losses.GaussianDiceLoss(losses.KernelSchedule([(0, 5, 1.0)], anisotropy=0.43))
    assert losses.soft_dice_loss(near, target).item() == pytest.approx(1.0, abs=1e-5)
    assert loss(near, target).item() < 0.5 < loss(far, target).item()
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-5)


def test_separable_gaussian_preserves_mass_inside():
    volume = torch.zeros(1, 2, 7, 15, 15)
    volume[0, :, 3, 7, 7] = 1
    smoothed = losses.separable_gaussian(volume, (3, 5, 5), (0.5, 1.0, 1.0))
    assert smoothed.sum().item() == pytest.approx(2.0, rel=1e-5)
    assert smoothed[0, 0, 3, 7, 7] == smoothed.max()


@pytest.mark.parametrize("name", losses.LOSSES)
def test_losses_have_gradients(name):
    torch.manual_seed(0)
    raw = torch.randn(2, 1, 4, 8, 8, requires_grad=True)
    target = (torch.rand(2, 1, 4, 8, 8) > 0.9).float()
    loss_fn = losses.build_loss(name)
    value = loss_fn(raw if losses.uses_logits(name) else torch.sigmoid(raw), target)
    value.backward()
    assert torch.isfinite(value)
    assert raw.grad is not None and raw.grad.abs().sum() > 0
    # gradient check in double precision on a tiny tensor
    small = torch.randn(1, 1, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    small_target = (torch.rand(1, 1, 3, 5, 5) > 0.7).double()

    def fn(x):
        return loss_fn(x if losses.uses_logits(name) else torch.sigmoid(x), small_target)

    assert torch.autograd.gradcheck(fn, (small,), eps=1e-6, atol=1e-4)


def test_kernel_schedule_anneals():
    schedule = losses.KernelSchedule([(0, 7, 2.0), (10, 5, 1.0), (20, 3, 1.0)], anisotropy=0.43)
    assert schedule.kernel_xy(0) == (7, 2.0)
    assert schedule.kernel_xy(12) == (5, 1.0)
    assert schedule.kernel_xy(25) == (3, 1.0)
    continuous = losses.KernelSchedule([(0, 7, 2.0), (10, 5, 1.0)], continuous=True)
    assert continuous.kernel_xy(5)[1] == pytest.approx(1.5)
    randomised = losses.KernelSchedule([(0, 7, 2.0), (10, 3, 1.0)], random=True)
    generator = torch.Generator().manual_seed(0)
    sigmas = {randomised.kernel_xy(0, generator)[1] for _ in range(5)}
    assert len(sigmas) > 1 and all(1.0 <= s <= 2.0 for s in sigmas)
    sizes, sigmas3 = schedule.kernel(0)
    assert sizes[1:] == (7, 7) and sigmas3[0] == pytest.approx(2.0 * 0.43)


# --- temporal stacking and data ----------------------------------------------


def test_temporal_window_repeats_edge_frames():
    assert temporal_indices(0, 4, 3) == [0, 0, 1]
    assert temporal_indices(3, 4, 3) == [2, 3, 3]
    assert temporal_indices(0, 1, 3) == [0, 0, 0]
    movie = np.zeros((3, 2, 2, 4, 4), np.float32)
    for t in range(3):
        for c in range(2):
            movie[t, c] = 10 * t + c
            movie[t, c, 0, 0, 0] = 100  # gives each frame a non-constant range
    stack = stack_input(lambda t, c: movie[t, c], 0, 3, [0, 1], 3, percentiles=(0, 100))
    assert stack.shape == (6, 2, 4, 4)
    raw_order = [movie[t, c, 1, 1, 1] for c in (0, 1) for t in (0, 0, 1)]
    lows = [movie[t, c].min() for c in (0, 1) for t in (0, 0, 1)]
    expected = [(v - lo) / (100 - lo) for v, lo in zip(raw_order, lows, strict=True)]
    np.testing.assert_allclose(stack[:, 1, 1, 1], expected, rtol=1e-6)


def test_normalize_percentile():
    volume = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    normalised = normalize_percentile(volume, (0, 100))
    assert normalised.min() == 0 and normalised.max() == pytest.approx(1)
    assert not normalize_percentile(np.full((2, 3, 3), 7.0)).any()


def _field_with_cell(field_yx: int, seed: int = 0) -> tuple[np.ndarray, tuple]:
    """Poisson noise (mean 100) over a (16, field, field) frame; 20 spots of +60 in a 48² centre.

    Returns the frame and the index of the 20 spot centres.
    """
    rng = np.random.default_rng(seed)
    frame = rng.poisson(100, (16, field_yx, field_yx)).astype(np.float32)
    centre = field_yx // 2
    z, y, x = np.indices((5, 7, 7))
    blob = 60 * np.exp(-((z - 2) ** 2) / 2 - ((y - 3) ** 2 + (x - 3) ** 2) / 4)
    centres = []
    for k in range(20):
        cy, cx = centre - 24 + 10 * (k % 5), centre - 24 + 10 * (k // 5)
        frame[6:11, cy - 3 : cy + 4, cx - 3 : cx + 4] += blob
        centres.append((8, cy, cx))
    return frame, tuple(np.array(centres).T)


def test_noise_normalisation_does_not_depend_on_the_empty_field():
    """The defect of percentile normalisation: a large empty field stretches its noise."""
    small, spot = _field_with_cell(64)
    large, spot_large = _field_with_cell(512)
    peak_small = normalize_noise(small)[spot].mean()  # 60 / 10 sigmas / 10 units: about 0.6
    peak_large = normalize_noise(large)[spot_large].mean()
    assert peak_small == pytest.approx(0.6, rel=0.15)
    assert peak_large == pytest.approx(peak_small, rel=0.05)
    # noise has sigma 1 / NOISE_UNITS = 0.1 whatever the field
    assert normalize_noise(large)[:, :100, :100].std() == pytest.approx(0.1, rel=0.05)
    # whereas percentiles of the large field stretch its noise (its 99.8th percentile is noise)
    noise_small = normalize_percentile(small)[:, :16, :16].std()
    noise_large = normalize_percentile(large)[:, :16, :16].std()
    assert noise_large > 1.1 * noise_small


def test_noise_statistics_ignore_smooth_background_and_spots():
    rng = np.random.default_rng(3)
    haze = np.linspace(0, 500, 256, dtype=np.float32)[None, None, :]  # strong x gradient
    volume = rng.normal(0, 4.0, (8, 64, 256)).astype(np.float32) + haze
    volume[:, 30:34, 100:104] += 300  # bright spots do not move the medians
    background, sigma = noise_statistics(sample_rows(volume))
    assert sigma == pytest.approx(4.0, rel=0.05)
    assert background == pytest.approx(float(np.median(volume)), rel=1e-3)
    # rows of tiles give the same statistics as rows of the whole
    tiles = [sample_rows(volume[:, :, :128]), sample_rows(volume[:, :, 128:])]
    assert noise_statistics(tiles)[1] == pytest.approx(sigma, rel=0.02)
    # photon-starved data (mostly 0, MAD 0) still gets a sigma; a constant volume maps to 0
    sparse = (rng.random((4, 32, 32)) < 0.1).astype(np.float32)
    assert noise_statistics(sample_rows(sparse))[1] > 0
    assert not normalize_noise(np.full((2, 8, 8), 7.0)).any()
    with pytest.raises(InputError, match="NaN"):
        noise_statistics(np.array([[1.0, np.nan]]))


def test_signal_mask_finds_the_cell_not_the_noise():
    frame, _ = _field_with_cell(256)
    mask = signal_mask(frame)
    assert mask[:, 104:152, 104:152].any()
    outside = mask.copy()
    outside[:, 96:160, 96:160] = False
    assert not outside.any()


def test_sample_patch_biased_to_spots():
    rng = np.random.default_rng(0)
    image = np.zeros((1, 16, 64, 64), np.float32)
    target = np.zeros((1, 16, 64, 64), np.float32)
    target[0, 8, 50, 50] = 1
    hits = 0
    for _ in range(50):
        _, patch_target = sample_patch(
            rng, image, target, np.array([[8, 50, 50]]), (8, 16, 16), 1.0
        )
        assert patch_target.shape == (1, 8, 16, 16)
        hits += patch_target.max() == 1
    assert hits == 50
    _, padded = sample_patch(
        rng, image[:, :4], target[:, :4], np.zeros((0, 3)), (8, 16, 16), 0.0, 1.0
    )
    assert padded.shape == (1, 8, 16, 16) and padded[:, 4:].min() == 1.0


# --- tiling ------------------------------------------------------------------


def test_tiled_prediction_equals_whole_prediction():
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


def test_flip_average_is_the_mean_of_the_flipped_back_outputs():
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


def test_flip_average_in_tiles_is_flip_invariant():
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


def test_empty_tiles_are_skipped():
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


# --- checkpoints ---------------------------------------------------------------


def test_checkpoint_round_trip(tmp_path):
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


def test_checkpoint_errors(tmp_path):
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


# --- training end to end ---------------------------------------------------------


@pytest.mark.slow
def test_train_tiny_config_then_detect(tmp_path):
    from napari_kinetochores.cli import main

    config = tmp_path / "tiny.yaml"
    shutil.copy(REPO / "configs" / "tiny.yaml", config)
    out = tmp_path / "run"
    assert main(["train", str(config), "--output-dir", str(out)]) == 0
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,loss,val_f1") and len(log) == 3
    loaded = load_checkpoint(out / "best.pt")
    assert loaded.info.training["history"]
    assert loaded.info.threshold in (0.2, 0.5)

    movie, gt, pred = tmp_path / "m.tif", tmp_path / "gt.csv", tmp_path / "pred.csv"
    assert (
        main(
            [
                "simulate",
                str(movie),
                "--gt",
                str(gt),
                "--frames",
                "2",
                "--shape",
                "16",
                "48",
                "48",
                "--pairs",
                "4",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "detect",
                str(movie),
                "-o",
                str(pred),
                "--method",
                "unet",
                "--model",
                str(out / "best.pt"),
                "--quiet",
            ]
        )
        == 0
    )
    import pandas as pd

    table = pd.read_csv(pred)
    assert list(table.columns[:7]) == ["t", "z", "y", "x", "z_um", "y_um", "x_um"]
    assert set(table["channel"]) <= {0}

    # resume continues from the last epoch
    from napari_kinetochores.training.unet import load_config, train

    cfg = load_config(config)
    cfg.output_dir = str(out)
    cfg.epochs = 3
    result = train(cfg, resume=out / "last.pt", progress=False)
    assert result.epochs_run == 3
    assert len((out / "log.csv").read_text().splitlines()) == 4


def test_training_rejects_bad_labels():
    import pandas as pd

    from napari_kinetochores.training.unet import TrainConfig, prepare_sample

    image = np.zeros((1, 1, 4, 8, 8), np.uint16)
    config = TrainConfig()
    with pytest.raises(InputError, match="no labelled points"):
        prepare_sample(
            image, pd.DataFrame(columns=["t", "z", "y", "x"]), (0.3, 0.13, 0.13), config, "x.csv"
        )
    outside = pd.DataFrame({"t": [0.0], "z": [2.0], "y": [3.0], "x": [50.0]})
    with pytest.raises(InputError, match="outside the volume"):
        prepare_sample(image, outside, (0.3, 0.13, 0.13), config, "x.csv")


def test_config_errors(tmp_path):
    from napari_kinetochores.training.unet import load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 2\nbogus: 1\n")
    with pytest.raises(InputError, match=r"bad.yaml.*bogus"):
        load_config(bad)
    bad.write_text("model: {target: distance}\nloss: gaussian_dice\n")
    with pytest.raises(InputError, match="distance"):
        load_config(bad)
    assert math.isfinite(load_config(REPO / "configs" / "tiny.yaml").lr)


def test_precision_choice_and_bf16_agreement():
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


def test_default_model_hands_short_movies_to_the_single_frame_model():
    import warnings

    from napari_kinetochores.detection import DetectionOptions
    from napari_kinetochores.io.volumes import volume_from_array
    from napari_kinetochores.nn.inference import UNetDetector

    detector = UNetDetector.from_options(DetectionOptions())
    if detector.config.temporal_window == 1:
        pytest.skip("the bundled default model reads a single frame")
    one_frame = volume_from_array(np.zeros((1, 1, 8, 32, 32), np.uint16), (0.3, 0.13, 0.13))
    long_movie = volume_from_array(np.zeros((3, 1, 8, 32, 32), np.uint16), (0.3, 0.13, 0.13))
    assert detector.for_volume(long_movie) is detector
    with pytest.warns(UserWarning, match="single_frame"):
        chosen = detector.for_volume(one_frame)
    assert chosen.config.temporal_window == 1
    # the Detect widget names the bundled default: the same rule applies
    named = UNetDetector.from_options(DetectionOptions(model="default"))
    with pytest.warns(UserWarning, match="single_frame"):
        assert named.for_volume(one_frame).config.temporal_window == 1
    # a temporal checkpoint chosen by its path is kept, with a warning
    from napari_kinetochores.nn.checkpoint import bundled_model_path

    explicit = UNetDetector.from_options(DetectionOptions(model=str(bundled_model_path("default"))))
    with pytest.warns(UserWarning, match="repeated frames"):
        assert explicit.for_volume(one_frame) is explicit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit.for_volume(long_movie)


def test_detect_movie_hands_out_each_frames_prediction():
    from napari_kinetochores.detection import DetectionOptions, detect_movie
    from napari_kinetochores.io.volumes import volume_from_array
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    movie = simulate_movie(SimulationParams(n_frames=3, shape_zyx=(16, 64, 64), n_pairs=5), seed=3)
    volume = volume_from_array(movie.image, (0.3, 0.13, 0.13))
    seen = []
    options = DetectionOptions(method="unet", model="default")
    found = detect_movie(
        volume, options, progress=False, on_prediction=lambda t, p: seen.append((t, p))
    )
    assert [t for t, _ in seen] == [0, 1, 2]
    assert all(p.shape == (1, 16, 64, 64) for _, p in seen)
    # the same detections as without the callback
    again = detect_movie(volume, options, progress=False)
    np.testing.assert_allclose(found[["t", "z", "y", "x"]], again[["t", "z", "y", "x"]])
