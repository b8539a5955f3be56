"""Tests of napari_kinetochores.nn.losses: Dice, GaussianDice, gradients, kernel schedule."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_kinetochores.errors import InputError  # noqa: E402
from napari_kinetochores.nn import losses  # noqa: E402


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
