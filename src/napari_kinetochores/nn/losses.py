"""Losses for spot detection: GaussianDice (with an annealed kernel), Dice, BCE, distance regression.

All losses take ``prediction`` and ``target`` tensors of shape (N, C, Z, Y, X).
Probability-type losses expect probabilities in [0, 1] (apply the sigmoid
first); :class:`BCELoss` takes logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from napari_kinetochores.errors import InputError


def gaussian_kernel_1d(size: int, sigma: float) -> torch.Tensor:
    """Normalised 1D gaussian of odd length ``size`` (sums to 1).

    >>> gaussian_kernel_1d(3, 1.0).sum().item()
    1.0
    """
    if size < 1 or size % 2 == 0:
        raise InputError(f"gaussian kernel size must be odd and >= 1, got {size}")
    if sigma <= 0:
        raise InputError(f"gaussian sigma must be > 0, got {sigma}")
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def separable_gaussian(
    volume: torch.Tensor, sizes: Sequence[int], sigmas: Sequence[float]
) -> torch.Tensor:
    """Smooth (N, C, Z, Y, X) with a separable gaussian, zero padding, per channel."""
    n_channels = volume.shape[1]
    out = volume
    for axis, (size, sigma) in enumerate(zip(sizes, sigmas, strict=True)):
        if size <= 1:
            continue
        kernel = gaussian_kernel_1d(int(size), float(sigma)).to(volume.device, volume.dtype)
        shape = [1, 1, 1]
        shape[axis] = int(size)
        weight = kernel.reshape(1, 1, *shape).repeat(n_channels, 1, 1, 1, 1)
        padding = [0, 0, 0]
        padding[axis] = int(size) // 2
        out = F.conv3d(out, weight, padding=tuple(padding), groups=n_channels)
    return out


def soft_dice_loss(
    prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """1 − Dice with a squared denominator, per (sample, channel), averaged.

    ``1 - 2 Σ p t / (Σ p² + Σ t² + eps)``

    >>> t = torch.zeros(1, 1, 1, 2, 2); t[..., 0, 0] = 1
    >>> round(soft_dice_loss(t, t).item(), 4), round(soft_dice_loss(1 - t, t).item(), 4)
    (0.0, 1.0)
    """
    dims = tuple(range(2, prediction.ndim))
    intersection = (prediction * target).sum(dims)
    denominator = (prediction * prediction).sum(dims) + (target * target).sum(dims)
    return (1 - 2 * intersection / (denominator + eps)).mean()


@dataclass
class KernelStep:
    """Gaussian smoothing of the GaussianDice loss from ``epoch`` on: ``size`` voxels, ``sigma`` voxels."""

    epoch: int
    size: int
    sigma: float


class KernelSchedule:
    """Anneals the GaussianDice kernel over training.

    Parameters
    ----------
    steps : sequence of (epoch, size, sigma)
        Piecewise schedule, e.g. ``[(0, 7, 2), (10, 5, 1), (20, 3, 1)]``:
        from each epoch on, that kernel (size and sigma in voxels along y and
        x). The z kernel is scaled by ``anisotropy`` (voxel xy / voxel z).
    continuous : bool
        Interpolate the sigma linearly between steps instead of jumping.
    random : bool
        Draw a random kernel between the current one and the sharpest each
        call (a regulariser).
    anisotropy : float
        ``voxel_size_xy / voxel_size_z``, e.g. 0.13 / 0.3.
    """

    def __init__(
        self,
        steps: Sequence[Sequence[float]] = ((0, 7, 2.0), (10, 5, 1.0), (20, 3, 1.0)),
        continuous: bool = False,
        random: bool = False,
        anisotropy: float = 1.0,
    ) -> None:
        self.steps = sorted(
            (KernelStep(int(e), int(s), float(g)) for e, s, g in steps), key=lambda k: k.epoch
        )
        if not self.steps:
            raise InputError("the kernel schedule needs at least one step")
        self.continuous, self.random, self.anisotropy = continuous, random, anisotropy

    def kernel_xy(
        self, epoch: float, generator: torch.Generator | None = None
    ) -> tuple[int, float]:
        """(size, sigma) in voxels along y and x at ``epoch``."""
        current = self.steps[0]
        following = None
        for index, step in enumerate(self.steps):
            if epoch >= step.epoch:
                current = step
                following = self.steps[index + 1] if index + 1 < len(self.steps) else None
        size, sigma = current.size, current.sigma
        if self.continuous and following is not None:
            fraction = (epoch - current.epoch) / max(following.epoch - current.epoch, 1)
            sigma = current.sigma + fraction * (following.sigma - current.sigma)
            size = max(following.size, 2 * math.ceil(2 * sigma) + 1)
            size = min(size, current.size)
        if self.random:
            last = self.steps[-1]
            u = torch.rand(1, generator=generator).item()
            sigma = last.sigma + u * (sigma - last.sigma)
        return int(size), float(sigma)

    def kernel(self, epoch: float, generator: torch.Generator | None = None):
        """(sizes (z, y, x), sigmas (z, y, x)) in voxels at ``epoch``."""
        size, sigma = self.kernel_xy(epoch, generator)
        sigma_z = max(sigma * self.anisotropy, 1e-3)
        size_z = max(1, 2 * math.ceil(2 * sigma_z) + 1) if sigma_z >= 0.5 else 1
        size_z = min(size_z, size)
        return (size_z, size, size), (sigma_z, sigma, sigma)


class GaussianDiceLoss(nn.Module):
    """Soft Dice of the gaussian-smoothed prediction against the smoothed target.

    Spot targets are tiny; smoothing both sides gives the Dice a gradient even
    when a predicted spot is one voxel off, and annealing the kernel sharpens
    the localisation as training proceeds.

    Parameters
    ----------
    schedule : KernelSchedule
        Kernel per epoch; call :meth:`set_epoch` as training goes on.
    """

    def __init__(self, schedule: KernelSchedule | None = None) -> None:
        super().__init__()
        self.schedule = schedule or KernelSchedule()
        self.epoch = 0.0

    def set_epoch(self, epoch: float) -> None:
        self.epoch = float(epoch)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        sizes, sigmas = self.schedule.kernel(self.epoch)
        return soft_dice_loss(
            separable_gaussian(prediction, sizes, sigmas), separable_gaussian(target, sizes, sigmas)
        )


class DiceLoss(nn.Module):
    """Plain soft Dice (squared denominator) on probabilities."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_dice_loss(prediction, target)


class BCELoss(nn.Module):
    """Binary cross-entropy on logits, with a weight on positive (spot) voxels."""

    def __init__(self, pos_weight: float = 1.0) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = torch.tensor(self.pos_weight, device=logits.device, dtype=logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)


class DistanceRegressionLoss(nn.Module):
    """Regression of the clipped, normalised distance map (values in [0, 1]).

    Mean squared error, weighted up where the target is below 1 (near
    centres) so that the few informative voxels are not drowned by background.
    """

    def __init__(self, near_weight: float = 5.0) -> None:
        super().__init__()
        self.near_weight = near_weight

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = 1 + (self.near_weight - 1) * (target < 1).to(prediction.dtype)
        return (weight * (prediction - target) ** 2).sum() / weight.sum()


LOSSES = ("gaussian_dice", "dice", "bce", "bce_dice", "distance")


def uses_logits(name: str) -> bool:
    """Whether the loss ``name`` takes logits (else probabilities)."""
    return name == "bce"


def build_loss(
    name: str, schedule: KernelSchedule | None = None, pos_weight: float = 1.0
) -> nn.Module:
    """Loss by name: one of :data:`LOSSES`.

    ``bce_dice`` is BCE plus Dice on probabilities (computed from one
    tensor of probabilities with a clamped BCE).
    """
    if name == "gaussian_dice":
        return GaussianDiceLoss(schedule)
    if name == "dice":
        return DiceLoss()
    if name == "bce":
        return BCELoss(pos_weight)
    if name == "bce_dice":
        return _BCEDiceLoss()
    if name == "distance":
        return DistanceRegressionLoss()
    raise InputError(f"unknown loss {name!r}; choose one of {LOSSES}")


class _BCEDiceLoss(nn.Module):
    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy(prediction.clamp(1e-6, 1 - 1e-6), target)
        return bce + soft_dice_loss(prediction, target)
