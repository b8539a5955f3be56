"""Two-colour delta: the EGFP → mCherry vector of each kinetochore, in nm.

:func:`two_colour_delta` pairs EGFP with mCherry spots one-to-one within a
small cutoff (default 0.25 µm) with
:func:`napari_kinetochores.analysis.matching.match_points`, after removing
the chromatic shift: the median mCherry − EGFP offset estimated from the data
(true deltas point outwards, so they cancel between sisters), or one given by
the user. The delta is the corrected 3D vector mCherry − EGFP in nm.

:func:`match_other_channel` uses the same matching to let the rows of a
second channel inherit the ids (pair, track) of the kinetochore they belong to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from napari_kinetochores.analysis.inputs import as_frames, frame_progress, voxel_array
from napari_kinetochores.analysis.pairing import sister_rows
from napari_kinetochores.errors import InputError

__all__ = [
    "DEFAULT_DELTA_CUTOFF_UM",
    "DeltaResult",
    "match_other_channel",
    "two_colour_delta",
]

DEFAULT_DELTA_CUTOFF_UM = 0.25
"""Largest EGFP–mCherry distance (µm, after chromatic correction) that pairs."""


@dataclass
class DeltaResult:
    """EGFP–mCherry pairs and their delta vectors.

    Attributes
    ----------
    egfp_index, mcherry_index : (K,) int arrays
        Matched rows of the EGFP and the mCherry inputs.
    delta_nm : (K, 3) float array
        mCherry − EGFP − chromatic shift, (z, y, x) in nm.
    shift_nm : (3,) float array
        Chromatic shift (mCherry − EGFP) removed, (z, y, x) in nm.
    shift_estimated : bool
        The shift was estimated from the data (median offset).
    n_egfp, n_mcherry : int
    """

    egfp_index: np.ndarray
    mcherry_index: np.ndarray
    delta_nm: np.ndarray
    shift_nm: np.ndarray
    shift_estimated: bool
    n_egfp: int
    n_mcherry: int

    @property
    def norm_nm(self) -> np.ndarray:
        """(K,) length of each delta vector in nm."""
        return np.linalg.norm(self.delta_nm, axis=1)


def _match_frames(
    egfp: np.ndarray,
    mch: np.ndarray,
    voxel: np.ndarray,
    cutoff_um: float,
    shift_um: np.ndarray,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``egfp`` and ``mch`` (t, z, y, x voxels) matched one-to-one per frame."""
    from napari_kinetochores.analysis.matching import match_points

    fe = as_frames(egfp[:, 0], len(egfp))
    fm = as_frames(mch[:, 0], len(mch))
    shift_vox = shift_um / voxel
    out_e, out_m = [], []
    common = np.intersect1d(np.unique(fe), np.unique(fm))
    for frame in frame_progress(common, progress, "delta"):
        ie = np.flatnonzero(fe == frame)
        im = np.flatnonzero(fm == frame)
        res = match_points(egfp[ie, 1:] + shift_vox, mch[im, 1:], voxel, cutoff_um)
        out_e.append(ie[res.pred_indices])
        out_m.append(im[res.gt_indices])
    if not out_e:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(out_e).astype(np.int64), np.concatenate(out_m).astype(np.int64)


def _median_shift(offsets: np.ndarray, t: np.ndarray, pair: np.ndarray | None) -> np.ndarray:
    """Median offset (µm): over sister pairs of their mean offset when possible."""
    if pair is not None:
        partner = sister_rows(t, pair)
        first = np.flatnonzero(partner > np.arange(len(partner)))
        if len(first) >= 3:
            return np.median((offsets[first] + offsets[partner[first]]) / 2.0, axis=0)
    return np.median(offsets, axis=0)


def _estimate_shift(
    egfp: np.ndarray,
    mch: np.ndarray,
    voxel: np.ndarray,
    cutoff_um: float,
    search_um: float | None,
    egfp_pair_id: np.ndarray | Sequence[int] | None,
) -> np.ndarray:
    """Chromatic shift (µm): median offset of a wide matching, refined twice at the cutoff."""
    shift_um = np.zeros(3)
    radius = max(2.0 * cutoff_um, 0.5) if search_um is None else float(search_um)
    pairs = None
    if egfp_pair_id is not None:
        pairs = np.asarray(egfp_pair_id, dtype=np.int64).reshape(-1)
        if pairs.shape != (len(egfp),):
            raise InputError(f"egfp_pair_id must have one value per EGFP spot ({len(egfp)})")
    for r in (radius, cutoff_um, cutoff_um):
        ie, im = _match_frames(egfp, mch, voxel, r, shift_um)
        if len(ie) == 0:
            break
        offsets = (mch[im, 1:] - egfp[ie, 1:]) * voxel
        shift_um = _median_shift(offsets, egfp[ie, 0], None if pairs is None else pairs[ie])
    return shift_um


def _spots(tzyx: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(tzyx, dtype=np.float64).reshape(-1, 4)
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} contain NaN or infinite coordinates")
    return array


def two_colour_delta(
    egfp_tzyx: np.ndarray,
    mcherry_tzyx: np.ndarray,
    voxel_size_um: Sequence[float],
    *,
    cutoff_um: float = DEFAULT_DELTA_CUTOFF_UM,
    chromatic_shift_nm: Sequence[float] | None = None,
    search_um: float | None = None,
    egfp_pair_id: np.ndarray | Sequence[int] | None = None,
    progress: bool = False,
) -> DeltaResult:
    """Pair EGFP with mCherry spots one-to-one and measure the delta in nm.

    With no ``chromatic_shift_nm`` the shift is estimated from the data: a
    first one-to-one matching within ``search_um`` (default
    ``max(2 × cutoff, 0.5 µm)``), the median offset, then the final matching
    within ``cutoff_um`` after removing it, and the median again (twice).
    When sister pairs are known (``egfp_pair_id``), the median is taken over
    the pairs of the mean offset of the two sisters: their true deltas point
    in opposite directions and cancel, so the estimate does not depend on how
    the deltas are oriented (with at least 3 such pairs; else over spots).

    Parameters
    ----------
    egfp_tzyx : (N, 4) array
        EGFP spots (t, z, y, x) in voxels.
    mcherry_tzyx : (M, 4) array
        mCherry spots (t, z, y, x) in voxels.
    voxel_size_um : (3,) sequence
        Voxel size (z, y, x) in µm.
    cutoff_um : float
        Largest EGFP–mCherry distance (after correction) that pairs, in µm.
    chromatic_shift_nm : (3,) sequence, optional
        Known chromatic shift mCherry − EGFP, (z, y, x) in nm.
    search_um : float, optional
        Search radius of the first matching used to estimate the shift.
    egfp_pair_id : (N,) int array, optional
        Sister-pair id of each EGFP spot (-1: unpaired), for the estimate.
    progress : bool
        tqdm progress bar over frames.

    Returns
    -------
    DeltaResult

    Examples
    --------
    >>> egfp = np.array([[0, 10, 20, 20], [0, 10, 40, 40]], dtype=float)
    >>> mch = egfp + [0, 0, 0.5, 0]  # 65 nm along y
    >>> res = two_colour_delta(egfp, mch, (0.3, 0.13, 0.13), chromatic_shift_nm=(0, 0, 0))
    >>> np.round(res.delta_nm, 1).tolist()
    [[0.0, 65.0, 0.0], [0.0, 65.0, 0.0]]
    """
    voxel = voxel_array(voxel_size_um)
    if not cutoff_um > 0:
        raise InputError(f"the delta cutoff must be > 0 µm, got {cutoff_um}")
    egfp = _spots(egfp_tzyx, "EGFP spots")
    mch = _spots(mcherry_tzyx, "mCherry spots")
    estimated = chromatic_shift_nm is None
    if estimated:
        shift_um = _estimate_shift(egfp, mch, voxel, cutoff_um, search_um, egfp_pair_id)
    else:
        shift_um = np.asarray(chromatic_shift_nm, dtype=np.float64).reshape(3) / 1000.0
        if not np.all(np.isfinite(shift_um)):
            raise InputError(
                f"the chromatic shift must be 3 finite numbers, got {chromatic_shift_nm}"
            )
    ie, im = _match_frames(egfp, mch, voxel, cutoff_um, shift_um, progress)
    delta_um = (mch[im, 1:] - egfp[ie, 1:]) * voxel - shift_um
    order = np.lexsort((ie,))
    return DeltaResult(
        egfp_index=ie[order],
        mcherry_index=im[order],
        delta_nm=delta_um[order] * 1000.0,
        shift_nm=shift_um * 1000.0,
        shift_estimated=estimated,
        n_egfp=len(egfp),
        n_mcherry=len(mch),
    )


def match_other_channel(
    table: pd.DataFrame, k_rows: np.ndarray, o_rows: np.ndarray, voxel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Kinetochore and other-channel rows of a point table that belong together.

    Parameters
    ----------
    table : pandas.DataFrame
        Point table (``t, z, y, x`` voxels).
    k_rows, o_rows : int arrays
        Row positions of the kinetochores and of the other channel's spots.
    voxel : (3,) array
        Voxel size (z, y, x) in µm.

    Returns
    -------
    (K,) int array, (K,) int array
        Positions into ``k_rows`` and ``o_rows`` of the matched rows, pairwise
        (:func:`two_colour_delta` with its defaults).
    """
    cols = ["t", "z", "y", "x"]
    k = table.iloc[k_rows][cols].to_numpy(dtype=float)
    o = table.iloc[o_rows][cols].to_numpy(dtype=float)
    res = two_colour_delta(k, o, voxel)
    return res.egfp_index, res.mcherry_index
