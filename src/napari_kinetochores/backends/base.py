"""What every detection backend provides, and the checks they share.

A backend is a class with the methods of :class:`Detector`; the registry in
:mod:`napari_kinetochores.backends` picks it by the method's name, and the one
frame loop (:mod:`napari_kinetochores.detection.pipeline`) drives it. A
backend never sees napari, the CLI or Dask.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from napari_kinetochores.errors import InputError

Found = list[tuple[int, np.ndarray, np.ndarray]]
"""Detections of one frame: (movie channel, coords (N, 3) voxels (z, y, x), scores (N,)),
the kinetochore channel first."""

PredictionCallback = Callable[[int, np.ndarray], None]
"""``on_prediction(t, score_map)`` with a (C_map, Z, Y, X) float32 map of frame ``t``."""

VOXEL_SIZE_TOLERANCE = 0.25
"""Relative difference from a model's voxel size above which the user is warned."""


class Detector(Protocol):
    """The interface of a detection backend (classical, unet, stardist).

    ``from_options`` loads the backend once; ``for_volume`` applies the
    model-choice rules for one movie (it may return another detector, e.g.
    the single-frame model for a one-frame movie) and warns about what the
    user should know; ``check_input`` fails early, naming the file, when the
    movie cannot feed it; ``detect`` detects one frame. Backends that can
    read a frame in tiles set ``tileable`` and implement ``detect_tiled``;
    those that hand out score maps set ``score_maps`` and implement
    ``map_channels``.
    """

    method: str
    tileable: bool
    score_maps: bool
    libraries: tuple[str, ...]

    @classmethod
    def model_file(cls, options): ...

    @classmethod
    def from_options(cls, options) -> Detector: ...

    def for_volume(self, volume, channel: int = 0) -> Detector: ...

    def check_input(self, volume, channel: int = 0) -> None: ...

    def detect(
        self, volume, t: int, options, on_prediction: PredictionCallback | None = None
    ) -> Found: ...

    def detect_tiled(self, volume, t: int, options, core_shape, map_writer=None) -> Found: ...

    def map_channels(self, n_channels: int, options) -> tuple[list[int], str]: ...


def check_channel(volume, channel: int) -> None:
    """Fail, naming the file, when ``channel`` is not a channel of the movie."""
    if not 0 <= channel < volume.n_channels:
        raise InputError(
            f"channel {channel} does not exist; the movie has {volume.n_channels} channel(s)",
            volume.path,
        )


def reported_channels(channel: int, n_channels: int, all_channels: bool) -> list[int]:
    """Movie channels whose spots are reported: the kinetochore channel first.

    Examples
    --------
    >>> reported_channels(1, 3, all_channels=True)
    [1, 0, 2]
    >>> reported_channels(1, 3, all_channels=False)
    [1]
    """
    channels = [channel]
    if all_channels:
        channels += [c for c in range(n_channels) if c != channel]
    return channels


def where(volume) -> str:
    """``"<file>: "`` to start a message about ``volume``; empty for an in-memory movie.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> where(SimpleNamespace(path="cell.tif")), where(SimpleNamespace(path=None))
    ('cell.tif: ', '')
    """
    path = getattr(volume, "path", None)
    return "" if path is None else f"{path}: "


def check_voxel_size(
    volume,
    model_voxel_size_um: Sequence[float],
    what: str,
    read_voxel_size_um: Sequence[float] | None = None,
) -> None:
    """Warn when the movie's voxel size is far from the one ``what`` was made for.

    ``read_voxel_size_um``: the voxel size the detector reads, when it
    resamples the movie first (default: the movie's own).
    """
    trained = np.asarray(model_voxel_size_um, float)
    given = np.asarray(
        volume.voxel_size_um if read_voxel_size_um is None else read_voxel_size_um, float
    )
    ratio = given / trained
    if np.any(np.abs(ratio - 1) > VOXEL_SIZE_TOLERANCE):
        factors = ", ".join(f"{r:.2f}" for r in ratio)
        warnings.warn(
            f"{where(volume)}voxel size {tuple(float(v) for v in given)} µm is far from the "
            f"{what} {tuple(float(v) for v in trained)} µm; rescale the movie by ({factors}) "
            "along (z, y, x) "
            "for best results",
            stacklevel=3,
        )
