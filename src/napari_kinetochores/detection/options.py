"""The options of a detection run, shared by the CLI, the widgets and batch."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


FrameSelection = range | tuple[int, ...]
"""Frames to process: a range (``A:B``, never materialised) or sorted unique indices."""

MAX_LISTED_FRAMES = 8
"""Frames named in an error message; the rest are counted."""


def _listed(frames: Sequence[int]) -> str:
    """Frames for a message: at most :data:`MAX_LISTED_FRAMES` named, then a count."""
    shown = ", ".join(str(t) for t in frames[:MAX_LISTED_FRAMES])
    more = len(frames) - MAX_LISTED_FRAMES
    return shown if more <= 0 else f"{shown}, … ({more} more)"


def _quoted(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def parse_frames(text: str) -> FrameSelection:
    """Parse a frame selection: ``"3"``, ``"0:10"`` (end exclusive, ``":10"`` from 0) or ``"1,4,7"``.

    The one parser of ``--frames``. A range stays a :class:`range` (however
    long); a list comes back sorted and without repeats. Whether the frames
    exist is checked against a movie by :func:`frame_range`.

    Raises
    ------
    InputError
        Text that is not a number, a range ``A:B`` or a list ``A,B,C``; a
        negative frame; a selection of no frame (``"2:1"``, ``","``, ``""``).
        The message quotes at most 40 characters of the text.

    Examples
    --------
    >>> parse_frames("1,1,1"), parse_frames("4,0"), parse_frames("2:5")
    ((1,), (0, 4), range(2, 5))
    >>> parse_frames("2:1")
    Traceback (most recent call last):
    ...
    napari_kinetochores.errors.InputError: --frames '2:1' selects no frame
    """
    try:
        if ":" in text:
            start, stop = text.split(":")
            selection: FrameSelection = range(int(start) if start.strip() else 0, int(stop))
        else:
            selection = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise InputError(
            f"--frames {_quoted(text)} is not a frame number, a range A:B or a list A,B,C"
        ) from None
    if len(selection) == 0:
        raise InputError(f"--frames {_quoted(text)} selects no frame")
    if selection[0] < 0:
        raise InputError(f"--frames {_quoted(text)}: frames are numbered from 0 (negative given)")
    return selection


def frame_range(n_frames: int, frames: Iterable[int] | None) -> list[int]:
    """The selected frame indices, sorted and unique, checked against the movie length.

    A :class:`range` is checked by its ends, so a huge one costs nothing;
    error messages name at most :data:`MAX_LISTED_FRAMES` frames.

    Raises
    ------
    InputError
        No frame selected, or frames outside ``0..n_frames - 1``.

    Examples
    --------
    >>> frame_range(3, None)
    [0, 1, 2]
    >>> frame_range(3, [2, 0, 2])
    [0, 2]
    >>> frame_range(3, range(1, 10**9))
    Traceback (most recent call last):
    ...
    napari_kinetochores.errors.InputError: frames 3..999999999 are outside the movie (0..2)
    """
    if frames is None:
        return list(range(n_frames))
    if isinstance(frames, range):
        frames = frames if frames.step > 0 else frames[::-1]
        if len(frames) == 0:
            raise InputError("the frame selection selects no frame")
        if frames[0] >= 0 and frames[-1] < n_frames:
            return list(frames)
        bad = [t for t in (frames[0], frames[-1]) if not 0 <= t < n_frames]
        if frames.step == 1 and frames[0] >= 0:
            text = f"{max(frames[0], n_frames)}..{frames[-1]}"
        else:
            text = _listed(bad)
        raise InputError(f"frames {text} are outside the movie (0..{n_frames - 1})")
    selected = sorted({int(t) for t in frames})
    if not selected:
        raise InputError("the frame selection selects no frame")
    bad = [t for t in selected if not 0 <= t < n_frames]
    if bad:
        raise InputError(f"frames {_listed(bad)} are outside the movie (0..{n_frames - 1})")
    return selected
