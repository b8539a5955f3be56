"""npe2 readers, writer and sample data: thin shells over :mod:`napari_kinetochores.io`.

- Volumes (TIFF/OME-TIFF, zarr/OME-Zarr, HDF5, NumPy ``.npy``: every format
  :func:`~napari_kinetochores.io.read_volume` reads) open as one image layer per
  channel, scaled by the voxel size (z, y, x) µm, EGFP green and mCherry
  magenta, additive blending. Lazy data (zarr, HDF5, large TIFF) stay lazy.
- Point CSVs (the package schema, napari's ``axis-N`` and Arivis exports)
  open as a Points layer whose features are the table's other columns.
- The writer saves a Points layer in the package's CSV schema (voxels and µm).
- Sample data: the bundled sample movie with its ground truth (found through
  :mod:`importlib.resources` when the package holds it), and a freshly
  simulated movie.
- Markers are sized from the PSF in µm (:func:`marker_size`), shown out of
  slice, and :func:`legend_text` says what each colour means.

No Qt is imported here; napari is only needed for the layer data tuples'
meaning, not imported.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_kinetochores.errors import InputError

LayerDataTuple = tuple[Any, dict, str]

VOLUME_SUFFIXES = (".tif", ".tiff", ".zarr", ".h5", ".hdf5", ".hdf", ".npy")
POINTS_SUFFIXES = (".csv",)
#: Colour maps by channel index: EGFP green, mCherry magenta, then others.
CHANNEL_COLORMAPS = ("green", "magenta", "cyan", "yellow", "gray")
#: Marker diameters in µm, from the PSF (sigma 0.10 µm in y and x, so a spot's
#: FWHM is about 0.24 µm): thin circles just outside a spot's FWHM (a detection)
#: and well outside it (a reference point), so the spot stays visible inside.
DETECTION_MARKER_UM = 0.36
REFERENCE_MARKER_UM = 0.60
#: Width of a circle's line, as a fraction of its diameter.
RING_WIDTH = 0.06
#: Point colours by channel (EGFP, mCherry) for detections and for reference points.
DETECTION_CHANNEL_COLOURS = ("yellow", "magenta")
REFERENCE_CHANNEL_COLOURS = ("cyan", "orange")
#: Points this far (µm) above or below the z slice are shown too, shrinking with
#: the distance (napari >= 0.9: the viewer's z margins; earlier: out of slice display).
OUT_OF_SLICE_UM = 0.45
#: Colours of the Evaluate widget's matches (:mod:`napari_kinetochores._widgets.evaluate`).
MATCH_COLOURS = {"TP": "#2ecc40", "FP": "#ff4136", "FN": "#40a0ff"}
META_KEY = "napari_kinetochores"

#: Where a source checkout keeps the sample movie (an installed package has none).
SAMPLE_DIR = Path(__file__).resolve().parents[3] / "sample_data"
SAMPLE_MOVIE = SAMPLE_DIR / "sample_movie.tif"
SAMPLE_GT = SAMPLE_DIR / "sample_movie_gt.csv"


# --------------------------------------------------------------------------- markers


def marker_size(diameter_um: float, scale: Sequence[float]) -> float:
    """A marker size for a Points layer of ``scale`` that spans ``diameter_um`` µm.

    napari draws point sizes in data units of the last axis (x).

    Examples
    --------
    >>> marker_size(0.26, (1.0, 0.3, 0.13, 0.13))
    2.0
    """
    return round(float(diameter_um) / abs(float(scale[-1])), 6)


def out_of_slice() -> dict[str, Any]:
    """Points layer keyword arguments that show points near the slice, smaller with distance.

    napari 0.9 replaced ``out_of_slice_display`` by a projection mode over the
    viewer's thick slice (see :func:`napari_kinetochores._widgets._common.describe_viewer`,
    which sets the z margins to :data:`OUT_OF_SLICE_UM`).
    """
    if _napari_version() >= (0, 9):
        return {"projection_mode": "rescale_linear"}
    return {"out_of_slice_display": True}


def axis_labels(ndim: int) -> dict[str, Any]:
    """Layer keyword arguments naming the axes t, z, y, x (napari >= 0.6 shows them)."""
    if _napari_version() >= (0, 6):
        return {"axis_labels": ("t", "z", "y", "x")[4 - ndim :]}
    return {}


def _napari_version() -> tuple[int, int]:
    from importlib.metadata import version

    major, minor = (int(part) for part in version("napari").split(".")[:2])
    return major, minor


def marker_style(reference: bool, scale: Sequence[float]) -> dict[str, Any]:
    """Points layer keyword arguments: a thin circle, yellow (detections) or cyan (reference).

    The circle is a transparent disc with a border, so the spot shows inside.
    Both are shown out of slice (:func:`out_of_slice`), shrinking with the
    distance from the slice.
    """
    diameter = REFERENCE_MARKER_UM if reference else DETECTION_MARKER_UM
    colours = REFERENCE_CHANNEL_COLOURS if reference else DETECTION_CHANNEL_COLOURS
    return {
        "size": marker_size(diameter, scale),
        "symbol": "disc",
        "face_color": "transparent",
        "border_color": colours[0],
        "border_width": RING_WIDTH,
        "border_width_is_relative": True,
        "opacity": 1.0,
        **out_of_slice(),
    }


def legend_text(layers: Sequence[Any]) -> str:
    """What the marker colours of the plugin's points layers mean (one line per kind).

    Parameters
    ----------
    layers
        The viewer's layers; only visible points layers with the plugin's
        ``kind`` metadata (detections, reference, matches) count.

    Examples
    --------
    >>> legend_text([])
    ''
    """
    kinds = set()
    channels: dict[str, bool] = {}
    for layer in layers:
        meta = (getattr(layer, "metadata", None) or {}).get(META_KEY, {})
        kind = meta.get("kind") if isinstance(meta, dict) else None
        if kind and getattr(layer, "visible", True):
            kinds.add(kind)
            features = getattr(layer, "features", None)
            if features is not None and "channel" in features and features["channel"].nunique() > 1:
                channels[kind] = True
    lines = []
    if "detections" in kinds:
        second = " (mCherry spots: magenta)" if channels.get("detections") else ""
        lines.append(f"small yellow circle: detection{second}")
    if "reference" in kinds:
        second = " (mCherry: orange)" if channels.get("reference") else ""
        lines.append(f"large cyan circle: reference label{second}")
    if "matches" in kinds:
        lines.append("large circles: green TP (matched), red FP (extra), blue FN (missed)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- layers


def channel_colormap(index: int, name: str | None = None) -> str:
    """Colour map of a channel: by name (EGFP green, mCherry magenta), else by index."""
    lowered = (name or "").lower()
    if "gfp" in lowered:
        return "green"
    if "cherry" in lowered or "rfp" in lowered:
        return "magenta"
    return CHANNEL_COLORMAPS[index % len(CHANNEL_COLORMAPS)]


def contrast_limits(frame: Any, max_voxels: int = 2_000_000) -> tuple[float, float]:
    """Display range from the 75th percentile (above most background noise) to the 99.95th.

    Only a strided subsample of the frame is read, so lazy data stay cheap.
    """
    shape = np.asarray(frame.shape, dtype=float)
    step = max(1, int(np.ceil((np.prod(shape) / max_voxels) ** (1 / 3))))
    sample = np.asarray(frame[:: max(1, step // 2), ::step, ::step], dtype=np.float64)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [75.0, 99.95])
    if high <= low:
        high = low + 1.0
    return float(low), float(high)


def volume_layers(
    volume: Any,
    names: Sequence[str] | None = None,
    colormaps: Sequence[str] | None = None,
    frames: tuple[int, int] | None = None,
) -> list[LayerDataTuple]:
    """One image layer data tuple per channel of a :class:`~napari_kinetochores.io.Volume`.

    Parameters
    ----------
    volume
        The movie (TCZYX) with its voxel size.
    names, colormaps
        Per channel; default: the volume's channel names, and EGFP green,
        mCherry magenta.
    frames
        (first, stop) frame range (stop exclusive); default all.

    Returns
    -------
    list of (data (T, Z, Y, X), kwargs, "image")
        Scale (1, z, y, x) µm, additive blending; lazy data stay lazy.
    """
    names = list(names) if names is not None else list(volume.channel_names)
    if len(names) != volume.n_channels:
        raise InputError(f"{len(names)} channel names given for {volume.n_channels} channels")
    start, stop = frames if frames is not None else (0, volume.n_frames)
    if not 0 <= start < stop <= volume.n_frames:
        raise InputError(
            f"frame range {start}..{stop - 1} is outside the movie (0..{volume.n_frames - 1})",
            volume.path,
        )
    scale = (1.0, *(float(v) for v in volume.voxel_size_um))
    layers: list[LayerDataTuple] = []
    for c in range(volume.n_channels):
        data = volume.data[start:stop, c]
        cmap = colormaps[c] if colormaps is not None else channel_colormap(c, names[c])
        meta = {
            "path": None if volume.path is None else str(volume.path),
            "channel": c,
            "channel_name": names[c],
            "voxel_size_um": list(volume.voxel_size_um),
            "voxel_size_source": volume.voxel_size_source,
            "axes": volume.axes,
            "first_frame": start,
        }
        kwargs = {
            "name": names[c],
            "scale": scale,
            "colormap": cmap,
            "blending": "additive",
            "contrast_limits": contrast_limits(data[0]),
            "metadata": {META_KEY: meta},
            **axis_labels(4),
        }
        layers.append((data, kwargs, "image"))
    return layers


def points_layer(
    table: pd.DataFrame,
    voxel_size_um: Sequence[float] | None,
    name: str,
    reference: bool = False,
    path: str | Path | None = None,
) -> LayerDataTuple:
    """A Points layer data tuple from a point table (package schema).

    Parameters
    ----------
    table
        Columns ``t, z, y, x`` in voxels, then features.
    voxel_size_um
        The layer scale (z, y, x) µm, so the points sit on an image of that
        voxel size; None: scale 1 (coordinates taken as world units).
    name
        Layer name.
    reference
        Reference labels (rings) rather than detections (discs).
    path
        The CSV the table came from, kept in the layer metadata.
    """
    data, features = table_to_layer_data(table)
    scale = (1.0, 1.0, 1.0, 1.0) if voxel_size_um is None else (1.0, *map(float, voxel_size_um))
    kwargs: dict[str, Any] = {
        "name": name,
        "scale": scale,
        "features": features,
        **marker_style(reference, scale),
        **axis_labels(4),
        "metadata": {
            META_KEY: {
                "path": None if path is None else str(path),
                "voxel_size_um": None if voxel_size_um is None else list(map(float, voxel_size_um)),
                "kind": "reference" if reference else "detections",
            }
        },
    }
    if "channel" in features.columns and features["channel"].nunique() > 1:
        colours = REFERENCE_CHANNEL_COLOURS if reference else DETECTION_CHANNEL_COLOURS
        kwargs["border_color"] = channel_colours(features["channel"].to_numpy(), colours)
    return data, kwargs, "points"


def table_to_layer_data(table: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Split a point table into napari Points ``data`` (N, 4) (t, z, y, x) and ``features``.

    Examples
    --------
    >>> from napari_kinetochores.io import points_frame
    >>> data, features = table_to_layer_data(points_frame([[0, 1, 2, 3]], (0.3, 0.13, 0.13)))
    >>> data.tolist(), list(features.columns)
    ([[0.0, 1.0, 2.0, 3.0]], [])
    """
    from napari_kinetochores.io import POINT_COLUMNS, UM_COLUMNS

    data = table[list(POINT_COLUMNS)].to_numpy(dtype=float).reshape(-1, 4)
    skip = set(POINT_COLUMNS) | set(UM_COLUMNS)
    features = table[[c for c in table.columns if c not in skip]].reset_index(drop=True)
    return data, features


def channel_colours(channels: np.ndarray, colours: Sequence[str]) -> np.ndarray:
    """RGBA colour per point from its channel (0: first colour, 1: second, …)."""
    from matplotlib.colors import to_rgba

    palette = np.array([to_rgba(c) for c in colours])
    index = np.clip(np.asarray(channels, dtype=int), 0, len(palette) - 1)
    return palette[index]


#: The library's advice to callers and CLI users about the voxel size ...
_VOXEL_ADVICE = re.compile(
    r"[.;]?\s*(?:Pass|give) voxel_size_um=(?: \(--voxel-size\))? to override\.?", re.IGNORECASE
)
#: ... and what a napari user does instead.
GUI_VOXEL_ADVICE = (
    "; set the voxel size (z, y, x) µm in the Load movie widget "
    "(Plugins > Kinetochores > Load movie) before Open"
)


def gui_message(text: str) -> str:
    """A library message about the voxel size, with the napari user's way to fix it.

    Examples
    --------
    >>> gui_message("m.npy: no voxel size in the file's metadata; using the default "
    ...             "(z, y, x) = (0.3, 0.13, 0.13) µm. Pass voxel_size_um= (--voxel-size) to override.")
    "m.npy: no voxel size in the file's metadata; using the default (z, y, x) = (0.3, 0.13, 0.13) µm; set the voxel size (z, y, x) µm in the Load movie widget (Plugins > Kinetochores > Load movie) before Open"
    """
    fixed, count = _VOXEL_ADVICE.subn("", text)
    return fixed.rstrip(" .;") + GUI_VOXEL_ADVICE if count else text


def _table_voxel_size(table: pd.DataFrame) -> tuple[float, float, float] | None:
    """Voxel size implied by a table's ``*_um`` and voxel columns (None if unknown)."""
    voxel = table.attrs.get("voxel_size_um")
    if voxel is not None:
        return tuple(float(v) for v in voxel)  # type: ignore[return-value]
    return None


# --------------------------------------------------------------------------- readers


def _single_path(path: str | Sequence[str]) -> str | None:
    if isinstance(path, list | tuple):
        return path[0] if len(path) == 1 else None
    return str(path)


def get_volume_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerDataTuple]] | None:
    """npe2 reader for every format :func:`~napari_kinetochores.io.read_volume` reads.

    TIFF/OME-TIFF, zarr/OME-Zarr, HDF5 and NumPy ``.npy`` (the manifest's
    patterns name the same suffixes as :data:`VOLUME_SUFFIXES`).
    """
    single = _single_path(path)
    if single is None:
        return None
    lowered = single.rstrip("/\\").lower()
    if not lowered.endswith(VOLUME_SUFFIXES):
        return None
    return read_volume_layers


def read_volume_layers(path: str | Sequence[str]) -> list[LayerDataTuple]:
    """Read a movie as one image layer per channel, with the voxel size as scale."""
    from napari_kinetochores.io import list_datasets, read_volume

    single = _single_path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            volume = read_volume(single)
        for warning in caught:
            warnings.warn(gui_message(str(warning.message)), warning.category, stacklevel=2)
    except InputError as error:
        if "several" in error.problem:
            datasets = list_datasets(single)
            raise InputError(
                f"holds several images {datasets}; open it with the Load movie widget "
                "(Plugins > Kinetochores > Load movie) to choose one",
                single,
            ) from None
        raise
    return volume_layers(volume)


def get_points_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerDataTuple]] | None:
    """npe2 reader for point CSVs (package schema, napari ``axis-N``, Arivis)."""
    single = _single_path(path)
    if single is None or not single.lower().endswith(POINTS_SUFFIXES):
        return None
    return read_points_layer


def read_points_layer(path: str | Sequence[str]) -> list[LayerDataTuple]:
    """Read a point CSV as a Points layer (t, z, y, x) with its other columns as features.

    The layer scale is the voxel size found in the table (``*_um`` columns);
    napari ``axis-N`` tables are world coordinates and get scale 1; otherwise
    the default voxel size is used, with a warning.

    Every cell is checked by :func:`~napari_kinetochores.io.read_points`
    (numbers where numbers belong, coordinates within ±1e6) and the scale
    implied by the ``*_um`` columns by
    :func:`~napari_kinetochores.io.validate_voxel_size`, so a bad table is an
    InputError naming the file and no layer is made.
    """
    from napari_kinetochores.io import read_points

    single = _single_path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = read_points(single)
    voxel = _table_voxel_size(table)
    layout = table.attrs.get("layout")
    if layout == "napari":
        voxel = None
    elif voxel is None:
        voxel = _voxel_from_um(table, single)
    for warning in caught:
        if layout != "napari" or "default" not in str(warning.message):
            warnings.warn(str(warning.message), UserWarning, stacklevel=2)
    name = Path(single).stem
    is_reference = names_reference(name)
    return [points_layer(table, voxel, name, reference=is_reference, path=single)]


def names_reference(name: str) -> bool:
    """Whether a file or layer name says it holds reference labels (``*_gt``, ``ground truth``…).

    Examples
    --------
    >>> names = ("sample_movie_gt", "ground truth", "cell3-ref", "detections", "refined", "target")
    >>> [names_reference(n) for n in names]
    [True, True, True, False, False, False]
    """
    words = [w for w in re.split(r"[\s_\-.]+", name.lower()) if w]
    return any(w in ("gt", "ref", "truth") or w.startswith(("ground", "reference")) for w in words)


def _voxel_from_um(table: pd.DataFrame, path: str | None) -> tuple[float, float, float] | None:
    """Voxel size as the median ratio of ``*_um`` to voxel columns (None if undefined).

    Raises InputError, naming ``path``, when that ratio is not a valid voxel
    size (:func:`~napari_kinetochores.io.validate_voxel_size`): a layer with
    such a scale cannot be drawn.
    """
    from napari_kinetochores.io import validate_voxel_size

    values = []
    for axis in ("z", "y", "x"):
        v = table[axis].to_numpy(float)
        um = table[f"{axis}_um"].to_numpy(float)
        ok = np.abs(v) > 1e-6
        if not ok.any():
            return None
        values.append(float(np.median(um[ok] / v[ok])))
    voxel = tuple(round(x, 9) for x in values)
    try:
        return validate_voxel_size(voxel, path)
    except InputError as error:
        raise InputError(
            f"the z_um, y_um, x_um columns divided by z, y, x give {error.problem}; "
            "fix or remove the *_um columns",
            path,
        ) from None


# --------------------------------------------------------------------------- writer


def write_points_csv(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 writer: a Points layer as a CSV in the package schema (voxels and µm).

    The voxel size is the layer's scale (z, y, x); features become columns.
    """
    from napari_kinetochores.io import points_frame, write_points

    coords = np.asarray(data, dtype=float)
    if coords.size == 0:
        coords = coords.reshape(0, 4)
    if coords.ndim != 2 or coords.shape[1] not in (3, 4):
        raise InputError(
            f"can only write (Z, Y, X) or (T, Z, Y, X) points, got shape {coords.shape}", path
        )
    scale = meta.get("scale")
    voxel = tuple(float(s) for s in scale[-3:]) if scale is not None else (1.0, 1.0, 1.0)
    features = meta.get("features")
    extra: dict[str, Any] = {}
    if features is not None and len(features) == len(coords):
        features = pd.DataFrame(features)
        extra = {str(c): features[c].to_numpy() for c in features.columns}
        for c in ("t", "z", "y", "x", "z_um", "y_um", "x_um"):
            extra.pop(c, None)
    target = Path(path)
    if target.suffix.lower() != ".csv":
        target = target.with_name(target.name + ".csv")
    write_points(target, points_frame(coords, voxel, **extra), voxel)
    return [str(target)]


# --------------------------------------------------------------------------- sample data


def sample_movie() -> list[LayerDataTuple]:
    """The bundled sample movie (EGFP, mCherry) with its ground-truth points.

    Falls back to simulating a movie like it (with a warning) when the sample
    files are not installed.
    """
    from napari_kinetochores.io import read_points, read_volume

    files = sample_files()
    if files is not None:
        movie, truth = files
        volume = read_volume(movie)
        table = read_points(truth, voxel_size_um=volume.voxel_size_um)
        layers = volume_layers(volume)
        layers.append(points_layer(table, volume.voxel_size_um, "ground truth", True, truth))
        return layers
    warnings.warn(
        f"sample movie not found (package data or {SAMPLE_DIR}); showing a simulated movie instead",
        UserWarning,
        stacklevel=2,
    )
    return _simulated_layers(_sample_like_params(), seed=20240611, label="sample (simulated)")


def sample_files() -> tuple[Path, Path] | None:
    """The sample movie and its ground-truth CSV, or None when neither place holds them.

    Package data first (:mod:`importlib.resources`, ``napari_kinetochores/data/``),
    then the source checkout's ``sample_data/``.
    """
    from importlib.resources import files

    packaged = files("napari_kinetochores") / "data"
    movie, truth = packaged / SAMPLE_MOVIE.name, packaged / SAMPLE_GT.name
    if isinstance(movie, Path) and movie.is_file() and truth.is_file():  # an unzipped install
        return movie, Path(str(truth))
    if SAMPLE_MOVIE.is_file() and SAMPLE_GT.is_file():
        return SAMPLE_MOVIE, SAMPLE_GT
    return None


def simulated_movie() -> list[LayerDataTuple]:
    """A freshly simulated two-colour movie (new random seed) with its ground truth."""
    from napari_kinetochores.simulate import SimulationParams

    seed = int(np.random.default_rng().integers(0, 2**31 - 1))
    params = SimulationParams(n_frames=5, shape_zyx=(32, 128, 128), n_pairs=20, n_clutter=1)
    return _simulated_layers(params, seed=seed, label=f"simulated (seed {seed})")


def _sample_like_params():
    from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams

    return SimulationParams(
        n_frames=4,
        shape_zyx=(26, 88, 88),
        n_pairs=14,
        snr=SNR_LEVELS["moderate"],
        plate_tilt_deg=45.0,
        oscillation_amplitude_um=0.3,
        oscillation_period_frames=8.0,
        n_clutter=1,
    )


def _simulated_layers(params: Any, seed: int, label: str) -> list[LayerDataTuple]:
    from napari_kinetochores.io import volume_from_array
    from napari_kinetochores.simulate import simulate_movie

    movie = simulate_movie(params, seed=seed)
    volume = volume_from_array(movie.image, params.voxel_size_um, ["EGFP", "mCherry"])
    layers = volume_layers(volume)
    for _, kwargs, _ in layers:
        kwargs["metadata"][META_KEY]["simulation_seed"] = seed
    layers.append(points_layer(movie.points, params.voxel_size_um, f"ground truth ({label})", True))
    return layers
