"""Network inputs and training samples: temporal stacking, normalisation, patches, augmentation.

Plain numpy; torch is not needed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_kinetochores.core.normalize import (  # noqa: F401  (also this module's API)
    DEFAULT_PERCENTILES,
    NOISE_UNITS,
    noise_statistics,
    normalize_noise,
    normalize_percentile,
    sample_rows,
)


def temporal_indices(t: int, n_frames: int, window: int) -> list[int]:
    """Frames of a temporal window centred on ``t``; edges repeat the edge frame.

    >>> temporal_indices(0, 5, 3), temporal_indices(2, 5, 3), temporal_indices(4, 5, 3)
    ([0, 0, 1], [1, 2, 3], [3, 4, 4])
    """
    half = window // 2
    return [min(max(t + dt, 0), n_frames - 1) for dt in range(-half, half + 1)]


def stack_input(
    frame_reader,
    t: int,
    n_frames: int,
    image_channels: Sequence[int],
    window: int,
    percentiles: Sequence[float] | None = None,
    noise_units: float = NOISE_UNITS,
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Build the network input for frame ``t``: (len(channels) × window, Z, Y, X), ``dtype``.

    ``frame_reader(t, c)`` returns one (Z, Y, X) frame; each frame is
    normalised on its own, in noise units (:func:`normalize_noise`), or by
    ``percentiles`` for checkpoints that were trained that way. Channels are
    ordered channel-major: ``[c0 t-1, c0 t, c0 t+1, c1 t-1, …]``; the first
    and last frames repeat. The output is written in place, one frame at a
    time, so a large frame costs one input copy plus one frame.
    """
    frames = temporal_indices(t, n_frames, window)
    order = [(ti, channel) for channel in image_channels for ti in frames]
    stack = None
    first_index: dict[tuple[int, int], int] = {}
    for index, key in enumerate(order):
        if key in first_index:  # a repeated edge frame
            stack[index] = stack[first_index[key]]
            continue
        frame = frame_reader(*key)
        if stack is None:
            stack = np.empty((len(order), *np.shape(frame)), dtype)
        if percentiles is not None:
            stack[index] = normalize_percentile(frame, percentiles)
        elif stack.dtype == np.float32:
            normalize_noise(frame, noise_units, out=stack[index])
        else:
            stack[index] = normalize_noise(frame, noise_units)
        first_index[key] = index
    return stack


@dataclass
class Augmenter:
    """Random xy flips and 90° rotations, intensity and gamma jitter, additive noise.

    Geometric transforms act on image and target alike; intensity ones on the
    image only. Rotations by 90° in y-x assume square xy voxels.
    """

    flip: bool = True
    rotate90: bool = True
    intensity_scale: tuple[float, float] = (0.8, 1.25)
    gamma: tuple[float, float] = (0.8, 1.25)
    noise_std: tuple[float, float] = (0.0, 0.05)

    def __call__(self, rng: np.random.Generator, image: np.ndarray, target: np.ndarray):
        if self.flip:
            for axis in (-1, -2):
                if rng.random() < 0.5:
                    image, target = np.flip(image, axis), np.flip(target, axis)
        if self.rotate90 and image.shape[-1] == image.shape[-2]:
            k = int(rng.integers(4))
            image, target = np.rot90(image, k, axes=(-2, -1)), np.rot90(target, k, axes=(-2, -1))
        image = np.ascontiguousarray(image, dtype=np.float32)
        target = np.ascontiguousarray(target, dtype=np.float32)
        gamma = rng.uniform(*self.gamma)
        image = np.sign(image) * np.abs(image) ** gamma
        image *= rng.uniform(*self.intensity_scale)
        image += rng.normal(0, rng.uniform(*self.noise_std), image.shape).astype(np.float32)
        return image, target


def sample_patch(
    rng: np.random.Generator,
    image: np.ndarray,
    target: np.ndarray,
    points_zyx: np.ndarray,
    patch_shape: Sequence[int],
    spot_bias: float = 0.8,
    target_fill: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a random patch, centred near a random spot with probability ``spot_bias``.

    Parameters
    ----------
    image : (C_in, Z, Y, X) array
    target : (C_out, Z, Y, X) array
    points_zyx : (N, 3) array of spot positions in voxels.
    patch_shape : (3,) sequence; a volume smaller than the patch is padded
        (image with 0, target with ``target_fill``: 0 for heatmaps, 1 for
        distance maps).

    Returns
    -------
    image patch (C_in, *patch_shape), target patch (C_out, *patch_shape)
    """
    shape = np.asarray(image.shape[1:])
    patch = np.asarray(patch_shape)
    pad = np.maximum(patch - shape, 0)
    if np.any(pad):
        widths = [(0, 0)] + [(0, int(p)) for p in pad]
        image = np.pad(image, widths)
        target = np.pad(target, widths, constant_values=target_fill)
        shape = np.asarray(image.shape[1:])
    high = shape - patch
    if len(points_zyx) and rng.random() < spot_bias:
        centre = np.asarray(points_zyx[rng.integers(len(points_zyx))])
        start = np.round(centre - patch / 2 + rng.uniform(-patch / 4, patch / 4)).astype(int)
        start = np.clip(start, 0, high)
    else:
        start = np.array([rng.integers(h + 1) for h in high])
    slices = (slice(None),) + tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True))
    return image[slices], target[slices]
