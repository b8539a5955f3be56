"""Batch detection over many movies on Dask distributed.

The unit of work is one (movie, frame). The client (``kinetochores batch``, or
:func:`run_batch`) expands the inputs, asks the workers to open each movie
(:func:`~napari_kinetochores.batch.worker.probe_movie`), and submits one task
per frame. Only paths and frame indices go through the scheduler: every worker
opens the movie itself and reads just its frame (lazily for zarr and HDF5).
Each worker loads the model once, through a ``distributed.WorkerPlugin``.

Outputs in ``OUTDIR``, per movie ``<stem>`` (the file name without
``.ome.tif``, ``.zarr``, …):

* ``<stem>.csv``: the point table, with exactly the rows that
  ``kinetochores detect`` writes for the movie with the same options;
* ``<stem>.probabilities.ome.zarr`` (with ``--save-probabilities``): the
  network output (UNet) or the score map in noise sigmas (classical),
  TCZYX float32, chunked per frame (and 512 × 512 in y, x), each frame
  written by the worker that processed it;
* ``.parts/<stem>-<key>/t000000.csv``…: the committed per-frame tables, from
  which ``<stem>.csv`` is assembled and ``--resume`` knows what is done;

and ``manifest.json``: inputs, model hash, parameters, versions, and the status
of every movie and frame.

What ``--resume`` reuses: a frame's part file only when its folder's ``<key>``
matches, a hash of the input's identity and of the detection parameters
(options, model hash, reading and tiling options; :func:`parts_key`). The
identity of a movie file is its resolved path, size and modification time in
nanoseconds; of a folder (zarr) the same for every file in it
(:func:`input_identity`). A content hash would read every byte of movies of
tens of GB before any work; a changed file changes its size or time, so it is
recomputed, and a movie of the same name in another folder never reuses
another's parts. The key is in the folder name, so parts are checked even
when the manifest is gone. A probability store is reused only with the same key.

Outputs are never read as movies: folders and patterns skip
``*.probabilities.ome.zarr`` stores, and naming one of this output folder's
outputs as an input is an error, so an output folder inside (or equal to)
the input folder is safe to run into again.

Fault tolerance: every file is written to a temporary name and renamed (zarr
chunks too), and a frame's part file is committed last, so a worker killed
mid-task leaves no torn output and ``--resume`` redoes just the frames without
a part file. A movie that cannot be read is reported in the manifest and the
batch goes on. Dask and distributed are imported inside the functions.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from napari_kinetochores.backends import detector_class, get_detector
from napari_kinetochores.detection import DetectionOptions, points_table
from napari_kinetochores.detection.tiling import DEFAULT_CORE_YX
from napari_kinetochores.errors import InputError

DEFAULT_MAX_FRAME_VOXELS = 64_000_000
"""Frames with more voxels than this (Z × Y × X) are processed in tiles."""

MOVIE_SUFFIXES = (
    ".ome.tiff",
    ".ome.tif",
    ".ome.zarr",
    ".tiff",
    ".tif",
    ".zarr",
    ".hdf5",
    ".h5",
    ".hdf",
    ".npy",
)
MANIFEST_NAME = "manifest.json"
PARTS_DIR = ".parts"
MAP_SUFFIX = ".probabilities.ome.zarr"
"""Suffix of the score-map stores batch writes (never read back as movies)."""
PLUGIN_PREFIX = "napari-kinetochores-detector"


# --------------------------------------------------------------------------- inputs


def movie_stem(path: str | Path) -> str:
    """Output stem of a movie: its name without the image suffix.

    >>> movie_stem("cells/cell01.ome.tif"), movie_stem("a/b.zarr"), movie_stem("m.h5")
    ('cell01', 'b', 'm')
    """
    name = Path(path).name
    for suffix in MOVIE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def _is_movie(path: Path) -> bool:
    name = path.name.lower()
    if name.startswith(".") or name.endswith(MAP_SUFFIX):
        return False
    if path.is_dir():
        return name.endswith(".zarr") or any(
            (path / m).exists() for m in (".zarray", ".zgroup", "zarr.json")
        )
    return name.endswith(MOVIE_SUFFIXES)


def _is_output_of(path: Path, output_dir: Path | None) -> bool:
    """Whether ``path`` is something batch writes into ``output_dir``."""
    if output_dir is None:
        return False
    resolved, out = path.resolve(), output_dir.resolve()
    in_parts = out / PARTS_DIR in resolved.parents
    return in_parts or (resolved.parent == out and resolved.name.lower().endswith(MAP_SUFFIX))


def expand_inputs(inputs: Iterable[str | Path], output_dir: str | Path | None = None) -> list[Path]:
    """Expand files, folders and glob patterns into a list of movies.

    A folder that is a zarr store is one movie; any other folder contributes
    the movies directly inside it (``.tif``, ``.tiff``, ``.zarr``, ``.h5``,
    ``.hdf5``, ``.npy``), sorted by name. Patterns (``*``, ``?``, ``[``,
    ``**``) are expanded with :mod:`glob`. Duplicates are dropped, order is
    kept. Folders and patterns skip score-map stores (``*.probabilities.ome.zarr``).

    Parameters
    ----------
    inputs
        Movie files, folders and glob patterns.
    output_dir
        The batch's output folder: its outputs are never inputs.

    Raises
    ------
    InputError
        An input that does not exist or matches nothing, no movie at all, two
        movies with the same output stem, or an output of ``output_dir``.
    """
    output_dir = None if output_dir is None else Path(output_dir)
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            movies = [m for m in matches if _is_movie(m)]
            if not movies:
                raise InputError(f"the pattern {text!r} matches no movie")
            found += movies
            continue
        path = Path(text)
        if not path.exists():
            raise InputError("file not found", path)
        if _is_output_of(path, output_dir):
            raise InputError(
                f"this is an output of this batch (in {output_dir}), not a movie", path
            )
        if path.is_dir() and not _is_movie(path):
            movies = sorted(p for p in path.iterdir() if _is_movie(p))
            if not movies:
                raise InputError("the folder holds no movie (.tif, .zarr, .h5, .npy)", path)
            found += movies
        else:
            found.append(path)
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(os.path.abspath(path), path)
    movies = list(unique.values())
    if not movies:
        raise InputError("no input movie given")
    stems: dict[str, Path] = {}
    for path in movies:
        other = stems.setdefault(movie_stem(path), path)
        if other is not path:
            raise InputError(
                f"{other} and {path} would both write {movie_stem(path)}.csv; "
                "run them into different output folders"
            )
    return movies


# --------------------------------------------------------------------------- helpers


def _write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (:func:`~napari_kinetochores.io.atomic.atomic_output`)."""
    from napari_kinetochores.io.atomic import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1, allow_nan=False))


def input_identity(path: str | Path) -> dict:
    """What identifies a movie for ``--resume``: resolved path, size and mtime (ns).

    A folder (zarr store) counts the size and time of every file in it,
    summarised as one SHA-256 over their relative names, sizes and times.

    Examples
    --------
    >>> import tempfile
    >>> movie = Path(tempfile.mkdtemp()) / "m.npy"
    >>> _ = movie.write_bytes(b"0123")
    >>> sorted(input_identity(movie)), input_identity(movie)["size"]
    (['mtime_ns', 'path', 'size'], 4)
    """
    path = Path(path).resolve()
    if not path.is_dir():
        stat = path.stat()
        return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    digest = hashlib.sha256()
    n_files, size = 0, 0
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(folder, name))
            rel = os.path.relpath(os.path.join(folder, name), path)
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            n_files, size = n_files + 1, size + stat.st_size
    return {"path": str(path), "files": n_files, "size": size, "files_sha256": digest.hexdigest()}


def parts_key(identity: dict, detection_parameters: dict) -> str:
    """Key (16 hex digits) of a movie's part files: its identity and the detection parameters.

    Examples
    --------
    >>> parts_key({"path": "/a/cell.tif", "size": 1, "mtime_ns": 2}, {"threshold": None})
    'a0ceb4003e4fefd4'
    """
    payload = {"input": identity, "parameters": detection_parameters}
    text = json.dumps(payload, sort_keys=True, default=str)  # a tuple reads as a list
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _frames_parameter(frames) -> str | list[int] | None:
    """The frame selection as JSON: ``"A:B"`` for a range (never listed), else sorted frames."""
    if frames is None:
        return None
    if isinstance(frames, range) and frames.step == 1:
        return f"{frames.start}:{frames.stop}"
    return sorted({int(t) for t in frames})


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions(method: str = "classical") -> dict[str, str]:
    # the backend's own libraries (torch for the UNet, ...) join the common ones
    """Versions of Python, this package and the libraries that shape the results."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    names = [
        "napari-kinetochores",
        "numpy",
        "scipy",
        "pandas",
        "dask",
        "distributed",
        "zarr",
        "tifffile",
        "h5py",
    ]
    names += list(detector_class(method).libraries)
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _parts_dir(output_dir: Path, stem: str, key: str) -> Path:
    return output_dir / PARTS_DIR / f"{stem}-{key}"


def _part_path(parts: Path, t: int) -> Path:
    return parts / f"t{t:06d}.csv"


def _clear_other_parts(output_dir: Path, stem: str, key: str) -> None:
    """Remove a movie's part folders of other keys (and of the old, unkeyed layout)."""
    pattern = re.compile(rf"{re.escape(stem)}(-[0-9a-f]{{16}})?")
    root = output_dir / PARTS_DIR
    if not root.is_dir():
        return
    for folder in root.iterdir():
        if pattern.fullmatch(folder.name) and folder.name != f"{stem}-{key}":
            shutil.rmtree(folder, ignore_errors=True)


def _frame_dtypes(voxel_size_um) -> pd.Series:

    return points_table(0, [], voxel_size_um).dtypes


def read_part(path: Path, voxel_size_um) -> pd.DataFrame:
    """Read a committed per-frame table back with the exact floats and dtypes."""
    # pandas >= 3 parses floats exactly by default (and deprecates the option).
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    table = pd.read_csv(path, dtype={"status": object}, **exact)
    dtypes = _frame_dtypes(voxel_size_um)
    return table.astype({c: d for c, d in dtypes.items() if c in table.columns})


def assemble_movie(
    output_dir: Path, stem: str, frames: Sequence[int], voxel_size_um, parts: Path
) -> pd.DataFrame:
    """Concatenate a movie's per-frame tables (in ``parts``) in frame order; write ``<stem>.csv``."""
    from napari_kinetochores.io import write_points

    tables = [read_part(_part_path(parts, t), voxel_size_um) for t in frames]
    points = pd.concat(tables, ignore_index=True) if tables else points_table(0, [], voxel_size_um)
    write_points(output_dir / f"{stem}.csv", points, voxel_size_um)
    return points


def create_map_store(
    path: Path,
    shape_tczyx: Sequence[int],
    channels: list[int],
    kind: str,
    voxel_size_um,
    core_yx: int = DEFAULT_CORE_YX,
    key: str | None = None,
) -> Path:
    """Create an empty OME-Zarr for score maps: (T, len(channels), Z, Y, X) float32.

    Chunks are (1, 1, Z, ≤core_yx, ≤core_yx): no chunk spans two frames, so
    workers write their frames in parallel. ``key`` (see :func:`parts_key`)
    is kept in the attributes; ``--resume`` reuses only a store of its key.
    """
    import numpy as np
    import zarr

    from napari_kinetochores.io import write_zarr

    t, _, z, y, x = (int(s) for s in shape_tczyx)
    c = len(channels)
    chunks = (1, 1, z, min(y, core_yx), min(x, core_yx))
    # write_zarr writes the OME metadata; a one-voxel placeholder is then resized.
    write_zarr(
        path,
        np.zeros((1, c, 1, 1, 1), np.float32),
        voxel_size_um,
        chunks=chunks,
        channel_names=[f"{kind} ch{ch}" for ch in channels],
    )
    array = zarr.open_array(str(path / "0"), mode="r+")
    array.resize((t, c, z, y, x))
    array[0] = 0  # the placeholder voxel; frame 0 is written by its task
    group = zarr.open_group(str(path), mode="r+")
    group.attrs["napari_kinetochores"] = {
        "kind": kind,
        "movie_channels": channels,
        "parts_key": key,
    }
    return path


def _map_store_key(path: Path) -> str | None:
    """The ``parts_key`` a score-map store was made for (None: no store, or unreadable)."""
    import zarr

    try:
        return dict(zarr.open_group(str(path), mode="r").attrs)["napari_kinetochores"]["parts_key"]
    except Exception:  # no store, not a group, or made before keys: not reusable
        return None


# --------------------------------------------------------------------------- results


@dataclass
class BatchResult:
    """What a batch run did.

    Attributes
    ----------
    manifest_path : Path
    manifest : dict
        The manifest as written.
    n_submitted : int
        Frame tasks run in this call.
    n_skipped : int
        Frames already complete (``resume``).
    failed : list of str
        Inputs that failed to read or have failed frames.
    task_results : list of dict
        What each finished frame task returned (frame, worker pid, model
        loads, time).
    """

    manifest_path: Path
    manifest: dict
    n_submitted: int = 0
    n_skipped: int = 0
    failed: list[str] = field(default_factory=list)
    task_results: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every movie is complete."""
        return not self.failed


# --------------------------------------------------------------------------- cluster


def _open_client(scheduler: str | None, n_workers: int | None):
    """Connect to ``scheduler``, or start a LocalCluster; returns (client, cluster or None)."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as error:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        return client, None
    workers = max(1, int(n_workers or os.cpu_count() or 1))
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        silence_logs=logging.CRITICAL,  # failures are reported per frame in the manifest
    )
    try:
        client = Client(cluster)
    except BaseException:
        cluster.close()
        raise
    return client, cluster


def _torch_threads(client, cluster) -> int | None:
    """Torch threads per worker on a LocalCluster: the machine's cores shared out."""
    if cluster is None:
        return None
    return max(1, (os.cpu_count() or 1) // max(1, len(client.nthreads())))


def _plugin_name(options: DetectionOptions, model_sha: str | None) -> str:
    key = json.dumps({"options": asdict(options), "model": model_sha}, sort_keys=True, default=str)
    return f"{PLUGIN_PREFIX}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _register(
    client, options: DetectionOptions, model_sha: str | None, torch_threads: int | None
) -> str:
    from napari_kinetochores.batch.worker import DetectorPlugin

    name = _plugin_name(options, model_sha)
    client.register_plugin(DetectorPlugin(options, torch_threads=torch_threads), name=name)
    return name


def _unregister(client, name: str) -> None:
    try:
        client.unregister_worker_plugin(name)
    except Exception:  # the cluster may be gone; nothing to clean then
        pass


def _release(client, cluster, own_client: bool, plugin_name: str | None) -> None:
    """End a batch's use of Dask: free the model on a shared cluster, close what we started."""
    if plugin_name is not None and cluster is None:  # a shared cluster: free the model
        _unregister(client, plugin_name)
    if own_client:
        client.close()
        if cluster is not None:
            cluster.close()


def _model_info(options: DetectionOptions):
    """(path, sha256) of the backend's model file (checked now); Nones when it has none."""
    path = detector_class(options.method).model_file(options)
    if path is None:
        return None, None
    return path, file_sha256(path)


# --------------------------------------------------------------------------- batch


def run_batch(
    inputs: Iterable[str | Path],
    output_dir: str | Path,
    options: DetectionOptions | None = None,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    resume: bool = False,
    save_probabilities: bool = False,
    frames: Sequence[int] | None = None,
    voxel_size_um: Sequence[float] | None = None,
    axes: str | None = None,
    dataset: str | None = None,
    max_frame_voxels: int | None = DEFAULT_MAX_FRAME_VOXELS,
    core_yx: int = DEFAULT_CORE_YX,
    progress: bool = True,
    client=None,
    echo: Callable[[str], None] = print,
    command: Sequence[str] | None = None,
) -> BatchResult:
    """Detect kinetochores in many movies on a Dask cluster, one task per frame.

    Parameters
    ----------
    inputs : iterable of str or Path
        Movie files, folders and glob patterns (see :func:`expand_inputs`).
    output_dir : str or Path
        Folder for ``<stem>.csv``, the optional probability OME-Zarrs and
        ``manifest.json``; created if missing.
    options : DetectionOptions, optional
        The same options as ``kinetochores detect`` (default: UNet, bundled model).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``), e.g. one
        started by dask-jobqueue. Default: a LocalCluster of ``n_workers``
        processes with one thread each, closed at the end.
    n_workers : int, optional
        Workers of the LocalCluster (default: the number of CPU cores).
    resume : bool
        Keep the frames already committed in ``output_dir`` by an earlier run
        with the same parameters; compute only the others.
    save_probabilities : bool
        Also write ``<stem>.probabilities.ome.zarr``.
    frames : range or sequence of int, optional
        Frames to process in every movie (default: all), e.g. from
        :func:`~napari_kinetochores.detection.options.parse_frames`; a range
        is never listed out. Each movie's probe checks them against its length.
    voxel_size_um, axes, dataset
        Reading options, as for :func:`napari_kinetochores.io.read_volume`.
    max_frame_voxels : int or None
        Frames with more voxels (Z × Y × X) are read and processed in tiles
        with halos (bounded memory); None never tiles.
    core_yx : int
        Tile core size along y and x (voxels) for large frames.
    progress : bool
        Show a tqdm progress bar over the frame tasks.
    client : distributed.Client, optional
        Use this client (its cluster is left running). Overrides ``scheduler``.
    echo : callable
        Where messages (dashboard address, summary) go.
    command : sequence of str, optional
        The command line, recorded in the manifest.

    Returns
    -------
    BatchResult

    Raises
    ------
    InputError
        No input, clashing output names, an unusable model, or ``resume``
        into a folder made with other parameters.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    from napari_kinetochores.batch.worker import FrameJob, MovieSpec, probe_movie, run_frame
    from napari_kinetochores.io import validate_voxel_size

    options = DetectionOptions() if options is None else options
    backend = detector_class(options.method)
    if save_probabilities and not backend.score_maps:
        raise InputError(f"--save-probabilities: method {options.method!r} makes no score maps")
    from napari_kinetochores.io.atomic import output_error

    output_dir = Path(output_dir)
    movies = expand_inputs(inputs, output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise output_error(error, output_dir) from None
    voxel = None if voxel_size_um is None else tuple(validate_voxel_size(voxel_size_um))
    if max_frame_voxels is not None and int(max_frame_voxels) < 1:
        raise InputError(f"--max-frame-voxels must be positive, got {max_frame_voxels}")
    if int(core_yx) < 8:
        raise InputError(f"the tile core must be at least 8 voxels, got {core_yx}")
    model_path, model_sha = _model_info(options)
    map_detector = get_detector(options) if save_probabilities else None
    selected = frames if frames is None or isinstance(frames, range) else list(frames)
    parameters = {
        "options": asdict(options),
        "frames": _frames_parameter(selected),
        "voxel_size_um": None if voxel is None else list(voxel),
        "axes": axes,
        "dataset": dataset,
        "save_probabilities": bool(save_probabilities),
        "max_frame_voxels": None if max_frame_voxels is None else int(max_frame_voxels),
        "core_yx": int(core_yx),
        "model_sha256": model_sha,
    }
    parameters_sha = hashlib.sha256(
        json.dumps(parameters, sort_keys=True, default=str).encode()
    ).hexdigest()
    detection_parameters = {k: v for k, v in parameters.items() if k != "frames"}
    manifest_path = output_dir / MANIFEST_NAME
    if resume and manifest_path.exists():
        try:
            earlier = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as error:
            raise InputError(
                f"cannot read the manifest to resume from ({error})", manifest_path
            ) from None
        if earlier.get("parameters_sha256") != parameters_sha:
            raise InputError(
                "the outputs there were made with other parameters; resume with the same "
                "options, or write to a new output folder",
                output_dir,
            )
    elif not resume:
        shutil.rmtree(output_dir / PARTS_DIR, ignore_errors=True)

    manifest = {
        "format": "napari-kinetochores batch manifest",
        "format_version": 2,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "updated": None,
        "finished": None,
        "command": list(command) if command is not None else None,
        "output_dir": str(output_dir.resolve()),
        "inputs": [str(p) for p in movies],
        "parameters": parameters,
        "parameters_sha256": parameters_sha,
        "model": None if model_path is None else {"path": str(model_path), "sha256": model_sha},
        "versions": library_versions(options.method),
        "cluster": None,
        "movies": [],
    }

    def save_manifest() -> None:
        manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _write_json(manifest_path, manifest)

    own_client = client is None
    cluster = None
    if own_client:
        client, cluster = _open_client(scheduler, n_workers)
    result = BatchResult(manifest_path, manifest)
    plugin_name = None
    try:
        n_found = len(client.nthreads())
        manifest["cluster"] = {
            "scheduler": client.scheduler.address,
            "dashboard": client.dashboard_link,
            "local": cluster is not None,
            "workers": n_found,
        }
        echo(
            f"Dask dashboard: {client.dashboard_link}  (scheduler {client.scheduler.address}, {n_found} worker(s))"
        )
        plugin_name = _register(client, options, model_sha, _torch_threads(client, cluster))

        specs = [MovieSpec(str(p), axes, voxel, dataset) for p in movies]
        probes = client.gather(
            [client.submit(probe_movie, s, plugin_name, selected, pure=False) for s in specs]
        )
        jobs, entries = [], []
        for path, spec, probe in zip(movies, specs, probes, strict=True):
            stem = movie_stem(path)
            entry = {"input": str(path), "stem": stem, "status": "pending", "error": None}
            entries.append(entry)
            if not probe["ok"]:
                entry.update(status="failed", error=probe["error"])
                result.failed.append(str(path))
                echo(f"error: {probe['error']}  (skipped)")
                continue
            for message in probe["warnings"]:
                echo(f"warning: {message}")
            shape = probe["shape"]
            identity = input_identity(path)
            key = parts_key(identity, detection_parameters)
            entry.update(
                input_identity=identity,
                parts=f"{PARTS_DIR}/{stem}-{key}",
                shape_tczyx=shape,
                voxel_size_um=probe["voxel_size_um"],
                voxel_size_source=probe["voxel_size_source"],
                dtype=probe["dtype"],
                warnings=probe["warnings"],
                output=f"{stem}.csv",
                n_detections=None,
                tiled=bool(max_frame_voxels and shape[2] * shape[3] * shape[4] > max_frame_voxels),
            )
            parts = _parts_dir(output_dir, stem, key)
            _clear_other_parts(output_dir, stem, key)
            parts.mkdir(parents=True, exist_ok=True)
            for stale in parts.glob(".*.tmp"):  # torn writes of killed workers
                stale.unlink(missing_ok=True)
            map_store = None
            if save_probabilities:
                map_store = output_dir / f"{stem}{MAP_SUFFIX}"
                entry["probabilities"] = map_store.name
                channels, kind = map_detector.map_channels(shape[1], options)
                if not (resume and _map_store_key(map_store) == key):
                    for done_part in parts.glob("t*.csv"):  # their maps are not in a new store
                        done_part.unlink()
                    create_map_store(
                        map_store, shape, channels, kind, probe["voxel_size_um"], core_yx, key
                    )
            entry["frames"] = []
            for t in probe["frames"]:
                part = _part_path(parts, t)
                done = resume and part.exists()
                entry["frames"].append({"t": t, "status": "done" if done else "pending"})
                if done:
                    result.n_skipped += 1
                    continue
                job = FrameJob(
                    spec,
                    t,
                    plugin_name,
                    max_frame_voxels,
                    (None, int(core_yx), int(core_yx)),
                    str(part),
                    None if map_store is None else str(map_store),
                )
                jobs.append((len(entries) - 1, len(entry["frames"]) - 1, job))
        manifest["movies"] = entries
        save_manifest()

        def finish_movie(index: int) -> None:
            entry = entries[index]
            frame_states = entry["frames"]
            if any(f["status"] == "pending" for f in frame_states):
                return
            if any(f["status"] == "failed" for f in frame_states):
                entry["status"] = "incomplete"
                return
            points = assemble_movie(
                output_dir,
                entry["stem"],
                [f["t"] for f in frame_states],
                entry["voxel_size_um"],
                output_dir / entry["parts"],
            )
            entry.update(status="done", n_detections=int(len(points)))

        for index, entry in enumerate(entries):  # movies already complete (resume)
            if entry["status"] == "pending":
                finish_movie(index)

        submitted = {}
        for movie_index, frame_index, job in jobs:
            key = (
                f"kinetochores-frame-{entries[movie_index]['stem']}-{job.t}-{uuid.uuid4().hex[:8]}"
            )
            submitted[client.submit(run_frame, job, key=key, pure=False)] = (
                movie_index,
                frame_index,
            )
        result.n_submitted = len(submitted)
        last_save = time.monotonic()
        with tqdm(total=len(jobs), desc="batch", unit="frame", disable=not progress) as bar:
            for future in as_completed(list(submitted)):
                movie_index, frame_index = submitted.pop(future)
                state = entries[movie_index]["frames"][frame_index]
                try:
                    outcome = future.result()
                except Exception as error:  # a failed frame must not stop the batch
                    state.update(status="failed", error=f"{type(error).__name__}: {error}")
                else:
                    state.update(
                        status="done",
                        n_detections=outcome["n_detections"],
                        seconds=round(outcome["seconds"], 4),
                        tiled=outcome["tiled"],
                    )
                    result.task_results.append({**outcome, "stem": entries[movie_index]["stem"]})
                future.release()
                bar.update(1)
                finish_movie(movie_index)
                if time.monotonic() - last_save > 2.0:
                    save_manifest()
                    last_save = time.monotonic()
        for entry in entries:
            if entry["status"] == "incomplete":
                result.failed.append(entry["input"])
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        save_manifest()
    finally:
        if manifest["movies"]:
            try:
                save_manifest()
            except OSError:
                pass
        _release(client, cluster, own_client, plugin_name)
    done = sum(e["status"] == "done" for e in manifest["movies"])
    echo(
        f"{done} of {len(manifest['movies'])} movie(s) done ({result.n_submitted} frame(s) computed, "
        f"{result.n_skipped} already complete); manifest: {manifest_path}"
    )
    return result


# --------------------------------------------------------------------------- napari


def detect_on_cluster(
    volume_path: str | Path,
    options: DetectionOptions,
    scheduler_address: str | None,
    frames: Iterable[int] | None = None,
    progress_callback: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    *,
    voxel_size_um: Sequence[float] | None = None,
    axes: str | None = None,
    dataset: str | None = None,
    max_frame_voxels: int | None = DEFAULT_MAX_FRAME_VOXELS,
    client=None,
) -> pd.DataFrame:
    """Detect all (or selected) frames of one movie on a Dask cluster.

    For front ends such as the napari Detect widget: one task per frame, the
    workers read the file themselves, and the table comes back in frame
    order, equal to :func:`napari_kinetochores.detection.detect_movie`'s.

    Parameters
    ----------
    volume_path : str or Path
        The movie file; the workers must see it at this path.
    options : DetectionOptions
    scheduler_address : str or None
        ``tcp://host:port`` of a running scheduler. None (and no ``client``):
        a LocalCluster on this machine, closed at the end.
    frames : iterable of int, optional
        Frames to process (default: all).
    progress_callback : callable, optional
        ``progress_callback(done, total)`` after each finished frame.
    cancelled : callable, optional
        Polled about every 0.2 s; when it returns True the remaining tasks
        are cancelled and the frames finished so far are returned.
    voxel_size_um, axes, dataset
        Reading options, as for :func:`napari_kinetochores.io.read_volume`.
    max_frame_voxels : int or None
        Frames with more voxels are processed in tiles.
    client : distributed.Client, optional
        An existing client to use instead of connecting.

    Returns
    -------
    pandas.DataFrame
        Point table (t, z, y, x, z_um, y_um, x_um, channel, score, status).

    Raises
    ------
    InputError
        The movie cannot be read by the workers, or a frame fails.
    """
    from distributed import TimeoutError as DaskTimeoutError
    from distributed import wait

    from napari_kinetochores.batch.worker import FrameJob, MovieSpec, probe_movie, run_frame

    voxel = None if voxel_size_um is None else tuple(float(v) for v in voxel_size_um)
    spec = MovieSpec(str(volume_path), axes, voxel, dataset)
    _, model_sha = _model_info(options)
    own_client = client is None
    cluster = None
    if own_client:
        client, cluster = _open_client(scheduler_address, None)
    plugin_name = None
    try:
        plugin_name = _register(client, options, model_sha, _torch_threads(client, cluster))
        probe = client.submit(
            probe_movie, spec, plugin_name, None if frames is None else list(frames), pure=False
        ).result()
        if not probe["ok"]:
            raise InputError(probe["error"])
        selected = probe["frames"]
        futures = {
            client.submit(
                run_frame,
                FrameJob(spec, t, plugin_name, max_frame_voxels),
                pure=False,
                key=f"kinetochores-frame-{t}-{uuid.uuid4().hex[:8]}",
            ): t
            for t in selected
        }
        tables: dict[int, pd.DataFrame] = {}
        pending = set(futures)
        while pending:
            if cancelled is not None and cancelled():
                client.cancel(list(pending))
                break
            try:
                finished, pending = wait(pending, timeout=0.2, return_when="FIRST_COMPLETED")
            except (DaskTimeoutError, TimeoutError):
                continue
            for future in finished:
                try:
                    tables[futures[future]] = future.result()["table"]
                except InputError:
                    raise
                except Exception as error:
                    raise InputError(
                        f"frame {futures[future]} failed on the cluster: {error}", volume_path
                    ) from error
                if progress_callback is not None:
                    progress_callback(len(tables), len(selected))
    finally:
        _release(client, cluster, own_client, plugin_name)
    ordered = [tables[t] for t in selected if t in tables]
    if not ordered:
        return points_table(0, [], probe.get("voxel_size_um") or (0.3, 0.13, 0.13))
    return pd.concat(ordered, ignore_index=True)
