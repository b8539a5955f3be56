"""Detection over a movie, frame by frame: the one pipeline behind the CLI and the widgets.

:func:`iter_detections` yields one point table per frame so a front end can
show results as they arrive and cancel between frames; :func:`detect_movie`
collects them with a tqdm progress bar. Both the ``kinetochores detect``
command and the napari Detect widget call these, so they give identical
results.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from napari_kinetochores.errors import InputError
from napari_kinetochores.io.points import points_frame

METHODS = ("unet", "classical", "stardist")


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


def _frame_range(n_frames: int, frames: Iterable[int] | None) -> list[int]:
    if frames is None:
        return list(range(n_frames))
    selected = [int(t) for t in frames]
    bad = [t for t in selected if not 0 <= t < n_frames]
    if bad:
        raise InputError(f"frames {bad} are outside the movie (0..{n_frames - 1})")
    return selected


def iter_detections(
    volume,
    options: DetectionOptions,
    frames: Iterable[int] | None = None,
    cancelled: Callable[[], bool] | None = None,
    on_prediction: Callable[[int, np.ndarray], None] | None = None,
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Detect kinetochores frame by frame.

    Parameters
    ----------
    volume : napari_kinetochores.io.Volume
        The movie (TCZYX) with its voxel size. Lazy data is read one frame
        (plus the temporal neighbours a model needs) at a time.
    options : DetectionOptions
    frames : iterable of int, optional
        Time points to process (default: all).
    cancelled : callable, optional
        Polled between frames; when it returns True the iteration stops and
        the frames already yielded stay valid.
    on_prediction : callable, optional
        UNet only: called as ``on_prediction(t, prediction)`` with the
        network's output of frame ``t``, (C_out, Z, Y, X) float32
        (probabilities, or distances for a distance model), before its peaks
        are yielded. Lets a front end show the probability map.

    Yields
    ------
    (t, table) : int and pandas.DataFrame
        The detections of frame ``t`` in the point schema (t, z, y, x, z_um,
        y_um, x_um, channel, score, status="auto").
    """
    if options.method not in METHODS:
        raise InputError(f"unknown method {options.method!r}; choose one of {METHODS}")
    n_frames, n_channels = volume.n_frames, volume.n_channels
    if not 0 <= options.channel < n_channels:
        raise InputError(
            f"channel {options.channel} does not exist; the movie has {n_channels} channel(s)",
            volume.path,
        )
    voxel_size_um = tuple(volume.voxel_size_um)
    selected = _frame_range(n_frames, frames)
    if options.method in ("unet", "stardist"):
        if options.method == "unet":
            from napari_kinetochores.nn.inference import UNetDetector

            detector = UNetDetector.from_options(options).for_volume(volume)
        else:
            from napari_kinetochores.stardist_backend import StarDistDetector

            detector = StarDistDetector.load(options.model, tile_shape=options.tile_shape)
        detector.check_input(volume, options.channel)
        for t in selected:
            if cancelled is not None and cancelled():
                return
            computed = {}
            if on_prediction is not None and options.method == "unet":
                computed["prediction"] = detector.predict_frame(volume, t, options.channel)
                on_prediction(t, computed["prediction"])
            found = detector.detect_frame(
                volume,
                t,
                options.channel,
                threshold=options.threshold,
                min_distance_um=options.min_distance_um,
                all_channels=options.all_channels,
                **computed,
            )
            yield t, _table(t, found, voxel_size_um)
        return

    channels = [options.channel]
    if options.all_channels:
        channels += [c for c in range(n_channels) if c != options.channel]
    from napari_kinetochores.classical import DEFAULT_MIN_DISTANCE_UM, detect_spots_classical

    min_distance = (
        DEFAULT_MIN_DISTANCE_UM if options.min_distance_um is None else options.min_distance_um
    )
    for t in selected:
        if cancelled is not None and cancelled():
            return
        found = []
        for channel in channels:
            coords, scores = detect_spots_classical(
                volume.frame(t, channel),
                voxel_size_um,
                threshold=options.threshold,
                min_distance_um=min_distance,
            )
            found.append((channel, coords, scores))
        yield t, _table(t, found, voxel_size_um)


def _table(
    t: int, found: Sequence[tuple[int, np.ndarray, np.ndarray]], voxel_size_um
) -> pd.DataFrame:
    """Assemble the point table of one frame from (channel, coords, scores) triples."""
    parts = []
    if not found:
        found = [(0, np.zeros((0, 3)), np.zeros(0))]
    for channel, coords, scores in found:
        coords = np.asarray(coords, float).reshape(-1, 3)
        tzyx = np.column_stack([np.full(len(coords), float(t)), coords])
        parts.append(
            points_frame(
                tzyx,
                voxel_size_um,
                channel=np.full(len(coords), channel, int),
                score=np.asarray(scores, float),
                status=np.full(len(coords), "auto", object),
            )
        )
    return pd.concat(parts, ignore_index=True)


def detect_movie(
    volume,
    options: DetectionOptions,
    frames: Iterable[int] | None = None,
    progress: bool = True,
    on_prediction: Callable[[int, np.ndarray], None] | None = None,
) -> pd.DataFrame:
    """Detect kinetochores in a whole movie (or selected frames) with a progress bar.

    Returns one point table (see :func:`iter_detections`, which also
    describes ``on_prediction``) for all frames.
    """
    from tqdm.auto import tqdm

    selected = _frame_range(volume.n_frames, frames)
    tables = []
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        for _, table in tqdm(
            iter_detections(volume, options, selected, on_prediction=on_prediction),
            total=len(selected),
            desc="detect",
            unit="frame",
            disable=not progress,
        ):
            tables.append(table)
    if not tables:
        return _table(0, [], volume.voxel_size_um)
    return pd.concat(tables, ignore_index=True)
