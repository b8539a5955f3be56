"""Network inputs and training samples: temporal stacking, normalisation, patches, augmentation.

Plain numpy; torch is not needed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_kinetochores.errors import InputError

DEFAULT_PERCENTILES = (1.0, 99.8)
# Noise sigmas that map to 1 in the network input (see normalize_noise).
NOISE_UNITS = 10.0


def temporal_indices(t: int, n_frames: int, window: int) -> list[int]:
    """Frames of a temporal window centred on ``t``; edges repeat the edge frame.

    >>> temporal_indices(0, 5, 3), temporal_indices(2, 5, 3), temporal_indices(4, 5, 3)
    ([0, 0, 1], [1, 2, 3], [3, 4, 4])
    """
    half = window // 2
    return [min(max(t + dt, 0), n_frames - 1) for dt in range(-half, half + 1)]


def normalize_percentile(
    volume: np.ndarray, percentiles: Sequence[float] = DEFAULT_PERCENTILES
) -> np.ndarray:
    """Map the low and high percentiles of a (Z, Y, X) volume to 0 and 1 (float32).

    The normalisation of checkpoints written before noise normalisation (see
    :func:`normalize_noise`, which new models use). Large volumes are
    subsampled for the percentiles. A constant volume maps to zeros.
    """
    data = np.asarray(volume, dtype=np.float32)
    sample = data.ravel()
    if sample.size > 4_000_000:
        sample = sample[:: sample.size // 2_000_000]
    low, high = np.percentile(sample, percentiles)
    if not np.isfinite(low) or not np.isfinite(high):
        raise InputError("volume contains NaN or infinite values")
    if high <= low:
        return np.zeros_like(data)
    return (data - low) / (high - low)


def sample_rows(volume: np.ndarray, max_voxels: int = 500_000) -> np.ndarray:
    """Every k-th x-row of a (Z, Y, X) volume, about ``max_voxels`` voxels: (rows, X) float32.

    Whole rows keep neighbouring voxels together, which the noise estimate of
    :func:`noise_statistics` needs. Half a million voxels pin the noise sigma to
    about 0.1 % (a training volume, 32 × 128 × 128, is used whole); more only
    costs time on large frames, where the estimate runs for every input frame.
    """
    data = np.asarray(volume)
    rows = data.reshape(-1, data.shape[-1]) if data.ndim > 1 else data.reshape(1, -1)
    step = max(1, rows.size // max(int(max_voxels), 1))
    return np.asarray(rows[::step], dtype=np.float32)


def noise_statistics(rows: np.ndarray | Sequence[np.ndarray]) -> tuple[float, float]:
    """Background level and noise sigma from x-rows of a volume (see :func:`sample_rows`).

    The background is the median. The noise sigma is the robust spread of the
    differences between x-neighbours (a MAD, refined by a clipped standard
    deviation), divided by ``sqrt(2)``: smooth
    background (haze, a cell's cytoplasm) cancels in the differences and the
    few spot voxels do not move a median, so the estimate does not depend on
    how much of the field the cell fills. Photon-starved data with mostly
    equal neighbours (MAD 0) fall back to the standard deviation of the
    differences; a constant volume gives sigma 0.

    Parameters
    ----------
    rows : (R, X) array, or a list of such arrays (e.g. rows of several tiles)

    Returns
    -------
    (background, sigma) : floats, in the volume's intensity units.
    """
    blocks = [rows] if isinstance(rows, np.ndarray) else list(rows)
    blocks = [np.atleast_2d(np.asarray(b, dtype=np.float32)) for b in blocks]
    values = np.concatenate([b.ravel() for b in blocks]) if blocks else np.zeros(0, np.float32)
    if values.size == 0:
        raise InputError("empty volume")
    if not np.all(np.isfinite(values)):
        raise InputError("volume contains NaN or infinite values")
    background = float(np.median(values))
    differences = np.concatenate([np.diff(b, axis=-1).ravel() for b in blocks])
    if differences.size == 0:
        return background, float(np.std(values))
    centre = float(np.median(differences))
    spread = 1.4826 * float(np.median(np.abs(differences - centre)))
    if spread > 0:
        # The MAD of integer camera data moves in whole counts (7 or 8: 14 % apart), so
        # refine it: the standard deviation of the differences within 3.5 MAD-sigmas,
        # corrected for that truncation of a gaussian (0.9940).
        for _ in range(2):
            kept = differences[np.abs(differences - centre) < 3.5 * spread]
            spread = float(np.std(kept)) / 0.9940
    else:
        spread = float(np.std(differences))
    return background, float(spread / np.sqrt(2.0))


def normalize_noise(
    volume: np.ndarray,
    noise_units: float = NOISE_UNITS,
    statistics: tuple[float, float] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Express a (Z, Y, X) volume in units of its noise: ``(v - background) / (noise_units × sigma)``.

    The network's input normalisation. The background maps to 0 and the noise
    has standard deviation ``1 / noise_units`` whatever the camera, gain and
    field of view, so a spot of peak SNR ``s`` reaches about ``s /
    noise_units`` and an empty field stays noise of a fixed, known level (a
    percentile normalisation instead stretches an empty field's noise up to
    1). A constant volume maps to zeros.

    Parameters
    ----------
    volume : (Z, Y, X) array
    noise_units : float
        Noise sigmas that map to 1.
    statistics : (background, sigma), optional
        Precomputed :func:`noise_statistics` (e.g. of a whole frame read in tiles).
    out : float32 array, optional
        Where to write the result (same shape); saves a copy for large frames.

    Returns
    -------
    float32 array of the volume's shape.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> volume = rng.normal(100.0, 5.0, (8, 64, 64))
    >>> normalised = normalize_noise(volume, noise_units=10)
    >>> round(float(np.median(normalised)), 2), round(float(normalised.std()), 2)
    (0.0, 0.1)
    """
    background, sigma = noise_statistics(sample_rows(volume)) if statistics is None else statistics
    if out is None:
        out = np.empty(np.shape(volume), np.float32)
    if sigma <= 0:
        out[...] = 0
        return out
    np.subtract(volume, background, out=out, dtype=np.float32, casting="unsafe")
    out *= np.float32(1.0 / (noise_units * sigma))
    return out


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
