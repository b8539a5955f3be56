"""Tiled UNet inference: a network applied to a whole (C, Z, Y, X) stack in overlapping tiles.

The detector that uses it (model choice, peaks, refinement) is
:class:`napari_kinetochores.backends.unet.UNetDetector`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from napari_kinetochores.core.normalize import noise_statistics, sample_rows
from napari_kinetochores.errors import InputError

# Empty-tile test: a tile is skipped when its input, averaged over a box about
# one spot wide (z, y, x voxels), nowhere rises SIGNAL_SIGMAS noise sigmas (of
# that average) above the background. Measured on simulated Poisson noise: none
# of 1e7 noise voxels pass; spots of peak SNR 4 always pass, of SNR 2 70 %.
SIGNAL_BOX = (3, 5, 5)
SIGNAL_SIGMAS = 5.5


def choose_device(requested: str | None = None) -> str:
    """CUDA, then MPS, then CPU, unless one is requested."""
    import torch

    if requested is not None:
        if requested == "cuda" and not torch.cuda.is_available():
            raise InputError("--device cuda was requested but no CUDA GPU is available")
        if requested == "mps" and not torch.backends.mps.is_available():
            raise InputError("--device mps was requested but MPS is not available")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def reduced_precision(device: str, precision: str = "auto") -> bool:
    """Whether to autocast: "auto" uses float16 on CUDA and bfloat16 on CPUs that have it natively."""
    import torch

    if precision not in ("auto", "fp32"):
        raise InputError(f"precision must be 'auto' or 'fp32', got {precision!r}")
    if precision == "fp32":
        return False
    if device == "cuda":
        return True
    if device == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
    return False


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = max(tile - overlap, 1)
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def _blend_window(tile_shape: Sequence[int], overlap: Sequence[int]) -> np.ndarray:
    """Separable weights: 1 in the core, a raised-cosine ramp over the overlap (never 0)."""
    window = np.ones(tuple(tile_shape), np.float32)
    for axis, (size, ramp) in enumerate(zip(tile_shape, overlap, strict=True)):
        profile = np.ones(size, np.float32)
        if ramp > 0:
            x = (np.arange(ramp, dtype=np.float32) + 0.5) / ramp
            edge = 0.5 - 0.5 * np.cos(np.pi * x)
            profile[:ramp] = np.minimum(profile[:ramp], edge)
            profile[size - ramp :] = np.minimum(profile[size - ramp :], edge[::-1])
        shape = [1, 1, 1]
        shape[axis] = size
        window = window * np.maximum(profile, 1e-3).reshape(shape)
    return window


def signal_mask(volume: np.ndarray) -> np.ndarray:
    """Voxels near signal: where the box-averaged volume stands out of the noise.

    The average over :data:`SIGNAL_BOX` is compared with the background plus
    :data:`SIGNAL_SIGMAS` sigmas of averaged noise, both estimated by
    :func:`napari_kinetochores.core.normalize.noise_statistics`, so the test works on
    raw or normalised intensities alike and does not depend on how much of the
    field holds cells.

    Parameters
    ----------
    volume : (Z, Y, X) array

    Returns
    -------
    (Z, Y, X) bool array; all False for a constant volume.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> volume = rng.normal(0, 1, (9, 64, 64)).astype(np.float32)
    >>> bool(signal_mask(volume).any())
    False
    >>> volume[3:6, 30:33, 30:33] += 3  # a dim 3 × 3 × 3 spot, 3 sigmas
    >>> bool(signal_mask(volume)[4, 31, 31])
    True
    """
    from scipy.ndimage import uniform_filter

    background, sigma = noise_statistics(sample_rows(volume))
    if sigma <= 0:
        return np.zeros(np.shape(volume), bool)
    box = tuple(min(b, n) for b, n in zip(SIGNAL_BOX, np.shape(volume), strict=True))
    # Outside the volume counts as background, so edge voxels are not noisier than the rest.
    smoothed = uniform_filter(np.asarray(volume, np.float32), box, mode="constant", cval=background)
    level = background + SIGNAL_SIGMAS * sigma / np.sqrt(float(np.prod(box)))
    return smoothed > level


# (), y, x, and both: the flips that training augments with (with 90° turns), so the
# network should answer each the same way; averaging removes what it does not.
YX_FLIPS = ((), (-2,), (-1,), (-2, -1))


def forward_flip_average(model, tensor):
    """The network's output averaged over the four flips of ``tensor`` in y and x.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (N, C_in, z, y, x) to (N, C_out, z, y, x).
    tensor : (N, C_in, z, y, x) torch.Tensor

    Returns
    -------
    (N, C_out, z, y, x) float32 torch.Tensor
        Each flip's output is flipped back before averaging, so the result
        is aligned with ``tensor``.
    """
    total = None
    for dims in YX_FLIPS:
        output = model(tensor.flip(dims) if dims else tensor).float()
        output = output.flip(dims) if dims else output
        total = output if total is None else total + output
    return total / len(YX_FLIPS)


def predict_volume(
    model,
    stack: np.ndarray,
    tile_shape: Sequence[int] = (32, 128, 128),
    overlap: Sequence[int] | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    skip_empty: bool = True,
    signal_channel: int = 0,
    empty_value: float = 0.0,
    autocast: bool | None = None,
    divisor: Sequence[int] = (1, 1, 1),
    timings: dict | None = None,
    test_time_flips: bool = False,
) -> np.ndarray:
    """Run the network over a volume in overlapping tiles with smooth blending.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (N, C_in, z, y, x) to (N, C_out, z, y, x) in [0, 1].
    stack : (C_in, Z, Y, X) float32 array
        Normalised input (see :func:`napari_kinetochores.nn.data.stack_input`).
    tile_shape : (3,) sequence
        Tile size (z, y, x) in voxels; clipped to the volume and rounded to
        ``divisor``.
    overlap : (3,) sequence, optional
        Overlap between tiles in voxels (default: a quarter of the tile).
    batch_size : int
    device : str
    skip_empty : bool
        Skip tiles with no signal in input channel ``signal_channel`` (see
        :func:`signal_mask`); they get ``empty_value``.
    signal_channel : int
        The input channel tested for signal (the kinetochore channel at ``t``).
    empty_value : float
        Output of skipped tiles and of never-covered voxels (0 for
        probabilities, 1 for distance maps).
    autocast : bool, optional
        bf16/fp16 autocast; default on for CUDA, off on CPU.
    divisor : (3,) sequence
        The network needs tile sizes that are multiples of this.
    timings : dict, optional
        If given, ``"forward_s"`` (time in the network), ``"tiles"`` and
        ``"skipped_tiles"`` are added to it.
    test_time_flips : bool
        Average each tile's output over the four flips in y and x (the
        network runs four times; see :func:`forward_flip_average`).

    Returns
    -------
    (C_out, Z, Y, X) float32 array.
    """
    import torch

    if stack.ndim != 4:
        raise InputError(f"network input must be (C, Z, Y, X), got shape {stack.shape}")
    shape = np.asarray(stack.shape[1:])
    divisor = np.asarray(divisor)
    # Tiles are multiples of the divisor; a volume thinner than a tile is padded
    # up to one tile rather than cut into two heavily overlapping ones.
    covering = -(-shape // divisor) * divisor
    tile = np.minimum((np.asarray(tile_shape) // divisor) * divisor, covering)
    tile = np.maximum(tile, divisor)
    # A volume thinner than a tile is padded tile by tile (no padded copy of the volume).
    padded_shape = np.maximum(shape, tile)
    pad_mode = "reflect" if np.all(shape > padded_shape - shape) else "edge"
    signal = signal_mask(stack[signal_channel]) if skip_empty else None
    overlap = tile // 4 if overlap is None else np.minimum(np.asarray(overlap), tile // 2)
    window = _blend_window(tile, overlap)
    starts = [
        (z, y, x)
        for z in _tile_starts(padded_shape[0], tile[0], overlap[0])
        for y in _tile_starts(padded_shape[1], tile[1], overlap[1])
        for x in _tile_starts(padded_shape[2], tile[2], overlap[2])
    ]
    out_channels = None
    accumulated = weights = None
    use_autocast = (device == "cuda") if autocast is None else autocast
    autocast_dtype = torch.bfloat16 if device == "cpu" else torch.float16

    def flush(batch, origins):
        nonlocal out_channels, accumulated, weights
        tensor = torch.from_numpy(np.stack(batch)).to(device)
        started = time.perf_counter()
        with (
            torch.inference_mode(),
            torch.autocast(
                device_type="cuda" if device == "cuda" else "cpu",
                dtype=autocast_dtype,
                enabled=use_autocast,
            ),
        ):
            if test_time_flips:
                result = forward_flip_average(model, tensor)
            else:
                result = model(tensor).float()
            result = result.cpu().numpy()
        if timings is not None:
            timings["forward_s"] = timings.get("forward_s", 0.0) + time.perf_counter() - started
            timings["tiles"] = timings.get("tiles", 0) + len(batch)
        if accumulated is None:
            out_channels = result.shape[1]
            accumulated = np.zeros((out_channels, *padded_shape), np.float32)
            weights = np.zeros(tuple(padded_shape), np.float32)
        for prediction, (z, y, x) in zip(result, origins, strict=True):
            region = (slice(z, z + tile[0]), slice(y, y + tile[1]), slice(x, x + tile[2]))
            accumulated[(slice(None), *region)] += prediction * window
            weights[region] += window

    batch, origins = [], []
    for z, y, x in starts:
        region = (slice(z, z + tile[0]), slice(y, y + tile[1]), slice(x, x + tile[2]))
        if signal is not None and not signal[region].any():
            if timings is not None:
                timings["skipped_tiles"] = timings.get("skipped_tiles", 0) + 1
            continue
        patch = stack[(slice(None), *region)]
        missing = tile - np.asarray(patch.shape[1:])
        if np.any(missing > 0):
            patch = np.pad(patch, [(0, 0)] + [(0, int(m)) for m in missing], mode=pad_mode)
        batch.append(np.ascontiguousarray(patch, dtype=np.float32))
        origins.append((z, y, x))
        if len(batch) == batch_size:
            flush(batch, origins)
            batch, origins = [], []
    if batch:
        flush(batch, origins)
    if accumulated is None:  # every tile was empty
        n_out = int(model.final_conv.out_channels) if hasattr(model, "final_conv") else 1
        return np.full((n_out, *shape), empty_value, np.float32)
    # In place, and no boolean indexing (its index arrays would cost 24 bytes per voxel).
    # Skipped regions were never written, so their zero pages are never touched when
    # empty_value is 0: a mostly empty frame costs the memory of its processed tiles.
    covered = weights > 0
    np.divide(accumulated, weights, out=accumulated, where=covered)
    if empty_value != 0:
        np.copyto(accumulated, np.float32(empty_value), where=~covered)
    return accumulated[:, : shape[0], : shape[1], : shape[2]]


def __getattr__(name: str):
    # Old import path (napari_kinetochores.nn.inference.UNetDetector), kept for one release.
    if name in ("UNetDetector", "SINGLE_FRAME_MODEL"):
        from napari_kinetochores.backends import unet

        return getattr(unet, name)
    raise AttributeError(name)
