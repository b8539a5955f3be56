"""Input checks and conversions shared by the analysis modules.

Every analysis function takes positions in µm, frames as whole numbers and
point tables in the package schema (``t, z, y, x`` in voxels). These helpers
turn their inputs into numpy arrays and raise
:class:`~napari_kinetochores.errors.InputError` with a message that says
what is wrong.
"""

from __future__ import annotations

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


def kinetochore_rows(points: pd.DataFrame, channel: int | None = 0) -> np.ndarray:
    """Boolean mask of the kinetochore-channel rows of a point table.

    All rows when the table has no ``channel`` column or ``channel`` is None.

    Examples
    --------
    >>> kinetochore_rows(pd.DataFrame({"channel": [0, 1, 0]})).tolist()
    [True, False, True]
    """
    if channel is None or "channel" not in points.columns:
        return np.ones(len(points), dtype=bool)
    values = pd.to_numeric(points["channel"], errors="coerce").to_numpy()
    return values == channel


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
