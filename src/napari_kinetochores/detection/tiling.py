"""Detection in one frame too large for memory: spatial tiles with halos.

A frame such as a 61 × 4000 × 4000 zarr volume is read one tile at a time.
Each tile is a *core* (the tiles' cores partition the frame) read with a
*halo* of extra voxels on every side that is inside the frame. The filters and
the peak search run on the tile with its halo; a peak is kept only when its
voxel lies in the tile's core, so every peak is reported by exactly one tile
and none is duplicated at tile borders.

Classical detector: the result equals the untiled
:func:`napari_kinetochores.backends.classical.detect_spots_classical` exactly (same
rows, same floats, same order) because

* the halo covers the difference-of-Gaussians support plus the peak
  neighbourhood (the DoG is exact in the core and ``min_distance`` beyond it);
* the automatic threshold is in units of a noise estimate (MAD of the DoG
  response) that the untiled detector takes over a strided subsample of the
  whole frame: a first pass over the tiles gathers exactly those voxels'
  responses, so every tile uses the same noise value;
* sub-voxel refinement is computed in frame coordinates, and peaks are merged
  by decreasing score, ties in raster order, as the untiled search orders them.

The one exception is a plateau of several neighbouring voxels with exactly the
same float32 score (it does not happen in noisy images): its centre is then
computed in tile coordinates and may differ in the last bit.

UNet: the tiles are normalised with the noise statistics of the whole frame
(gathered from rows of every tile), and the network's own tiling
runs inside each tile. The halo is larger than the network's overlap, but
the blending of the network tiles differs from untiled inference, so the
probabilities differ slightly near tile seams and the detections can differ
by a spot of borderline score; they are not bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from napari_kinetochores.core.preprocess import check_finite
from napari_kinetochores.errors import InputError

DEFAULT_CORE_YX = 512
"""Default tile core size along y and x (voxels); z is not tiled by default."""

UNET_HALO_YX = 32
"""Halo (voxels, y and x) of UNet tiles, beyond the peak neighbourhood."""

MapWriter = Callable[[tuple[slice, slice, slice], np.ndarray, int], None]
"""``writer(core_region_zyx, values, first_channel)`` stores a (C, z, y, x) block
of the score map at map channels ``first_channel .. first_channel + C - 1``."""


@dataclass(frozen=True)
class Tile:
    """One tile of a frame, in frame voxel coordinates (z, y, x).

    Attributes
    ----------
    core_start, core_stop : (3,) tuples
        The core: the voxels this tile reports.
    read_start, read_stop : (3,) tuples
        The core with its halo, clipped to the frame: the voxels read.
    """

    core_start: tuple[int, int, int]
    core_stop: tuple[int, int, int]
    read_start: tuple[int, int, int]
    read_stop: tuple[int, int, int]

    @property
    def core(self) -> tuple[slice, slice, slice]:
        """Core region as slices of the frame."""
        return tuple(slice(a, b) for a, b in zip(self.core_start, self.core_stop, strict=True))

    @property
    def read(self) -> tuple[slice, slice, slice]:
        """Read region (core + halo) as slices of the frame."""
        return tuple(slice(a, b) for a, b in zip(self.read_start, self.read_stop, strict=True))

    @property
    def core_in_read(self) -> tuple[slice, slice, slice]:
        """Core region as slices of the read block."""
        return tuple(
            slice(c0 - r0, c1 - r0)
            for c0, c1, r0 in zip(self.core_start, self.core_stop, self.read_start, strict=True)
        )


def tile_grid(
    shape_zyx: Sequence[int], core_shape: Sequence[int | None], halo_zyx: Sequence[int]
) -> list[Tile]:
    """Cut a frame into tiles whose cores partition it.

    Parameters
    ----------
    shape_zyx : (3,) sequence of int
        Frame shape (Z, Y, X) in voxels.
    core_shape : (3,) sequence of int or None
        Core size (z, y, x) in voxels; None or 0 takes the whole axis.
    halo_zyx : (3,) sequence of int
        Halo added on each side (clipped to the frame), in voxels.

    Returns
    -------
    list of Tile, in raster order (z, then y, then x).

    Examples
    --------
    >>> tiles = tile_grid((10, 100, 100), (None, 64, 64), (0, 8, 8))
    >>> len(tiles), tiles[0].read, tiles[-1].core
    (4, (slice(0, 10, None), slice(0, 72, None), slice(0, 72, None)), (slice(0, 10, None), slice(64, 100, None), slice(64, 100, None)))
    """
    shape = [int(s) for s in shape_zyx]
    if len(shape) != 3 or any(s < 1 for s in shape):
        raise InputError(
            f"frame shape must be three positive sizes (Z, Y, X), got {tuple(shape_zyx)}"
        )
    cores = [s if not c else int(c) for s, c in zip(shape, core_shape, strict=True)]
    if any(c < 1 for c in cores):
        raise InputError(f"tile core sizes must be positive, got {tuple(core_shape)}")
    halo = [max(int(h), 0) for h in halo_zyx]
    starts = [list(range(0, s, c)) for s, c in zip(shape, cores, strict=True)]
    tiles = []
    for z in starts[0]:
        for y in starts[1]:
            for x in starts[2]:
                start = (z, y, x)
                stop = tuple(min(a + c, s) for a, c, s in zip(start, cores, shape, strict=True))
                read_start = tuple(max(a - h, 0) for a, h in zip(start, halo, strict=True))
                read_stop = tuple(min(b + h, s) for b, h, s in zip(stop, halo, shape, strict=True))
                tiles.append(Tile(start, stop, read_start, read_stop))  # type: ignore[arg-type]
    return tiles


def classical_halo(
    voxel_size_um: Sequence[float],
    min_distance_um: float,
    spot_sigma_um: Sequence[float] | None = None,
    ratio: float = 1.6,
) -> tuple[int, int, int]:
    """Halo (z, y, x) in voxels that makes tiled classical detection exact.

    It is the support of the wider Gaussian of the difference of Gaussians
    (3 sigma, as :func:`~napari_kinetochores.backends.classical.dog_response` truncates
    it: a few PSF widths) plus the peak neighbourhood (``min_distance_um``,
    at least one voxel for the sub-voxel fit).
    """
    from napari_kinetochores.backends.classical import DEFAULT_SPOT_SIGMA_UM
    from napari_kinetochores.core.peaks import _radius_voxels

    voxel = np.asarray(voxel_size_um, float)
    sigma = np.asarray(DEFAULT_SPOT_SIGMA_UM if spot_sigma_um is None else spot_sigma_um, float)
    outer = sigma / voxel / np.sqrt(1 + ratio**2) * np.sqrt(2) * ratio
    dog_radius = np.array([int(3.0 * float(s) + 0.5) for s in outer])  # scipy's truncate=3 radius
    peak_radius = np.maximum(_radius_voxels(min_distance_um, voxel), 1)
    return tuple(int(v) for v in dog_radius + peak_radius + 1)  # type: ignore[return-value]


def read_region(volume, t: int, channel: int, region: tuple[slice, slice, slice]) -> np.ndarray:
    """Read one block (z, y, x) of frame ``t``, channel ``channel`` as float32.

    Only the chunks that hold the block are read from lazy (zarr, HDF5) data.
    Raises an InputError naming the frame when it holds NaN or infinities.
    """
    block = volume.data[(t, channel, *region)]
    if hasattr(block, "compute"):
        block = block.compute()
    block = np.asarray(block, dtype=np.float32)
    check_finite(block, volume, t, channel)
    return block


def _strided_pick(
    block: np.ndarray, start: Sequence[int], shape_zyx: Sequence[int], step: int
) -> np.ndarray:
    """Values of ``block`` (placed at ``start`` in a frame of ``shape_zyx``) whose
    flat (raster) index in the frame is a multiple of ``step``."""
    if step <= 1:
        return block.ravel()
    nz, ny, nx = block.shape
    z0, y0, x0 = (int(s) for s in start)
    _, size_y, size_x = (int(s) for s in shape_zyx)
    zz = np.arange(z0, z0 + nz, dtype=np.int64)[:, None]
    yy = np.arange(y0, y0 + ny, dtype=np.int64)[None, :]
    row_start = (zz * size_y + yy) * size_x + x0
    first = (-row_start) % step
    cols = first[..., None] + step * np.arange(-(-nx // step), dtype=np.int64)
    zi, yi, k = np.nonzero(cols < nx)
    return block[zi, yi, cols[zi, yi, k]]


def _subsample_step(size: int, limit: int, target: int) -> int:
    """The stride the untiled estimators use: ``size // target`` above ``limit`` voxels."""
    return size // target if size > limit else 1


class _FrameView:
    """A tile block indexed in frame coordinates (for sub-voxel refinement)."""

    def __init__(self, block: np.ndarray, origin: Sequence[int], shape_zyx: Sequence[int]) -> None:
        self.block = block
        self.origin = tuple(int(o) for o in origin)
        self.shape = tuple(int(s) for s in shape_zyx)

    def __getitem__(self, index):
        return self.block[tuple(np.asarray(i) - o for i, o in zip(index, self.origin, strict=True))]


def _merge(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Merge (voxels, coords, scores) of tiles: decreasing score, ties in raster order."""
    if not parts:
        return np.zeros((0, 3)), np.zeros(0)
    voxels = np.concatenate([p[0] for p in parts]).reshape(-1, 3)
    coords = np.concatenate([p[1] for p in parts]).reshape(-1, 3)
    scores = np.concatenate([p[2] for p in parts])
    order = np.lexsort((voxels[:, 2], voxels[:, 1], voxels[:, 0], -scores))
    return coords[order], scores[order]


def _in_core(voxels: np.ndarray, tile: Tile) -> np.ndarray:
    return np.all(
        (voxels >= np.asarray(tile.core_start)) & (voxels < np.asarray(tile.core_stop)), axis=1
    )


def classical_noise_sigma(
    volume,
    t: int,
    channel: int,
    tiles: Sequence[Tile] | None = None,
    core_shape: Sequence[int | None] = (None, DEFAULT_CORE_YX, DEFAULT_CORE_YX),
) -> float:
    """Noise sigma of the DoG response of one frame, read tile by tile.

    Equals the value the untiled detector computes
    (:func:`~napari_kinetochores.backends.classical.robust_noise_sigma` of the whole
    frame's response, which subsamples every ``size // 10**6``-th voxel of
    frames above 2 million voxels): the same voxels are gathered from the
    tiles' cores, where the response is exact.
    """
    from napari_kinetochores.backends.classical import dog_response, robust_noise_sigma
    from napari_kinetochores.core.normalize import clipped_floor

    shape = volume.shape[2:]
    voxel = tuple(volume.voxel_size_um)
    if tiles is None:
        tiles = tile_grid(shape, core_shape, classical_halo(voxel, 0.0))
    step = _subsample_step(int(np.prod(shape)), 2_000_000, 1_000_000)
    samples, inputs = [], []
    for tile in tiles:
        block = read_region(volume, t, channel, tile.read)
        response = dog_response(block, voxel)
        samples.append(_strided_pick(response[tile.core_in_read], tile.core_start, shape, step))
        inputs.append(_strided_pick(block[tile.core_in_read], tile.core_start, shape, step))
        del response, block
    samples, inputs = np.concatenate(samples), np.concatenate(inputs)
    floor = clipped_floor(inputs)  # a background-subtracted frame: see response_noise_sigma
    if floor is not None:
        samples = samples[inputs > floor]
    return robust_noise_sigma(samples)


def detect_classical_tiled(
    volume,
    t: int,
    channel: int,
    threshold: float | None = None,
    min_distance_um: float | None = None,
    core_shape: Sequence[int | None] = (None, DEFAULT_CORE_YX, DEFAULT_CORE_YX),
    map_writer: MapWriter | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Classical detection in one frame, tile by tile; equal to the untiled result.

    Parameters
    ----------
    volume : napari_kinetochores.io.Volume
        The movie; only tiles of frame ``t`` are read.
    t, channel : int
        Frame and channel.
    threshold : float, optional
        In robust noise sigmas (default 6, as the untiled detector).
    min_distance_um : float, optional
        Smallest distance between spots in µm (default 0.3).
    core_shape : (3,) sequence of int or None
        Tile core (z, y, x) in voxels; None takes the whole axis.
    map_writer : callable, optional
        ``map_writer(core_region, block)`` receives each tile's core region
        and its score map (DoG response over the noise sigma), shape
        (1, z, y, x) float32.

    Returns
    -------
    coords : (N, 3) float array
        Spot centres (z, y, x) in frame voxels, by decreasing score.
    scores : (N,) float array
        Local SNR of each spot (noise sigmas).
    """
    from napari_kinetochores.backends.classical import (
        DEFAULT_MIN_DISTANCE_UM,
        DEFAULT_THRESHOLD_SIGMAS,
        dog_response,
    )
    from napari_kinetochores.core.peaks import _refine, find_peaks

    shape = volume.shape[2:]
    voxel = tuple(volume.voxel_size_um)
    min_distance = DEFAULT_MIN_DISTANCE_UM if min_distance_um is None else float(min_distance_um)
    tiles = tile_grid(shape, core_shape, classical_halo(voxel, min_distance))
    noise = classical_noise_sigma(volume, t, channel, tiles)
    if noise <= 0:  # constant frame: nothing can be a spot
        if map_writer is not None:
            for tile in tiles:
                block = np.zeros(
                    (1, *(b - a for a, b in zip(tile.core_start, tile.core_stop, strict=True))),
                    np.float32,
                )
                map_writer(tile.core, block)
        return np.zeros((0, 3)), np.zeros(0)
    cut = DEFAULT_THRESHOLD_SIGMAS if threshold is None else float(threshold)
    found = []
    for tile in tiles:
        score = dog_response(read_region(volume, t, channel, tile.read), voxel) / noise
        if map_writer is not None:
            map_writer(tile.core, score[tile.core_in_read][None])
        coords, scores = find_peaks(
            score, voxel, min_distance_um=min_distance, threshold_abs=cut, refine="none"
        )
        voxels = np.round(coords).astype(np.int64) + np.asarray(tile.read_start)
        keep = _in_core(voxels, tile)
        coords, scores, voxels = coords[keep], scores[keep], voxels[keep]
        plateau = np.any(coords != np.round(coords), axis=1)  # plateau centres are not refined
        refined = coords + np.asarray(tile.read_start, float)
        if (~plateau).any():
            view = _FrameView(score, tile.read_start, shape)
            refined[~plateau] = _refine(view, voxels[~plateau], "quadratic")
        found.append((voxels, refined, scores))
        del score
    return _merge(found)


def _frame_normalisation(volume, t: int, channel: int, tiles: Sequence[Tile], detector):
    """How to normalise the tiles of one frame like the whole frame: a function block -> input."""
    from napari_kinetochores.core.normalize import noise_statistics, normalize_noise, sample_rows

    shape = volume.shape[2:]
    if detector.info.normalization == "percentile":  # older checkpoints
        step = _subsample_step(int(np.prod(shape)), 4_000_000, 2_000_000)
        samples = [
            _strided_pick(read_region(volume, t, channel, tile.core), tile.core_start, shape, step)
            for tile in tiles
        ]
        low, high = np.percentile(np.concatenate(samples), detector.info.percentiles)
        if not np.isfinite(low) or not np.isfinite(high):
            raise InputError("volume contains NaN or infinite values", volume.path)
        if high <= low:
            return lambda block: np.zeros(block.shape, np.float32)
        return lambda block: ((block - low) / (high - low)).astype(np.float32, copy=False)
    per_tile = max(1, 2_000_000 // len(tiles))
    rows = [sample_rows(read_region(volume, t, channel, tile.core), per_tile) for tile in tiles]
    try:
        statistics = noise_statistics(rows)
    except InputError as error:
        raise InputError(str(error), volume.path) from None
    units = float(detector.info.noise_units)
    return lambda block: normalize_noise(block, units, statistics=statistics)


def detect_unet_tiled(
    volume,
    t: int,
    detector,
    channel: int = 0,
    threshold: float | None = None,
    min_distance_um: float | None = None,
    all_channels: bool = False,
    core_shape: Sequence[int | None] = (None, DEFAULT_CORE_YX, DEFAULT_CORE_YX),
    map_writer: MapWriter | None = None,
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """UNet detection in one frame, tile by tile (approximately equal to untiled).

    Parameters
    ----------
    volume : napari_kinetochores.io.Volume
    t : int
    detector : napari_kinetochores.nn.inference.UNetDetector
    channel, threshold, min_distance_um, all_channels
        As :meth:`UNetDetector.detect_frame`.
    core_shape : (3,) sequence of int or None
        Tile core (z, y, x) in voxels; None takes the whole axis.
    map_writer : callable, optional
        ``map_writer(core_region, block)`` receives each tile's core region
        and the network output there, shape (C_out, z, y, x) float32.

    Returns
    -------
    list of (movie channel, coords (N, 3) frame voxels, scores (N,)).
    """
    from napari_kinetochores.core.peaks import _radius_voxels
    from napari_kinetochores.nn.data import temporal_indices

    shape = volume.shape[2:]
    voxel = tuple(volume.voxel_size_um)
    min_distance = (
        detector.info.min_distance_um if min_distance_um is None else float(min_distance_um)
    )
    radius = np.maximum(_radius_voxels(min_distance, voxel), 1)
    halo = (int(radius[0]) + 4, int(radius[1]) + UNET_HALO_YX, int(radius[2]) + UNET_HALO_YX)
    tiles = tile_grid(shape, core_shape, halo)
    inputs = [
        (ti, c)
        for c in detector.input_channels(channel)
        for ti in temporal_indices(t, volume.n_frames, detector.config.temporal_window)
    ]
    normalise = {key: _frame_normalisation(volume, *key, tiles, detector) for key in set(inputs)}
    distance = detector.config.target == "distance"
    wanted = [
        (index, channel if detected == 0 else detected)
        for index, detected in enumerate(detector.config.detected_channels)
    ]
    wanted = [(i, c) for i, c in wanted if c == channel or all_channels]
    found: dict[int, list] = {c: [] for _, c in wanted}
    for tile in tiles:
        planes = []
        for key in inputs:
            planes.append(normalise[key](read_region(volume, *key, tile.read)))
        prediction = detector._predict_with_retry(np.stack(planes), 1.0 if distance else 0.0)
        del planes
        if map_writer is not None:
            map_writer(tile.core, prediction[(slice(None), *tile.core_in_read)])
        for index, movie_channel in wanted:
            coords, scores = detector.peaks_from_prediction(
                prediction[index],
                voxel,
                threshold,
                min_distance,
                image=read_region(volume, t, movie_channel, tile.read),
            )
            voxels = np.round(coords).astype(np.int64) + np.asarray(tile.read_start)
            keep = _in_core(voxels, tile)
            found[movie_channel].append(
                (voxels[keep], coords[keep] + np.asarray(tile.read_start, float), scores[keep])
            )
        del prediction
    return [(c, *_merge(found[c])) for _, c in wanted]


def detect_frame_tiled(
    volume,
    t: int,
    options,
    detector=None,
    core_shape: Sequence[int | None] = (None, DEFAULT_CORE_YX, DEFAULT_CORE_YX),
    map_writer: MapWriter | None = None,
) -> pd.DataFrame:
    """Detect kinetochores in frame ``t``, reading it in tiles with halos.

    Memory stays bounded by the tile size, whatever the frame size. With the
    classical method the table equals the untiled one
    (:func:`napari_kinetochores.detection.iter_detections`) exactly.

    Parameters
    ----------
    volume : napari_kinetochores.io.Volume
    t : int
        Frame index.
    options : napari_kinetochores.detection.DetectionOptions
    detector : optional
        The loaded detector for ``options.method`` (loaded from ``options`` by
        the registry if None).
    core_shape : (3,) sequence of int or None
        Tile core (z, y, x) in voxels; None takes the whole axis (default: z
        whole, 512 × 512 in y and x).
    map_writer : callable, optional
        A :data:`MapWriter`: receives the score maps tile by tile (classical:
        DoG response over noise sigma, one map channel per reported channel;
        UNet: the network output, C_out channels).

    Returns
    -------
    pandas.DataFrame
        The frame's detections in the point schema, as ``iter_detections``
        yields them.
    """
    from napari_kinetochores.detection.pipeline import detect_frame, prepare_detector

    detector = prepare_detector(volume, options, detector)
    if not detector.tileable:
        raise InputError(f"method {options.method!r} cannot read a frame in tiles")
    table, _ = detect_frame(volume, t, options, detector, None, 1, core_shape, map_writer)
    return table
