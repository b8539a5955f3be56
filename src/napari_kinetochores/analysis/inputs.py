"""Input checks and conversions shared by the analysis modules.

Every analysis function takes positions in µm, frames as whole numbers and
point tables in the package schema (``t, z, y, x`` in voxels). These helpers
turn their inputs into numpy arrays and raise
:class:`~napari_kinetochores.errors.InputError` with a message that says
what is wrong.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from napari_kinetochores.errors import InputError

__all__ = [
    "as_coords",
    "as_frames",
    "coords_um",
    "frame_groups",
    "frame_progress",
    "kinetochore_rows",
    "time_paired",
    "voxel_array",
]


def as_coords(coords: np.ndarray | Sequence[Sequence[float]], name: str) -> np.ndarray:
    """Positions as an (N, 3) float array (z, y, x) in µm; (0, 3) when empty.

    Examples
    --------
    >>> as_coords([[0, 1, 2]], "spots").shape
    (1, 3)
    """
    array = np.asarray(coords, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 3))
    if array.ndim != 2 or array.shape[1] != 3:
        raise InputError(f"{name} must have shape (N, 3) as (z, y, x) µm, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} contains NaN or infinite coordinates")
    return array


def as_frames(t: np.ndarray | Sequence[float] | None, n: int, name: str = "t") -> np.ndarray:
    """Frame numbers as an (n,) int array; all 0 when ``t`` is None.

    Raises
    ------
    InputError
        Wrong length, NaN, or values that are not whole numbers.

    Examples
    --------
    >>> as_frames([0.0, 2.0], 2).tolist()
    [0, 2]
    """
    if t is None:
        return np.zeros(n, dtype=np.int64)
    values = np.asarray(t, dtype=np.float64).reshape(-1)
    if values.shape != (n,):
        raise InputError(f"{name} must have one value per point ({n}), got {values.shape[0]}")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{name} contains NaN or infinite time points")
    frames = np.round(values)
    off = np.abs(values - frames) > 1e-6
    if np.any(off):
        raise InputError(f"time points must be whole frame numbers; found {values[off][0]!r}")
    return frames.astype(np.int64)


def voxel_array(voxel_size_um: Sequence[float]) -> np.ndarray:
    """A checked voxel size (z, y, x) in µm as a (3,) float array."""
    from napari_kinetochores.io import validate_voxel_size

    return np.asarray(validate_voxel_size(voxel_size_um), dtype=np.float64)


def coords_um(points: pd.DataFrame, voxel: np.ndarray) -> np.ndarray:
    """(N, 3) positions (z, y, x) in µm of a point table's ``z, y, x`` voxel columns."""
    missing = [c for c in ("z", "y", "x") if c not in points.columns]
    if missing:
        raise InputError(f"the point table lacks column(s) {', '.join(missing)}")
    return points[["z", "y", "x"]].to_numpy(dtype=np.float64) * voxel


def kinetochore_rows(
    points: pd.DataFrame, channel: int | None = 0, name: str = "the point table"
) -> np.ndarray:
    """Boolean mask of the kinetochore-channel rows of a point table.

    All rows when the table has no ``channel`` column or ``channel`` is None.

    Raises
    ------
    InputError
        A ``channel`` cell that is text (it would drop its row silently);
        ``name`` names the table.

    Examples
    --------
    >>> kinetochore_rows(pd.DataFrame({"channel": [0, 1, 0]})).tolist()
    [True, False, True]
    """
    if channel is None or "channel" not in points.columns:
        return np.ones(len(points), dtype=bool)
    cells = points["channel"]
    values = pd.to_numeric(cells, errors="coerce")
    text = values.isna() & cells.notna()
    if text.any():
        i = int(np.flatnonzero(text.to_numpy())[0])
        raise InputError(
            f"{name}: column 'channel' must hold channel numbers (0 = kinetochores); "
            f"row {i + 1} holds {cells.iloc[i]!r}"
        )
    return values.to_numpy() == channel


def time_paired(
    pred: pd.DataFrame, gt: pd.DataFrame, names: tuple[str, str] = ("prediction", "reference")
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two point tables to compare frame by frame, checked to agree on time.

    A table read from a file without a time column has
    ``attrs["has_time"] = False`` and ``t = 0`` (see
    :func:`~napari_kinetochores.io.read_points`); other tables count as
    timed. When exactly one table lacks time:

    * the other spans several frames: refused, since putting every point in
      frame 0 would silently give wrong metrics;
    * the other spans one frame: the time-less table is taken as that frame
      (a copy with ``t`` set to it) and a warning says so.

    Parameters
    ----------
    pred, gt
        Point tables with a ``t`` column.
    names
        How messages call the two tables.

    Returns
    -------
    tuple of pandas.DataFrame
        ``pred`` and ``gt``, one of them a re-timed copy where needed.

    Raises
    ------
    InputError
        One table has no time column and the other spans several frames.

    Examples
    --------
    >>> timed = pd.DataFrame({"t": [2.0], "z": [1.0], "y": [1.0], "x": [1.0]})
    >>> untimed = timed.assign(t=0.0)
    >>> untimed.attrs["has_time"] = False
    >>> import warnings; warnings.simplefilter("ignore")
    >>> time_paired(untimed, timed)[0]["t"].tolist()
    [2.0]
    """
    tables = [pred, gt]
    timed = [t.attrs.get("has_time", True) is not False for t in tables]
    if timed[0] == timed[1] or min(len(pred), len(gt)) == 0:
        return pred, gt
    k = timed.index(False)  # the table without time
    other = tables[1 - k]
    names = tuple(  # type: ignore[assignment]
        f"{n} ({t.attrs['path']})" if t.attrs.get("path") else n
        for n, t in zip(names, tables, strict=True)
    )
    frames = np.unique(np.round(other["t"].to_numpy(dtype=float)))
    if len(frames) > 1:
        raise InputError(
            f"the {names[k]} has no time column but the {names[1 - k]} spans "
            f"{len(frames)} frames ({frames[0]:g} to {frames[-1]:g}); add a 't' column "
            f"(frame numbers) to the {names[k]}, or compare one frame at a time"
        )
    warnings.warn(
        f"the {names[k]} has no time column; taking its points as frame {frames[0]:g}, "
        f"the only frame of the {names[1 - k]}",
        UserWarning,
        stacklevel=3,
    )
    tables[k] = tables[k].assign(t=float(frames[0]))
    tables[k].attrs["has_time"] = True
    return tables[0], tables[1]


def frame_groups(frames: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct frames (sorted) and the rows of each, in input order within a frame.

    Examples
    --------
    >>> uniq, rows = frame_groups(np.array([1, 0, 1]))
    >>> uniq.tolist(), [r.tolist() for r in rows]
    ([0, 1], [[1], [0, 2]])
    """
    order = np.argsort(frames, kind="stable")
    uniq = np.unique(frames)
    bounds = np.searchsorted(frames[order], uniq, side="left").tolist() + [len(frames)]
    return uniq, [order[bounds[k] : bounds[k + 1]] for k in range(len(uniq))]


def frame_progress(
    iterable: Iterable, enabled: bool, desc: str, total: int | None = None
) -> Iterable:
    """``iterable`` wrapped in a tqdm progress bar over frames when ``enabled``."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="frame", leave=False)
