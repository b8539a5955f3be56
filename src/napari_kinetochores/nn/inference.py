"""Tiled UNet inference and the UNet detector used by ``kinetochores detect --method unet``."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.nn.checkpoint import LoadedModel, bundled_model_path, load_checkpoint
from napari_kinetochores.nn.data import stack_input
from napari_kinetochores.peaks import find_peaks

# A tile whose normalised input never rises above this is treated as empty.
EMPTY_TILE_LEVEL = 0.2
VOXEL_SIZE_TOLERANCE = 0.25


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


def predict_volume(
    model,
    stack: np.ndarray,
    tile_shape: Sequence[int] = (32, 128, 128),
    overlap: Sequence[int] | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    skip_empty: bool = True,
    empty_value: float = 0.0,
    autocast: bool | None = None,
    divisor: Sequence[int] = (1, 1, 1),
    timings: dict | None = None,
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
        Skip tiles whose input stays below :data:`EMPTY_TILE_LEVEL` (no
        signal); they get ``empty_value``.
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
    padded_shape = np.maximum(shape, tile)
    if np.any(padded_shape > shape):
        pad = [(0, 0)] + [(0, int(p)) for p in padded_shape - shape]
        stack = np.pad(stack, pad, mode="reflect" if np.all(shape > padded_shape - shape) else "edge")
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
        with torch.inference_mode(), torch.autocast(
            device_type="cuda" if device == "cuda" else "cpu", dtype=autocast_dtype, enabled=use_autocast
        ):
            result = model(tensor).float().cpu().numpy()
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
        region = (slice(None), slice(z, z + tile[0]), slice(y, y + tile[1]), slice(x, x + tile[2]))
        patch = stack[region]
        if skip_empty and float(patch.max()) < EMPTY_TILE_LEVEL:
            if timings is not None:
                timings["skipped_tiles"] = timings.get("skipped_tiles", 0) + 1
            continue
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
    covered = weights > 0
    np.divide(accumulated, weights, out=accumulated, where=covered)  # in place: memory stays bounded
    accumulated[:, ~covered] = empty_value
    return accumulated[:, : shape[0], : shape[1], : shape[2]]


class UNetDetector:
    """A loaded UNet with its defaults, ready to detect kinetochores frame by frame."""

    def __init__(
        self,
        loaded: LoadedModel,
        device: str,
        tile_shape: Sequence[int] | None = None,
        batch_size: int = 1,
    ) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.config = loaded.config
        self.info = loaded.info
        self.device = device
        self.tile_shape = tuple(tile_shape) if tile_shape is not None else tuple(self.info.tile_shape)
        self.batch_size = int(batch_size)

    @classmethod
    def load(
        cls,
        model: str | None = None,
        device: str | None = None,
        tile_shape: Sequence[int] | None = None,
        batch_size: int = 1,
    ) -> UNetDetector:
        """Load a checkpoint by path or bundled name (None: the bundled default)."""
        path = bundled_model_path(model)
        chosen = choose_device(device)
        return cls(load_checkpoint(path, device=chosen), chosen, tile_shape, batch_size)

    def check_input(self, volume, channel: int = 0) -> None:
        """Fail early, naming the file, when the movie cannot feed this model."""
        needed = self.input_channels(channel)
        if max(needed) >= volume.n_channels:
            raise InputError(
                f"model {self.loaded.path.name} reads channels {needed} but the movie has "
                f"{volume.n_channels} channel(s)",
                volume.path,
            )
        trained = np.asarray(self.info.voxel_size_um, float)
        given = np.asarray(volume.voxel_size_um, float)
        ratio = given / trained
        if np.any(np.abs(ratio - 1) > VOXEL_SIZE_TOLERANCE):
            factors = ", ".join(f"{r:.2f}" for r in ratio)
            warnings.warn(
                f"{volume.path}: voxel size {tuple(given)} µm is far from the model's training voxel "
                f"size {tuple(trained)} µm; rescale the movie by ({factors}) along (z, y, x) "
                "for best results",
                stacklevel=2,
            )

    def input_channels(self, channel: int = 0) -> list[int]:
        """Movie channels the model reads, with the kinetochore channel first."""
        channels = list(self.config.image_channels)
        if channel != 0 and channels[0] == 0:
            channels = [channel] + [c for c in channels if c != channel]
        return channels

    def predict_frame(self, volume, t: int, channel: int = 0) -> np.ndarray:
        """Probability (or distance) volume of frame ``t``: (C_out, Z, Y, X) float32."""
        stack = stack_input(
            volume.frame, t, volume.n_frames, self.input_channels(channel),
            self.config.temporal_window, self.info.percentiles,
        )
        distance = self.config.target == "distance"
        return self._predict_with_retry(stack, 1.0 if distance else 0.0)

    def _predict_with_retry(self, stack: np.ndarray, empty_value: float) -> np.ndarray:
        import torch

        tile = np.asarray(self.tile_shape)
        while True:
            try:
                return predict_volume(
                    self.model, stack, tile, batch_size=self.batch_size, device=self.device,
                    empty_value=empty_value, divisor=self.config.divisor,
                )
            except torch.OutOfMemoryError:
                if self.device != "cuda" or np.all(tile <= np.asarray(self.config.divisor) * 2):
                    raise
                torch.cuda.empty_cache()
                tile = np.maximum(tile // np.array([1, 2, 2]), np.asarray(self.config.divisor))
                warnings.warn(
                    f"CUDA out of memory; retrying with smaller tiles {tuple(int(v) for v in tile)}",
                    stacklevel=2,
                )

    def peaks_from_prediction(
        self,
        prediction: np.ndarray,
        voxel_size_um: Sequence[float],
        threshold: float | None = None,
        min_distance_um: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sub-voxel peaks of one output channel (Z, Y, X); scores in [0, 1], higher is surer."""
        threshold = self.info.threshold if threshold is None else float(threshold)
        min_distance = self.info.min_distance_um if min_distance_um is None else float(min_distance_um)
        if self.config.target == "distance":
            coords, values = find_peaks(
                prediction, voxel_size_um, min_distance, threshold_abs=threshold, mode="min",
                refine="quadratic",
            )
            return coords, 1.0 - values
        return find_peaks(
            prediction, voxel_size_um, min_distance, threshold_abs=threshold, refine="gaussian"
        )

    def detect_frame(
        self,
        volume,
        t: int,
        channel: int = 0,
        threshold: float | None = None,
        min_distance_um: float | None = None,
        all_channels: bool = False,
        prediction: np.ndarray | None = None,
    ) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Detections of frame ``t``: a list of (movie channel, coords (N, 3) voxels, scores).

        ``prediction`` is the output of :meth:`predict_frame` for this frame
        when the caller already has it (it is then not computed again).
        """
        if prediction is None:
            prediction = self.predict_frame(volume, t, channel)
        found = []
        for index, detected in enumerate(self.config.detected_channels):
            movie_channel = channel if detected == 0 else detected
            if movie_channel != channel and not all_channels:
                continue
            coords, scores = self.peaks_from_prediction(
                prediction[index], volume.voxel_size_um, threshold, min_distance_um
            )
            found.append((movie_channel, coords, scores))
        return found
