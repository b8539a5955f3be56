"""Run the StarDist backend in a separate Python process, for front ends that hold Qt.

TensorFlow (which StarDist needs) and Qt with OpenGL (napari's canvas) crash
with a segmentation fault when they are loaded into one process, whichever
comes first (measured with tensorflow-cpu 2.21, napari 0.6, Mesa llvmpipe).
The napari widgets therefore run StarDist detection and training through
this module: a fresh interpreter (``multiprocessing`` "spawn" start method)
does the work with the very same library functions as the CLI, and sends
back each result as soon as it is ready, so progress, frame-by-frame results
and Cancel behave as in-process. The CLI does not need this and calls the
library directly.

Large arrays go to the child as memory-mapped ``.npy`` files in a temporary
folder, not through a pipe.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_kinetochores.errors import InputError

POLL_SECONDS = 0.2


def _write_movie(volume, frames: Sequence[int], folder: Path) -> Path:
    """The frames a single-frame detector needs, as a memory-mapped (T, C, Z, Y, X) float32 .npy."""
    path = folder / "movie.npy"
    shape = (volume.n_frames, volume.n_channels, *volume.shape[2:])
    # Frames that are not processed stay zeros: the file is sparse on disk.
    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    for t in frames:
        for c in range(volume.n_channels):
            data[t, c] = volume.frame(t, c)
    data.flush()
    del data
    return path


def _child(target: str, kwargs: dict, messages) -> None:
    """In the child: run ``module:function(emit, **kwargs)``; report its end or its error."""
    import importlib

    module_name, function_name = target.split(":")

    def emit(kind: str, payload: Any) -> None:
        messages.put((kind, payload))

    try:
        function = getattr(importlib.import_module(module_name), function_name)
        emit("result", function(emit, **kwargs))
    except InputError as error:
        emit("input_error", (error.problem, None if error.path is None else str(error.path)))
    except BaseException as error:  # reported in the parent, with its type
        emit("error", f"{type(error).__name__}: {error}")


def iter_isolated(
    target: str, kwargs: dict, cancelled: Callable[[], bool] | None = None
) -> Iterator[tuple[str, Any]]:
    """Run ``target`` in a spawned process and yield ``(kind, payload)`` as it emits them.

    Parameters
    ----------
    target : str
        ``"module:function"``; the function takes ``emit(kind, payload)``
        first, then ``kwargs``, and its return value is yielded last as
        ``("result", value)``. Payloads must be picklable.
    kwargs : dict
    cancelled : callable, optional
        Polled while waiting; when it returns True the child is terminated
        and the iteration ends (what was yielded before stays valid).

    Raises
    ------
    InputError
        As raised in the child (message and file).
    RuntimeError
        Any other error in the child, or a child that died without a word.
    """
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    process = context.Process(target=_child, args=(target, kwargs, messages), daemon=True)
    process.start()
    try:
        while True:
            if cancelled is not None and cancelled():
                return
            try:
                kind, payload = messages.get(timeout=POLL_SECONDS)
            except queue_module.Empty:
                if not process.is_alive():
                    raise RuntimeError(
                        f"the StarDist process ended unexpectedly (exit code {process.exitcode})"
                    ) from None
                continue
            if kind == "input_error":
                message, path = payload
                raise InputError(message, path)
            if kind == "error":
                raise RuntimeError(f"in the StarDist process: {payload}")
            yield kind, payload
            if kind == "result":
                return
    finally:
        if process.is_alive():
            process.terminate()
        process.join(timeout=10)
        messages.close()


# --------------------------------------------------------------------------- detection


def _detect(emit, movie_path: str, voxel_size_um, options, frames: list[int]) -> int:
    from napari_kinetochores.detection import iter_detections
    from napari_kinetochores.io.volumes import volume_from_array

    volume = volume_from_array(np.load(movie_path, mmap_mode="r"), voxel_size_um)
    count = 0
    for t, table in iter_detections(volume, options, frames):
        emit("frame", (t, table))
        count += 1
    return count


def iter_detections_isolated(
    volume,
    options,
    frames: Iterable[int] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Iterator[tuple[int, pd.DataFrame]]:
    """:func:`napari_kinetochores.detection.iter_detections` in a separate process.

    Same arguments and the same (t, table) per frame; for front ends that
    hold Qt (see the module docstring). Cancel ends the child at once.
    """
    selected = list(range(volume.n_frames)) if frames is None else [int(t) for t in frames]
    with tempfile.TemporaryDirectory(prefix="kinetochores-") as folder:
        movie = _write_movie(volume, selected, Path(folder))
        kwargs = {
            "movie_path": str(movie),
            "voxel_size_um": tuple(volume.voxel_size_um),
            "options": options,
            "frames": selected,
        }
        for kind, payload in iter_isolated(f"{__name__}:_detect", kwargs, cancelled):
            if kind == "frame":
                yield payload


# --------------------------------------------------------------------------- training


def _train(emit, config, samples_folder: str | None, n_samples: int):
    from napari_kinetochores.backends.stardist import train_stardist

    samples = None
    if samples_folder is not None:
        folder = Path(samples_folder)
        samples = [
            (
                np.load(folder / f"image{k}.npy", mmap_mode="r"),
                pd.read_pickle(folder / f"points{k}.pkl"),
                tuple(np.load(folder / f"voxel{k}.npy")),
            )
            for k in range(n_samples)
        ]
    result = train_stardist(
        config, progress=False, on_epoch=lambda row: emit("epoch", row), samples=samples
    )
    return result


def iter_train_stardist_isolated(
    config,
    samples: Sequence[tuple[np.ndarray, pd.DataFrame, Sequence[float]]] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Iterator[tuple[str, Any]]:
    """:func:`napari_kinetochores.backends.stardist.train_stardist` in a separate process.

    Yields ``("epoch", log row)`` after every epoch and ``("result",
    StarDistTrainResult)`` at the end. Cancel ends the child; the model
    folder keeps the best weights written so far.
    """
    with tempfile.TemporaryDirectory(prefix="kinetochores-") as folder:
        samples_folder = None
        if samples is not None:
            samples_folder = folder
            for k, (image, points, voxel) in enumerate(samples):
                np.save(Path(folder) / f"image{k}.npy", np.asarray(image))
                pd.DataFrame(points).to_pickle(Path(folder) / f"points{k}.pkl")
                np.save(Path(folder) / f"voxel{k}.npy", np.asarray(voxel, float))
        kwargs = {
            "config": config,
            "samples_folder": samples_folder,
            "n_samples": 0 if samples is None else len(samples),
        }
        yield from iter_isolated(f"{__name__}:_train", kwargs, cancelled)
