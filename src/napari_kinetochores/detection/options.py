"""The options of a detection run, shared by the CLI, the widgets and batch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from napari_kinetochores.errors import InputError


@dataclass
class DetectionOptions:
    """Options of a detection run (shared by the CLI and the widgets).

    Attributes
    ----------
    method : {"unet", "classical", "stardist"}
        "stardist" needs the extra ``napari-kinetochores[stardist]``.
    channel : int
        The kinetochore channel (0 = EGFP by convention).
    threshold : float or None
        Peak threshold: a probability for the UNet, robust noise sigmas for
        the classical detector, an object probability for StarDist. None
        takes the model's (or detector's) default.
    min_distance_um : float or None
        Smallest distance between two detections, in µm. None: the default.
    model : str or None
        UNet checkpoint (or StarDist model folder): a path, or the name of a
        bundled model. None: the bundled default.
    all_channels : bool
        Also report the second marker's spots (tagged by ``channel``).
    tile_shape : (3,) tuple or None
        Inference tile (Z, Y, X) in voxels (StarDist: the largest tile, which
        sets its ``n_tiles``). None: the model's default.
    batch_size : int
    device : str or None
        "cuda", "mps" or "cpu"; None chooses automatically.
    precision : {"auto", "fp32"}
        UNet arithmetic. "auto": float16 autocast on CUDA, bfloat16 on CPUs
        with native bfloat16 (AVX512-BF16 or AMX), float32 elsewhere (the
        accuracy of both against float32 is in docs/benchmarks.md).
        "fp32": float32 everywhere.
    test_time_flips : bool
        UNet: average the network's output over the four flips in y and x
        (four forward passes per tile; accuracy and cost in
        docs/benchmarks.md).
    resample_to_model : bool
        UNet: along axes whose voxel size is more than 25 % finer than the
        model's training voxel size, resample each frame down to the model's
        voxel size, find the spots there and map them back (their sub-voxel
        centres come from the original image). Coarser axes are read as they
        are. Off by default: on held-out 0.2/0.1/0.1 µm movies of the
        independent renderer it lowered F1 (0.946 -> 0.905), although it
        raised it on the simulator's (0.978 -> 0.994); docs/models.md.
    """

    method: str = "unet"
    channel: int = 0
    threshold: float | None = None
    min_distance_um: float | None = None
    model: str | None = None
    all_channels: bool = False
    tile_shape: tuple[int, int, int] | None = None
    batch_size: int = 1
    device: str | None = None
    precision: str = "auto"
    test_time_flips: bool = False
    resample_to_model: bool = False


def frame_range(n_frames: int, frames: Iterable[int] | None) -> list[int]:
    """The selected frame indices, checked against the movie length.

    Examples
    --------
    >>> frame_range(3, None)
    [0, 1, 2]
    >>> frame_range(3, [2, 0])
    [2, 0]
    """
    if frames is None:
        return list(range(n_frames))
    selected = [int(t) for t in frames]
    bad = [t for t in selected if not 0 <= t < n_frames]
    if bad:
        raise InputError(f"frames {bad} are outside the movie (0..{n_frames - 1})")
    return selected
