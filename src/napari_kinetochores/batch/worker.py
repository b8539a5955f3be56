"""Worker side of batch detection: code that runs inside Dask workers.

This module imports ``distributed`` at the top; it is imported only by
:mod:`napari_kinetochores.batch` functions (and unpickled on workers), so
``import napari_kinetochores`` never pulls Dask in.

Each worker holds one :class:`DetectorPlugin` (a ``distributed.WorkerPlugin``)
per detection set-up. The plugin loads the UNet once, on the worker's first
frame, and keeps the last movies it opened; tasks receive paths and frame
indices only, and read their frame themselves.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from distributed import WorkerPlugin, get_worker


@dataclass(frozen=True)
class MovieSpec:
    """A movie as workers open it: its path and reading options."""

    path: str
    axes: str | None = None
    voxel_size_um: tuple[float, float, float] | None = None
    dataset: str | None = None

    def open(self):
        from napari_kinetochores.io import read_volume

        return read_volume(
            self.path, axes=self.axes, voxel_size_um=self.voxel_size_um, dataset=self.dataset
        )


@dataclass(frozen=True)
class FrameJob:
    """One unit of work: one frame of one movie.

    Attributes
    ----------
    movie : MovieSpec
    t : int
        Frame index.
    plugin_name : str
        Name of the :class:`DetectorPlugin` registered on the workers.
    max_frame_voxels : int or None
        Frames with more voxels (Z × Y × X) are processed in tiles.
    core_shape : (3,) tuple
        Tile core (z, y, x); None takes the whole axis.
    part_path : str or None
        Where the frame's point table is committed (temporary file, then
        rename). None: the table is returned instead.
    map_store : str or None
        OME-Zarr store (array ``"0"``) receiving the frame's score maps.
    """

    movie: MovieSpec
    t: int
    plugin_name: str
    max_frame_voxels: int | None = None
    core_shape: tuple = (None, 512, 512)
    part_path: str | None = None
    map_store: str | None = None


@dataclass
class DetectorPlugin(WorkerPlugin):
    """Per-worker state: the detection options, the loaded model, open movies.

    Parameters
    ----------
    options : DetectionOptions
    torch_threads : int, optional
        Threads torch may use on this worker (so workers sharing a machine do
        not oversubscribe it). None leaves torch's default.
    cache_size : int
        Number of open movies kept per worker.
    """

    options: object
    torch_threads: int | None = None
    cache_size: int = 2
    n_loads: int = field(default=0, init=False)

    def setup(self, worker=None) -> None:
        self._lock = threading.Lock()
        self._detector = None
        self._volumes: OrderedDict = OrderedDict()
        self._prepared: dict = {}
        self.n_loads = 0

    def teardown(self, worker=None) -> None:
        for volume in getattr(self, "_volumes", {}).values():
            volume.close()
        self._volumes = OrderedDict()
        self._prepared = {}
        self._detector = None

    def detector(self):
        """The detector, loaded from the options on first use (once per worker)."""
        with self._lock:
            if self._detector is None:
                import sys

                from napari_kinetochores.backends import get_detector

                self._detector = get_detector(self.options)
                if self.torch_threads and "torch" in sys.modules:  # a torch backend is loaded
                    sys.modules["torch"].set_num_threads(int(self.torch_threads))
                self.n_loads += 1
            return self._detector

    def volume(self, movie: MovieSpec):
        """The movie, opened once per worker (the last ``cache_size`` are kept open)."""
        with self._lock:
            volume = self._volumes.pop(movie, None)
            if volume is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # reported once, by the probe
                    volume = movie.open()
            self._volumes[movie] = volume
            while len(self._volumes) > self.cache_size:
                old_movie, old = self._volumes.popitem(last=False)
                self._prepared.pop(old_movie, None)
                old.close()
            return volume

    def prepared(self, movie: MovieSpec):
        """(movie as detectors read it, detector chosen and checked for it), once per movie.

        The model-choice rules (temporal continuity, short movies) and input
        checks of :func:`~napari_kinetochores.detection.pipeline.prepare_detector`
        read parts of the movie; they run on a worker's first frame of a movie,
        not on every frame, and the sensor-defect maps of its frames are kept.
        """
        from napari_kinetochores.detection.pipeline import corrected, prepare_detector

        volume = self.volume(movie)
        with self._lock:
            entry = self._prepared.get(movie)
        if entry is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # reported once, by the probe
                read = corrected(volume)
                entry = (read, prepare_detector(read, self.options, self.detector()))
            with self._lock:
                self._prepared[movie] = entry
        return entry


def _plugin(name: str) -> DetectorPlugin:
    worker = get_worker()
    try:
        return worker.plugins[name]
    except KeyError:
        raise RuntimeError(
            f"worker {worker.address} has no plugin {name!r}; was it registered?"
        ) from None


def probe_movie(movie: MovieSpec, plugin_name: str, frames=None) -> dict:
    """Open a movie on a worker and describe it; errors are returned, not raised.

    ``frames`` (a range or frame indices; None: all) are checked against the
    movie by :func:`~napari_kinetochores.detection.frame_range`.

    Returns
    -------
    dict
        ``ok``; then ``shape`` (T, C, Z, Y, X), ``voxel_size_um``,
        ``voxel_size_source``, ``dtype``, ``frames`` (selected), ``warnings``;
        or ``error`` (a message naming the file).
    """
    import dask

    from napari_kinetochores.detection import frame_range, prepare_detector
    from napari_kinetochores.errors import InputError

    plugin = _plugin(plugin_name)
    options = plugin.options
    with warnings.catch_warnings(record=True) as caught, dask.config.set(scheduler="synchronous"):
        warnings.simplefilter("always")
        try:
            volume = movie.open()
            try:
                selected = frame_range(volume.n_frames, frames)
                prepare_detector(volume, options, plugin.detector())
                info = {
                    "ok": True,
                    "shape": list(volume.shape),
                    "voxel_size_um": [float(v) for v in volume.voxel_size_um],
                    "voxel_size_source": volume.voxel_size_source,
                    "dtype": str(volume.dtype),
                    "frames": selected,
                }
            finally:
                volume.close()
        except Exception as error:  # a movie that cannot be read must not stop the batch
            message = (
                str(error) if isinstance(error, InputError) else f"{type(error).__name__}: {error}"
            )
            if movie.path not in message:
                message = f"{movie.path}: {message}"
            return {"ok": False, "error": message}
    info["warnings"] = sorted({str(w.message) for w in caught})
    return info


def _map_writer(store: str, t: int):
    """A :data:`~napari_kinetochores.detection.tiling.MapWriter` into array ``"0"`` of an OME-Zarr store.

    zarr writes every chunk to a temporary file and renames it, so a worker
    killed mid-frame leaves whole (old or new) chunks, never torn ones.
    """
    import zarr

    array = zarr.open_array(str(Path(store) / "0"), mode="r+")

    def write(region, block, first_channel=0):
        channels = slice(first_channel, first_channel + block.shape[0])
        array[(t, channels, *region)] = np.asarray(block, dtype=array.dtype)

    return write


def frame_table(job: FrameJob, plugin: DetectorPlugin):
    """Detections of one frame (the point table ``kinetochores detect`` makes for it).

    The frame goes through :func:`~napari_kinetochores.detection.pipeline.detect_frame`,
    the step of the one frame loop, with the worker's detector; frames above
    ``job.max_frame_voxels`` are tiled there. Score maps reach the OME-Zarr
    store through the loop's ``on_prediction`` callback (or tile by tile).
    Returns (table, tiled).
    """
    from napari_kinetochores.detection.pipeline import detect_frame

    volume, detector = plugin.prepared(job.movie)
    writer = None if job.map_store is None else _map_writer(job.map_store, job.t)
    on_prediction = None
    if writer is not None:

        def on_prediction(t, score_map):
            writer((slice(None),) * 3, score_map, 0)

    return detect_frame(
        volume,
        job.t,
        plugin.options,
        detector,
        on_prediction,
        job.max_frame_voxels,
        job.core_shape,
        writer,
    )


def run_frame(job: FrameJob) -> dict:
    """Detect one frame on a worker and commit its part file (or return its table).

    Returns
    -------
    dict
        ``t``, ``n_detections``, ``seconds``, ``tiled``, ``worker`` (pid),
        ``model_loads`` (times this worker loaded the model: 1 for the UNet),
        and ``table`` when ``job.part_path`` is None.
    """
    import dask

    from napari_kinetochores.io import write_points

    plugin = _plugin(job.plugin_name)
    started = time.perf_counter()
    with warnings.catch_warnings(), dask.config.set(scheduler="synchronous"):
        warnings.simplefilter("ignore")  # the probe reported the movie's warnings once
        table, tiled = frame_table(job, plugin)
        result = {
            "t": job.t,
            "n_detections": int(len(table)),
            "tiled": tiled,
            "worker": os.getpid(),
            "model_loads": plugin.n_loads,
        }
        if job.part_path is None:
            result["table"] = table
        else:
            part = Path(job.part_path)
            write_points(part, table, plugin.volume(job.movie).voxel_size_um)  # temp + rename
    result["seconds"] = time.perf_counter() - started
    return result
