"""Detection over a movie, frame by frame: the one loop behind the CLI, the widgets and batch.

:func:`iter_detections` yields one point table per frame so a front end can
show results as they arrive and cancel between frames; :func:`detect_movie`
collects them with a tqdm progress bar; :func:`detect_frame` is the step both
take for one frame, and what batch workers call (with their cached detector,
tiling large frames). The detector comes from the registry
(:func:`napari_kinetochores.backends.get_detector`), which holds the
model-choice rules, so every front end gets the same detections.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from napari_kinetochores.backends import check_method, get_detector
from napari_kinetochores.backends.base import check_channel, where
from napari_kinetochores.detection.options import DetectionOptions, frame_range
from napari_kinetochores.io.points import points_frame

WHOLE_FRAME = (None, None, None)


def points_table(
    t: int, found: Sequence[tuple[int, np.ndarray, np.ndarray]], voxel_size_um
) -> pd.DataFrame:
    """The point table of one frame from (channel, coords, scores) triples.

    Parameters
    ----------
    t : int
        Frame index.
    found : sequence of (int, (N, 3) array, (N,) array)
        Movie channel, coordinates (z, y, x) in voxels and scores, per channel.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.

    Returns
    -------
    pandas.DataFrame
        Columns t, z, y, x, z_um, y_um, x_um, channel, score, status ("auto").

    Examples
    --------
    >>> table = points_table(2, [(0, np.array([[1.0, 2.0, 3.0]]), np.array([0.9]))], (0.3, 0.13, 0.13))
    >>> table[["t", "z", "z_um", "channel", "status"]].values.tolist()
    [[2.0, 1.0, 0.3, 0, 'auto']]
    """
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


def prepare_detector(volume, options: DetectionOptions, detector=None, first_frame: int = 0):
    """The detector to run on ``volume``: loaded (unless given), chosen and checked for it.

    Applies the model-choice rules (e.g. the bundled default hands a movie
    shorter than its temporal window, or whose frames are not continuous, to
    the single-frame model, with a warning), fails early, naming the file, on
    a movie it cannot read, and warns when the data look preprocessed
    (background subtracted and clipped, quantised).
    """
    from napari_kinetochores.core.preprocess import central_sample, describe_preprocessing

    check_method(options.method)
    check_channel(volume, options.channel)
    if detector is None:
        detector = get_detector(options)
    detector = detector.for_volume(volume, options.channel)
    detector.check_input(volume, options.channel)
    note = describe_preprocessing(central_sample(volume, first_frame, options.channel))
    if note is not None:
        warnings.warn(
            f"{where(volume)}the data look preprocessed: {note}. Noise and background are "
            "measured above the floor; raw camera data detect best",
            stacklevel=2,
        )
    return detector


def corrected(volume):
    """The movie as detectors read it: frames checked for NaN, sensor defects removed.

    See :class:`napari_kinetochores.core.preprocess.CorrectedVolume`; frames
    without defects are read unchanged. Frames read in tiles are not corrected
    (and are checked by :func:`~napari_kinetochores.detection.tiling.read_region`).
    """
    from napari_kinetochores.core.preprocess import CorrectedVolume

    return volume if isinstance(volume, CorrectedVolume) else CorrectedVolume(volume)


def detect_frame(
    volume,
    t: int,
    options: DetectionOptions,
    detector,
    on_prediction: Callable[[int, np.ndarray], None] | None = None,
    max_frame_voxels: int | None = None,
    core_shape: Sequence[int | None] = WHOLE_FRAME,
    map_writer=None,
) -> tuple[pd.DataFrame, bool]:
    """Detections of one frame with a prepared detector (see :func:`prepare_detector`).

    Frames of more than ``max_frame_voxels`` voxels are read in tiles of
    ``core_shape`` (:mod:`napari_kinetochores.detection.tiling`) when the
    backend can; the score maps then go to ``map_writer`` tile by tile
    instead of to ``on_prediction``.

    Returns
    -------
    (table, tiled) : pandas.DataFrame and bool
        The frame's point table (see :func:`points_table`) and whether the
        frame was tiled.
    """
    volume = corrected(volume)
    n_voxels = int(np.prod(volume.shape[2:]))
    if detector.tileable and max_frame_voxels and n_voxels > max_frame_voxels:
        found = detector.detect_tiled(volume, t, options, core_shape, map_writer)
        return points_table(t, found, tuple(volume.voxel_size_um)), True
    found = detector.detect(volume, t, options, on_prediction)
    return points_table(t, found, tuple(volume.voxel_size_um)), False


def iter_detections(
    volume,
    options: DetectionOptions,
    frames: Iterable[int] | None = None,
    cancelled: Callable[[], bool] | None = None,
    on_prediction: Callable[[int, np.ndarray], None] | None = None,
    detector=None,
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
        Called as ``on_prediction(t, score_map)`` with the detector's score
        map of frame ``t``, (C, Z, Y, X) float32, before its peaks are
        yielded: the network output for the UNet (probabilities, or distances
        for a distance model), DoG response over noise sigma per reported
        channel for the classical detector; StarDist hands out none. Lets a
        front end show the probability map.
    detector : optional
        An already loaded detector for ``options.method`` (default: loaded
        from ``options`` by the registry).

    Yields
    ------
    (t, table) : int and pandas.DataFrame
        The detections of frame ``t`` in the point schema (t, z, y, x, z_um,
        y_um, x_um, channel, score, status="auto").

    Examples
    --------
    >>> from napari_kinetochores.io import volume_from_array
    >>> volume = volume_from_array(np.zeros((2, 1, 8, 32, 32), np.float32), (0.3, 0.13, 0.13))
    >>> [(t, len(table)) for t, table in iter_detections(volume, DetectionOptions(method="classical"))]
    [(0, 0), (1, 0)]
    """
    selected = frame_range(volume.n_frames, frames)
    volume = corrected(volume)
    detector = prepare_detector(volume, options, detector, selected[0] if selected else 0)
    for t in selected:
        if cancelled is not None and cancelled():
            return
        table, _ = detect_frame(volume, t, options, detector, on_prediction)
        yield t, table


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

    selected = frame_range(volume.n_frames, frames)
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
        return points_table(0, [], volume.voxel_size_um)
    return pd.concat(tables, ignore_index=True)
