"""Metaphase plate fit, per frame, robust to stray detections.

:func:`fit_plate` fits the metaphase plate of one frame with a
Huber-weighted principal component analysis: the plate normal (the spindle
axis) is the direction of least weighted variance, and spots far from the
plane lose weight, so a few stray detections do not tilt it.
:func:`fit_plates` does it per frame and warns (:class:`PlateWarning`) when
a frame has too few spots; its plate is then left empty (NaN).

Everything here works on numpy arrays in µm and knows nothing about napari.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from napari_kinetochores.analysis.inputs import as_coords, as_frames, frame_groups, frame_progress
from napari_kinetochores.errors import InputError

__all__ = [
    "PLATE_COLUMNS",
    "PLATE_MIN_SPOTS",
    "PlateFit",
    "PlateWarning",
    "fit_plate",
    "fit_plates",
    "plate_normals_per_point",
    "plate_values_per_point",
]

PLATE_MIN_SPOTS = 6
"""Fewest spots in a frame for a plate fit."""

PLATE_COLUMNS: tuple[str, ...] = (
    "t",
    "plate_centre_z_um",
    "plate_centre_y_um",
    "plate_centre_x_um",
    "plate_normal_z",
    "plate_normal_y",
    "plate_normal_x",
    "plate_position_um",
    "plate_rms_um",
    "plate_n_spots",
)
"""Columns of :func:`fit_plates`, in order."""

_CENTRE = list(PLATE_COLUMNS[1:4])
_NORMAL = list(PLATE_COLUMNS[4:7])


class PlateWarning(UserWarning):
    """A frame's metaphase plate could not be fitted (too few spots)."""


@dataclass
class PlateFit:
    """A fitted metaphase plate.

    Attributes
    ----------
    centre_um : (3,) float array
        Robust centre (z, y, x) of the plate in µm.
    normal : (3,) float array
        Unit normal (z, y, x) of the plate: the spindle axis. Its sign is
        arbitrary; :func:`fit_plate` makes its largest component positive.
    weights : (N,) float array
        Final Huber weight of each spot (1: inlier, < 1: down-weighted).
    rms_um : float
        Weighted root-mean-square distance of the spots to the plane, in µm.
    n_spots : int
        Number of spots used.
    """

    centre_um: np.ndarray
    normal: np.ndarray
    weights: np.ndarray
    rms_um: float
    n_spots: int


def _weighted_plane(pts: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and unit normal (least-variance eigenvector) of weighted points."""
    centre = (w[:, None] * pts).sum(axis=0) / w.sum()
    centred = pts - centre
    cov = (w[:, None] * centred).T @ centred / w.sum()
    return centre, np.linalg.eigh(cov)[1][:, 0]


def _huber_weights(r: np.ndarray, huber_k: float) -> np.ndarray:
    """Huber weights ``min(1, k s / |r|)`` with ``s`` the robust scale (1.4826 MAD) of ``r``."""
    scale = max(1.4826 * float(np.median(np.abs(r - np.median(r)))), 1e-3)
    return np.minimum(1.0, huber_k * scale / np.maximum(np.abs(r), 1e-12))


def fit_plate(
    coords_um: np.ndarray,
    *,
    min_spots: int = PLATE_MIN_SPOTS,
    huber_k: float = 1.5,
    n_iter: int = 20,
) -> PlateFit:
    """Fit the metaphase plate to one frame's kinetochores (robust PCA plane).

    Iteratively re-weighted PCA: the plane goes through the weighted centre,
    its normal is the eigenvector of the weighted covariance with the smallest
    eigenvalue, and each spot's weight is the Huber weight
    ``min(1, huber_k * s / |r|)`` of its distance ``r`` to the plane, with
    ``s`` the robust scale (1.4826 × median absolute deviation) of ``r``.

    Parameters
    ----------
    coords_um : (N, 3) array
        Kinetochore positions (z, y, x) in µm.
    min_spots : int
        Fewest spots accepted (at least 3).
    huber_k : float
        Huber threshold in units of the robust scale.
    n_iter : int
        Largest number of re-weighting iterations.

    Returns
    -------
    PlateFit

    Raises
    ------
    InputError
        Fewer than ``min_spots`` spots (:func:`fit_plates` turns this into a
        warning).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> xy = rng.uniform(-4, 4, size=(40, 2))
    >>> pts = np.column_stack([0.1 * rng.standard_normal(40), xy])  # plate in y-x
    >>> fit = fit_plate(pts)
    >>> np.round(np.abs(fit.normal), 1)
    array([1., 0., 0.])
    """
    pts = as_coords(coords_um, "coords_um")
    n = len(pts)
    need = max(int(min_spots), 3)
    if n < need:
        raise InputError(f"{n} spot(s), fewer than the {need} needed to fit the metaphase plate")
    w = np.ones(n)
    for _ in range(max(int(n_iter), 1)):
        centre, normal = _weighted_plane(pts, w)
        new_w = _huber_weights((pts - centre) @ normal, huber_k)
        converged = np.max(np.abs(new_w - w)) < 1e-6
        w = new_w
        if converged:
            break
    if normal[np.argmax(np.abs(normal))] < 0:
        normal = -normal
    r = (pts - centre) @ normal
    rms = float(np.sqrt(np.sum(w * r**2) / np.sum(w)))
    return PlateFit(centre, normal, w, rms, n)


def fit_plates(
    t: np.ndarray | Sequence[float],
    coords_um: np.ndarray,
    *,
    min_spots: int = PLATE_MIN_SPOTS,
    progress: bool = False,
) -> pd.DataFrame:
    """Fit the metaphase plate in every frame.

    Normals are oriented consistently over time (each has a positive dot
    product with the previous valid frame's). Frames with fewer than
    ``min_spots`` spots get NaN and one :class:`PlateWarning` lists them.

    Parameters
    ----------
    t : (N,) array
        Frame of each kinetochore (whole numbers).
    coords_um : (N, 3) array
        Kinetochore positions (z, y, x) in µm.
    min_spots : int
        Fewest spots for a fit.
    progress : bool
        Show a tqdm progress bar over frames.

    Returns
    -------
    pandas.DataFrame
        One row per frame (sorted by ``t``): ``t``, ``plate_centre_{z,y,x}_um``,
        ``plate_normal_{z,y,x}`` (unit vector), ``plate_position_um`` (the
        centre's displacement along the mean normal from the mean centre: the
        plate oscillation), ``plate_rms_um`` (plate half-thickness, RMS) and
        ``plate_n_spots``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> pts = np.column_stack([0.1 * rng.standard_normal(60), rng.uniform(-4, 4, (60, 2))])
    >>> pts[30:, 0] += 0.5  # frame 1: the plate moved 0.5 µm along z
    >>> plates = fit_plates(np.repeat([0, 1], 30), pts)
    >>> np.round(plates["plate_position_um"].to_numpy(), 1)
    array([-0.2,  0.2])
    """
    pts = as_coords(coords_um, "coords_um")
    uniq, groups = frame_groups(as_frames(t, len(pts)))
    rows, too_few, previous = [], [], None
    for frame, idx in frame_progress(
        zip(uniq, groups, strict=True), progress, "plate fit", len(uniq)
    ):
        row = {"t": int(frame), "plate_n_spots": len(idx)}
        try:
            fit = fit_plate(pts[idx], min_spots=min_spots)
        except InputError:
            too_few.append((int(frame), len(idx)))
            rows.append({**row, **{c: np.nan for c in PLATE_COLUMNS[1:-1]}})
            continue
        normal = fit.normal
        if previous is not None and float(normal @ previous) < 0:
            normal = -normal
        previous = normal
        values = dict(zip(_CENTRE + _NORMAL, [*fit.centre_um, *normal], strict=True))
        rows.append({**row, **values, "plate_rms_um": fit.rms_um})
    table = pd.DataFrame(rows, columns=list(PLATE_COLUMNS))
    if too_few:
        _warn_too_few(too_few, len(uniq), min_spots)
    _add_plate_position(table)
    table["t"] = table["t"].astype(np.int64)
    table["plate_n_spots"] = table["plate_n_spots"].astype(np.int64)
    return table


def _warn_too_few(too_few: list[tuple[int, int]], n_frames: int, min_spots: int) -> None:
    listed = ", ".join(f"t={f} ({n} spots)" for f, n in too_few[:10])
    more = f" and {len(too_few) - 10} more" if len(too_few) > 10 else ""
    warnings.warn(
        f"{len(too_few)} of {n_frames} frame(s) have fewer than {max(min_spots, 3)} "
        f"kinetochores, too few to fit the metaphase plate: {listed}{more}. Their plate is "
        "left empty (NaN); pairing there uses the distance only.",
        PlateWarning,
        stacklevel=3,
    )


def _add_plate_position(table: pd.DataFrame) -> None:
    """``plate_position_um``: each centre's displacement along the mean normal."""
    centres = table[_CENTRE].to_numpy(dtype=float)
    normals = table[_NORMAL].to_numpy(dtype=float)
    valid = np.all(np.isfinite(normals), axis=1)
    if valid.any():
        mean_normal = normals[valid].mean(axis=0)
        mean_normal /= max(np.linalg.norm(mean_normal), 1e-12)
        mean_centre = centres[valid].mean(axis=0)
        table["plate_position_um"] = (centres - mean_centre) @ mean_normal


def plate_values_per_point(
    t: np.ndarray, plates: pd.DataFrame, columns: Sequence[str]
) -> np.ndarray:
    """Values of plate ``columns`` for each point's frame, NaN where the frame has none.

    Parameters
    ----------
    t : (N,) int array
        Frame of each point.
    plates : pandas.DataFrame
        Output of :func:`fit_plates`.
    columns : sequence of str
        Columns of ``plates``.

    Returns
    -------
    (N, len(columns)) float array
    """
    frames = np.asarray(t, dtype=np.int64)
    out = np.full((len(frames), len(columns)), np.nan)
    if len(plates) == 0 or len(frames) == 0:
        return out
    lookup = plates.set_index(plates["t"].astype(np.int64))[list(columns)]
    known = np.isin(frames, lookup.index.to_numpy())
    out[known] = lookup.loc[frames[known]].to_numpy(dtype=float)
    return out


def plate_normals_per_point(t: np.ndarray, plates: pd.DataFrame) -> np.ndarray:
    """Plate normal (z, y, x) of each point's frame, NaN where there is none.

    Parameters
    ----------
    t : (N,) int array
        Frame of each point.
    plates : pandas.DataFrame
        Output of :func:`fit_plates`.

    Returns
    -------
    (N, 3) float array
    """
    return plate_values_per_point(t, plates, _NORMAL)
