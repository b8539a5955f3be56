"""Classical spot detector: anisotropic difference of Gaussians + peaks.

It is the baseline the UNet is compared with, and the fallback when no model
is available. The filter scale comes from the PSF size in µm, so it adapts to
the voxel anisotropy, and the threshold is in units of a robust estimate of the
filter response's noise (median absolute deviation), so it needs no tuning per
movie.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_kinetochores.core.peaks import find_peaks
from napari_kinetochores.errors import InputError

DEFAULT_SPOT_SIGMA_UM = (0.25, 0.10, 0.10)
DEFAULT_THRESHOLD_SIGMAS = 6.0
DEFAULT_MIN_DISTANCE_UM = 0.3


def dog_response(
    frame_zyx: np.ndarray,
    voxel_size_um: Sequence[float],
    spot_sigma_um: Sequence[float] = DEFAULT_SPOT_SIGMA_UM,
    ratio: float = 1.6,
) -> np.ndarray:
    """Difference-of-Gaussians response, tuned to spots of a given sigma.

    Parameters
    ----------
    frame_zyx : (Z, Y, X) array
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    spot_sigma_um : (3,) sequence
        Gaussian sigma (z, y, x) of a spot in µm (about the PSF's).
    ratio : float
        Ratio between the two Gaussians' sigmas.

    Returns
    -------
    (Z, Y, X) float32 array, positive on bright spots.
    """
    from scipy import ndimage

    from napari_kinetochores.io.volumes import validate_voxel_size

    voxel = np.asarray(validate_voxel_size(voxel_size_um), float)
    sigma = np.asarray(spot_sigma_um, float)
    if sigma.shape != (3,) or not np.all(np.isfinite(sigma)) or np.any(sigma <= 0):
        raise InputError(
            f"spot sigma must be three positive numbers (z, y, x) in µm, got {spot_sigma_um}"
        )
    sigma_vox = np.asarray(spot_sigma_um, float) / voxel
    small = sigma_vox / np.sqrt(1 + ratio**2) * np.sqrt(2)
    data = np.asarray(frame_zyx, dtype=np.float32)
    inner = ndimage.gaussian_filter(data, small, mode="nearest", truncate=3.0)
    outer = ndimage.gaussian_filter(data, small * ratio, mode="nearest", truncate=3.0)
    return inner - outer


def robust_noise_sigma(values: np.ndarray) -> float:
    """Noise standard deviation estimated as 1.4826 × median absolute deviation."""
    sample = np.asarray(values, dtype=np.float32).ravel()
    if sample.size > 2_000_000:  # a strided subsample is plenty for a MAD
        sample = sample[:: sample.size // 1_000_000]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0
    median = np.median(sample)
    return float(1.4826 * np.median(np.abs(sample - median)))


def response_noise_sigma(response: np.ndarray, frame_zyx: np.ndarray) -> float:
    """Noise sigma of a DoG response; on a frame clipped at a floor, only where it has signal.

    A background-subtracted frame is mostly exactly 0, and so is its
    response there: the MAD of all voxels would be about 0 and every faint
    voxel of the cell a "spot". Voxels at the floor
    (:func:`napari_kinetochores.core.normalize.clipped_floor`) are left out.
    """
    from napari_kinetochores.core.normalize import clipped_floor

    floor = clipped_floor(frame_zyx)
    if floor is None:
        return robust_noise_sigma(response)
    return robust_noise_sigma(response[np.asarray(frame_zyx) > floor])


def detect_spots_classical(
    frame_zyx: np.ndarray,
    voxel_size_um: Sequence[float],
    threshold: float | None = None,
    min_distance_um: float = DEFAULT_MIN_DISTANCE_UM,
    spot_sigma_um: Sequence[float] = DEFAULT_SPOT_SIGMA_UM,
    refine: str = "quadratic",
) -> tuple[np.ndarray, np.ndarray]:
    """Detect spots in one 3D frame with a DoG filter and an automatic threshold.

    Parameters
    ----------
    frame_zyx : (Z, Y, X) array
        One channel of one time point.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    threshold : float, optional
        Minimum score, in robust noise standard deviations of the DoG response
        (default 6).
    min_distance_um : float
        Smallest distance between two spots, in µm.
    spot_sigma_um : (3,) sequence
        Expected spot sigma (z, y, x) in µm.
    refine : str
        Sub-voxel refinement, see :func:`napari_kinetochores.core.peaks.find_peaks`.

    Returns
    -------
    coords : (N, 3) float array
        Spot centres (z, y, x) in voxels.
    scores : (N,) float array
        DoG response at each spot over the noise sigma (a local SNR).

    Examples
    --------
    >>> from napari_kinetochores.core.targets import gaussian_heatmap
    >>> rng = np.random.default_rng(0)
    >>> frame = 50 * gaussian_heatmap([[8, 20, 20.3]], (16, 40, 40), (0.3, 0.13, 0.13), (0.25, 0.1, 0.1))
    >>> frame += rng.normal(100, 2, frame.shape)
    >>> coords, scores = detect_spots_classical(frame, (0.3, 0.13, 0.13))
    >>> np.round(coords).tolist(), bool(scores[0] > 6)
    ([[8.0, 20.0, 20.0]], True)
    """
    data = np.asarray(frame_zyx, dtype=np.float32)
    if data.ndim != 3:
        raise InputError(f"classical detection needs a (Z, Y, X) frame, got shape {data.shape}")
    score = score_map(data, voxel_size_um, spot_sigma_um)
    return spots_in_score_map(score, voxel_size_um, threshold, min_distance_um, refine)


def spots_in_score_map(
    score: np.ndarray,
    voxel_size_um: Sequence[float],
    threshold: float | None = None,
    min_distance_um: float = DEFAULT_MIN_DISTANCE_UM,
    refine: str = "quadratic",
) -> tuple[np.ndarray, np.ndarray]:
    """Spots of a :func:`score_map` (Z, Y, X): peaks above ``threshold`` noise sigmas (default 6).

    Returns (coords (N, 3) voxels, scores (N,)), as :func:`detect_spots_classical`.
    """
    if not score.any():  # constant frame (score_map gives zeros): nothing can be a spot
        return np.zeros((0, 3)), np.zeros(0)
    cut = DEFAULT_THRESHOLD_SIGMAS if threshold is None else float(threshold)
    return find_peaks(
        score, voxel_size_um, min_distance_um=min_distance_um, threshold_abs=cut, refine=refine
    )


class ClassicalDetector:
    """The ``classical`` backend: :func:`detect_spots_classical` on every reported channel.

    It needs no model; ``threshold`` is in robust noise sigmas of the DoG
    response and ``min_distance_um`` defaults to 0.3 µm.
    """

    method = "classical"
    tileable = True
    score_maps = True
    libraries = ()

    @classmethod
    def model_file(cls, options) -> None:
        """The classical detector has no model file."""
        return None

    @classmethod
    def from_options(cls, options) -> ClassicalDetector:
        """The detector for these options (there is nothing to load)."""
        return cls()

    def for_volume(self, volume, channel: int = 0) -> ClassicalDetector:
        """The same detector for every movie."""
        return self

    def check_input(self, volume, channel: int = 0) -> None:
        """Any channel of any movie will do (channel existence is checked by the loop)."""

    def map_channels(self, n_channels: int, options) -> tuple[list[int], str]:
        """Movie channel of each score-map channel, and what the map holds."""
        from napari_kinetochores.backends.base import reported_channels

        channels = reported_channels(options.channel, n_channels, options.all_channels)
        return channels, "classical score (DoG response / noise sigma)"

    def detect(self, volume, t: int, options, on_prediction=None) -> list:
        """Detections of frame ``t`` on the kinetochore channel (and the others if asked).

        ``on_prediction(t, score)``, if given, receives the score maps (DoG
        response over noise sigma), one map channel per reported channel.
        """
        from napari_kinetochores.backends.base import reported_channels

        voxel = tuple(volume.voxel_size_um)
        min_distance = (
            DEFAULT_MIN_DISTANCE_UM if options.min_distance_um is None else options.min_distance_um
        )
        channels = reported_channels(options.channel, volume.n_channels, options.all_channels)
        found, maps = [], []
        for channel in channels:
            score = score_map(volume.frame(t, channel), voxel)
            coords, scores = spots_in_score_map(score, voxel, options.threshold, min_distance)
            found.append((channel, coords, scores))
            if on_prediction is not None:  # keep the maps only for who wants them
                maps.append(score)
        if on_prediction is not None:
            on_prediction(t, np.stack(maps))
        return found

    def detect_tiled(self, volume, t: int, options, core_shape, map_writer=None) -> list:
        """Detections of frame ``t`` read in tiles; equal to :meth:`detect` (see tiling)."""
        from napari_kinetochores.backends.base import reported_channels
        from napari_kinetochores.detection.tiling import detect_classical_tiled

        found = []
        channels = reported_channels(options.channel, volume.n_channels, options.all_channels)
        for index, channel in enumerate(channels):
            writer = None
            if map_writer is not None:

                def writer(region, block, _index=index):
                    map_writer(region, block, _index)

            coords, scores = detect_classical_tiled(
                volume, t, channel, options.threshold, options.min_distance_um, core_shape, writer
            )
            found.append((channel, coords, scores))
        return found


def score_map(
    frame_zyx: np.ndarray,
    voxel_size_um: Sequence[float],
    spot_sigma_um: Sequence[float] = DEFAULT_SPOT_SIGMA_UM,
) -> np.ndarray:
    """The classical score map: DoG response over its noise sigma (zeros for a constant frame).

    Parameters
    ----------
    frame_zyx : (Z, Y, X) array
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    spot_sigma_um : (3,) sequence
        Expected spot sigma (z, y, x) in µm.

    Returns
    -------
    (Z, Y, X) float32 array, in noise sigmas (a local SNR).
    """
    data = np.asarray(frame_zyx, np.float32)
    response = dog_response(data, voxel_size_um, spot_sigma_um)
    noise = response_noise_sigma(response, data)
    if noise <= 0:
        return np.zeros(response.shape, np.float32)
    return (response / noise).astype(np.float32, copy=False)
