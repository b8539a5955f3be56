"""Input checks and corrections that every backend gets, before detection.

Real files contain what clean simulations do not:

- **sensor defects**: an sCMOS hot pixel (or hot column) is the same sensor
  pixel in every z plane, so it forms a bright line along z that a detector
  reads as a column of spots. :func:`suppress_sensor_defects` finds features
  that are constant through z and narrower than a spot, and removes their
  excess; a frame without such features is returned unchanged (the same array);
- **preprocessed data**: background-subtracted and clipped, or quantised to a
  few levels. :func:`describe_preprocessing` says so, for a warning;
  the noise estimate itself (:func:`napari_kinetochores.core.normalize.noise_statistics`)
  measures such data where they are above the floor;
- **non-continuous frames**: independent images stacked along T, or large
  motion between frames. :func:`temporal_continuity` measures whether the spots
  of one frame are still there in the next, for the rule that a temporal
  model is only used on continuous movies.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from napari_kinetochores.errors import InputError

MIN_PLANES = 8
"""Fewest z planes for which "constant through z" means a sensor feature."""

DEFECT_SIGMAS = 8.0
"""How far (in noise sigmas of a z-median) a pixel's z-median must stand out of its
3 × 3 neighbours' to count as a sensor defect."""

MAX_MEDIAN_PLANES = 16
"""Planes the z-median is taken over (evenly spaced), to bound its cost on deep frames."""


def sensor_defect_excess(frame_zyx: np.ndarray) -> np.ndarray | None:
    """Per-pixel excess (Y, X) of features constant through z and narrower than a spot.

    The z-median of each (y, x) pixel is compared with the median of its
    3 × 3 neighbours' z-medians: a spot occupies a few planes and leaves the
    z-median at the background, a smooth cell leaves neighbours alike, but a
    hot (or dead) sensor pixel or column stands out in every plane.

    Parameters
    ----------
    frame_zyx : (Z, Y, X) array

    Returns
    -------
    (Y, X) float32 array or None
        The excess to subtract from every plane (0 where nothing stands out);
        None when no pixel stands out or the frame has fewer than
        :data:`MIN_PLANES` planes.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> frame = rng.normal(100, 5, (20, 32, 32)).astype(np.float32)
    >>> sensor_defect_excess(frame) is None
    True
    >>> frame[:, 10, 12] += 300  # a hot pixel, in every plane
    >>> excess = sensor_defect_excess(frame)
    >>> bool(290 < excess[10, 12] < 310), int(np.count_nonzero(excess))
    (True, 1)
    """
    from scipy import ndimage

    from napari_kinetochores.core.normalize import noise_statistics, sample_rows

    data = np.asarray(frame_zyx, np.float32)
    if data.ndim != 3 or data.shape[0] < MIN_PLANES:
        return None
    planes = np.unique(np.linspace(0, data.shape[0] - 1, MAX_MEDIAN_PLANES).round().astype(int))
    z_median = np.median(data[planes], axis=0)
    excess = z_median - ndimage.median_filter(z_median, size=3, mode="nearest")
    _, sigma = noise_statistics(sample_rows(data))
    # noise of a median of n planes (1.2533 sigma / sqrt(n)), and of the neighbours' median
    median_sigma = 1.2533 * sigma / np.sqrt(len(planes)) * np.sqrt(2.0)
    if median_sigma <= 0:
        return None
    defect = np.abs(excess) > DEFECT_SIGMAS * median_sigma
    if not defect.any():
        return None
    return np.where(defect, excess, 0).astype(np.float32)


def suppress_sensor_defects(frame_zyx: np.ndarray) -> np.ndarray:
    """The frame without its sensor defects (see :func:`sensor_defect_excess`).

    Returns the input array itself when there is nothing to remove, else a
    float32 copy with each defect pixel's excess subtracted from every plane.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> frame = rng.normal(100, 5, (20, 32, 32)).astype(np.float32)
    >>> suppress_sensor_defects(frame) is frame
    True
    >>> frame[:, :, 7] += 200  # a hot column, in every plane
    >>> bool(abs(suppress_sensor_defects(frame)[:, :, 7].mean() - 100) < 3)
    True
    """
    excess = sensor_defect_excess(frame_zyx)
    if excess is None:
        return frame_zyx
    return np.asarray(frame_zyx, np.float32) - excess[None]


def check_finite(block: np.ndarray, volume, t: int, channel: int | None) -> None:
    """Fail, naming the file, frame and channel, when ``block`` holds NaN or infinities.

    Every frame (or tile) a detector reads goes through this check (see
    :class:`CorrectedVolume` and :func:`~napari_kinetochores.detection.tiling.read_region`):
    a NaN would otherwise spread through the filters and the network and
    silently remove every spot around it. Integer movies cannot hold NaN and
    are not scanned; float data cost one float64 sum per block read.

    Examples
    --------
    >>> from napari_kinetochores.io import volume_from_array
    >>> volume = volume_from_array(np.zeros((2, 1, 2, 4, 4), np.float32), (0.3, 0.13, 0.13))
    >>> check_finite(np.full((2, 4, 4), np.nan, np.float32), volume, 1, 0)
    Traceback (most recent call last):
    ...
    napari_kinetochores.errors.InputError: frame 1, channel 0 holds 32 NaN or infinite voxel(s); detection needs finite intensities: replace them (e.g. with the background level), or leave the frame out with --frames
    """
    dtype = np.dtype(volume.dtype)
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        return
    if np.isfinite(np.sum(block, dtype=np.float64)):
        return
    n_bad = int(np.count_nonzero(~np.isfinite(block)))
    if n_bad == 0:
        return  # finite values whose sum overflowed
    where_ = f"frame {t}" if channel is None else f"frame {t}, channel {channel}"
    raise InputError(
        f"{where_} holds {n_bad} NaN or infinite voxel(s); detection needs finite intensities: "
        "replace them (e.g. with the background level), or leave the frame out with --frames",
        getattr(volume, "path", None),
    )


class CorrectedVolume:
    """A movie whose frames are read through :func:`suppress_sensor_defects`.

    Every attribute but :meth:`frame` is the wrapped volume's. Each frame is
    checked for NaN and infinities (:func:`check_finite`) and its defect map
    (Y, X) measured when first read, and the map is kept (a temporal model reads each
    frame up to three times); frames themselves are not kept, so memory stays
    that of the frames in use.
    """

    def __init__(self, volume, cache_size: int = 16) -> None:
        self._volume = volume
        self._excess: OrderedDict = OrderedDict()
        self._cache_size = int(cache_size)
        self.corrected_frames: set[tuple[int, int]] = set()

    def __getattr__(self, name: str):
        return getattr(self._volume, name)

    def frame(self, t: int, channel: int | None = None) -> np.ndarray:
        """Frame ``t`` of ``channel`` (Z, Y, X), sensor defects removed; all channels if None."""
        if channel is None:
            return np.stack([self.frame(t, c) for c in range(self._volume.n_channels)])
        key = (int(t), int(channel))
        raw = self._volume.frame(t, channel)
        if key not in self._excess:
            check_finite(raw, self._volume, key[0], key[1])
            self._excess[key] = sensor_defect_excess(raw)
            while len(self._excess) > self._cache_size:
                self._excess.popitem(last=False)
        excess = self._excess[key]
        if excess is None:
            return raw
        self.corrected_frames.add(key)
        return np.asarray(raw, np.float32) - excess[None]


QUANTISED_STEP = 0.5
"""Intensity step (in noise sigmas) above which data count as coarsely quantised."""


def describe_preprocessing(sample: np.ndarray) -> str | None:
    """What suggests that data were preprocessed (for a warning), or None.

    Two signs: many voxels exactly at the minimum (background subtracted and
    clipped, :func:`~napari_kinetochores.core.normalize.clipped_floor`), and
    intensity levels further apart than :data:`QUANTISED_STEP` noise sigmas
    (e.g. 8-bit conversion of dim data). Integer camera counts, whose noise
    spans many counts, are neither.

    Parameters
    ----------
    sample : (Y, X) or (Z, Y, X) array
        Intensities of (part of) a frame, e.g. its central plane.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> describe_preprocessing(np.round(rng.normal(100, 5, (64, 64)))) is None
    True
    >>> print(describe_preprocessing(np.maximum(np.round(rng.normal(0, 3, (64, 64))), 0)))
    56 % of the voxels are exactly 0.0 (background subtracted and clipped?); intensity steps of 1 are 0.57 noise sigmas (coarsely quantised?)
    >>> print(describe_preprocessing(np.round(rng.normal(10, 0.8, (64, 64)))))
    intensity steps of 1 are 1.19 noise sigmas (coarsely quantised?)
    """
    from napari_kinetochores.core.normalize import clipped_floor, noise_statistics, sample_rows

    values = np.asarray(sample, np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.ptp(values) == 0:
        return None  # nothing to say about an empty or constant plane
    notes = []
    floor = clipped_floor(values)
    if floor is not None:
        share = np.count_nonzero(values == floor) / values.size
        notes.append(
            f"{100 * share:.0f} % of the voxels are exactly {floor} "
            "(background subtracted and clipped?)"
        )
    levels = np.unique(values)
    _, sigma = noise_statistics(sample_rows(values))
    if levels.size > 1 and sigma > 0:
        step = float(np.min(np.diff(levels)))
        if step >= QUANTISED_STEP * sigma:
            notes.append(
                f"intensity steps of {step:.3g} are {step / sigma:.2f} noise sigmas "
                "(coarsely quantised?)"
            )
    return "; ".join(notes) or None


CONTINUITY_SIGMAS = 4.0
"""Score (DoG response in noise sigmas) above which a voxel counts as part of a spot."""

MIN_CONTINUITY = 0.05
"""Below this :func:`temporal_continuity`, a movie's frames are not treated as continuous.
Measured on simulated 32 × 128 × 128 movies (seeds 800 000+): continuous 0.11 at very low
SNR, 0.49 low, 0.68 moderate, 0.81 high; independent frames stacked along T -0.006 to 0.006."""


def temporal_continuity(
    volume, channel: int = 0, max_pairs: int = 3, crop_yx: int = 256, max_planes: int = 24
) -> float | None:
    """How much of each frame's spot signal is still there in the next frame (about 0 to 1).

    For up to ``max_pairs`` pairs of consecutive frames (evenly spread), the
    classical score maps (DoG response in noise sigmas) of both frames are
    compared where either has a spot (score above :data:`CONTINUITY_SIGMAS`):
    the mean score of one frame there over the other's. Continuous movies keep
    their spots from one frame to the next (0.5–1); independent images or
    large motion between frames do not (about 0). A central crop of
    ``crop_yx`` pixels and ``max_planes`` planes bounds the cost.

    Returns
    -------
    float or None
        The median over the pairs; None for a one-frame movie or when
        neither frame has any spot.
    """
    from napari_kinetochores.backends.classical import score_map

    n_frames = volume.n_frames
    if n_frames < 2:
        return None
    starts = np.unique(np.linspace(0, n_frames - 2, max_pairs).round().astype(int))
    ratios = []
    for t in starts:
        first, second = (_central(volume, t + k, channel, crop_yx, max_planes) for k in (0, 1))
        score_first = score_map(first, volume.voxel_size_um)
        score_second = score_map(second, volume.voxel_size_um)
        for a, b in ((score_first, score_second), (score_second, score_first)):
            spots = a > CONTINUITY_SIGMAS
            if spots.any():
                ratios.append(float(np.mean(b[spots]) / np.mean(a[spots])))
    return float(np.median(ratios)) if ratios else None


def _central(volume, t: int, channel: int, crop_yx: int, max_planes: int) -> np.ndarray:
    """A central block of frame ``t``: at most ``max_planes`` × ``crop_yx`` × ``crop_yx`` voxels,
    read alone from lazy data."""
    region = []
    for size, keep in zip(volume.shape[2:], (max_planes, crop_yx, crop_yx), strict=True):
        start = max((int(size) - keep) // 2, 0)
        region.append(slice(start, start + keep))
    block = volume.data[(t, channel, *region)]
    if hasattr(block, "compute"):
        block = block.compute()
    return np.asarray(block, np.float32)


def central_sample(volume, t: int, channel: int) -> np.ndarray:
    """The central z plane of frame ``t`` (cheap to read from lazy data), for input checks."""
    plane = volume.data[(t, channel, volume.shape[2] // 2)]
    if hasattr(plane, "compute"):
        plane = plane.compute()
    return np.asarray(plane)


__all__: Sequence[str] = [
    "CorrectedVolume",
    "describe_preprocessing",
    "sensor_defect_excess",
    "suppress_sensor_defects",
    "temporal_continuity",
]
