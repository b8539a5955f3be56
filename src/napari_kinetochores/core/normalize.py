"""Input normalisation shared by every backend: background level and noise sigma of a volume.

The UNet and StarDist read their input in units of the noise
(:func:`normalize_noise`); the sub-voxel refinement uses the background
level. Plain numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_kinetochores.errors import InputError

DEFAULT_PERCENTILES = (1.0, 99.8)
NOISE_UNITS = 10.0
"""Noise sigmas that map to 1 in the network input (see :func:`normalize_noise`)."""


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

    Background-subtracted data clipped at a floor (many voxels exactly at the
    minimum, see :func:`clipped_floor`) are measured where they are above it:
    the background is the median of those voxels and the noise comes from
    neighbours both above the floor, so the empty, noiseless floor neither
    pulls the noise towards 0 nor makes every faint voxel look like a spot.

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
    floor = clipped_floor(values)
    if floor is not None:  # background subtracted and clipped: measure where there is signal
        live = [np.diff(b, axis=-1)[(b[:, 1:] > floor) & (b[:, :-1] > floor)] for b in blocks]
        differences = np.concatenate(live)
        n_pairs = sum(b.shape[0] * max(b.shape[1] - 1, 0) for b in blocks)
        spread = _difference_spread(differences)
        # Photon-starved counts (mostly 0, rarely two neighbours above it) are not clipped data:
        # too few live pairs, or no spread among them, fall back to the whole volume.
        if differences.size >= max(MIN_LIVE_PAIRS, MIN_LIVE_SHARE * n_pairs) and spread > 0:
            return float(np.median(values[values > floor])), float(spread / np.sqrt(2.0))
    background = float(np.median(values))
    differences = np.concatenate([np.diff(b, axis=-1).ravel() for b in blocks])
    if differences.size == 0:
        return background, float(np.std(values))
    return background, float(_difference_spread(differences) / np.sqrt(2.0))


MIN_LIVE_PAIRS = 1000
MIN_LIVE_SHARE = 0.02
"""Neighbour pairs both above a clipped floor needed to measure the noise there (count, share)."""


def _difference_spread(differences: np.ndarray) -> float:
    """Robust standard deviation of neighbour differences (0 for none)."""
    if differences.size == 0:
        return 0.0
    centre = float(np.median(differences))
    spread = 1.4826 * float(np.median(np.abs(differences - centre)))
    if spread > 0:
        # The MAD of integer camera data moves in whole counts (7 or 8: 14 % apart), so
        # refine it: the standard deviation of the differences within 3.5 MAD-sigmas,
        # corrected for that truncation of a gaussian (0.9940).
        for _ in range(2):
            kept = differences[np.abs(differences - centre) < 3.5 * spread]
            spread = float(np.std(kept)) / 0.9940
        return spread
    return float(np.std(differences))


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


FLOOR_FRACTION = 0.2
"""Share of voxels at exactly the minimum above which data count as clipped at a floor
(camera data with an offset have almost none: a noisy background rarely repeats its minimum)."""


def clipped_floor(values: np.ndarray) -> float | None:
    """The floor a background-subtracted volume was clipped at, or None if it was not clipped.

    Parameters
    ----------
    values : array
        Intensities (any shape), finite.

    Returns
    -------
    float or None
        The minimum when at least :data:`FLOOR_FRACTION` of the voxels equal
        it (e.g. 0 after "subtract background, clip negatives"), else None.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> clipped_floor(rng.normal(100, 5, 10_000)) is None
    True
    >>> clipped_floor(np.maximum(rng.normal(0, 5, 10_000) - 5, 0))
    0.0
    """
    flat = np.asarray(values).ravel()
    if flat.size == 0:
        return None
    floor = flat.min()
    if np.count_nonzero(flat == floor) < FLOOR_FRACTION * flat.size:
        return None
    return float(floor)
