"""Two-colour delta and chromatic shift, against simulated ground truth."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from napari_kinetochores.analysis.delta import match_other_channel, two_colour_delta
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import points_frame

VOXEL = (0.3, 0.13, 0.13)


def _channels(table: pd.DataFrame):
    e = table[table["channel"] == 0].reset_index(drop=True)
    m = table[table["channel"] == 1].reset_index(drop=True)
    return e, m


def test_delta_recovers_truth_and_estimates_chromatic_shift(movie, noisy):
    shift_nm = np.array([120.0, -70.0, 40.0])
    e, m = _channels(noisy)
    m = m.copy()
    m[["z", "y", "x"]] += shift_nm / 1000.0 / np.array(VOXEL)
    e_tzyx, m_tzyx = e[["t", "z", "y", "x"]].to_numpy(), m[["t", "z", "y", "x"]].to_numpy()
    # from the spots alone (the median over spots) ...
    res = two_colour_delta(e_tzyx, m_tzyx, VOXEL)
    assert res.shift_estimated
    np.testing.assert_allclose(res.shift_nm, shift_nm, atol=20.0)
    # ... and, tighter, over sister pairs, whose true deltas cancel
    res = two_colour_delta(e_tzyx, m_tzyx, VOXEL, egfp_pair_id=e["pair_id"])
    np.testing.assert_allclose(res.shift_nm, shift_nm, atol=8.0)
    # one-to-one, and each EGFP spot is matched to its own mCherry spot
    assert len(set(res.egfp_index)) == len(res.egfp_index) == len(set(res.mcherry_index))
    same = e["track_id"].to_numpy()[res.egfp_index] == m["track_id"].to_numpy()[res.mcherry_index]
    assert same.mean() > 0.99
    assert len(res.egfp_index) > 0.9 * min(len(e), len(m))
    # the per-frame error is set by the noise: sqrt(2) * 23 nm per axis
    truth = movie.points.set_index(["t", "channel", "track_id"])[["z_um", "y_um", "x_um"]]
    te = truth.loc[[(t, 0, k) for t, k in zip(e["t"], e["track_id"], strict=True)]].to_numpy()
    tm = truth.loc[[(t, 1, k) for t, k in zip(m["t"], m["track_id"], strict=True)]].to_numpy()
    true_delta = (tm[res.mcherry_index] - te[res.egfp_index]) * 1000
    err = np.linalg.norm(res.delta_nm - true_delta, axis=1)
    assert 35 < np.median(err) < 65
    assert np.median(res.norm_nm) == pytest.approx(movie.params.mcherry_offset_nm, abs=35)


def test_delta_without_noise_is_exact(movie):
    e, m = _channels(movie.points)
    res = two_colour_delta(
        e[["t", "z", "y", "x"]].to_numpy(),
        m[["t", "z", "y", "x"]].to_numpy(),
        VOXEL,
        chromatic_shift_nm=(0, 0, 0),
    )
    assert not res.shift_estimated
    assert len(res.egfp_index) == len(e)
    np.testing.assert_allclose(res.norm_nm, movie.params.mcherry_offset_nm, atol=1e-6)


def test_delta_given_shift_and_bad_cutoff():
    egfp = np.array([[0, 10, 20, 20]], dtype=float)
    mch = egfp + [0, 1.0, 0, 0]  # 300 nm in z: beyond the 0.25 µm cutoff ...
    res = two_colour_delta(egfp, mch, VOXEL, chromatic_shift_nm=(0, 0, 0))
    assert len(res.egfp_index) == 0
    res = two_colour_delta(egfp, mch, VOXEL, chromatic_shift_nm=(250, 0, 0))  # ... unless corrected
    np.testing.assert_allclose(res.delta_nm, [[50.0, 0, 0]], atol=1e-9)
    with pytest.raises(InputError, match="cutoff"):
        two_colour_delta(egfp, mch, VOXEL, cutoff_um=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(two_colour_delta(egfp, np.zeros((0, 4)), VOXEL).egfp_index) == 0


def test_match_other_channel_returns_positions_into_both_row_lists():
    table = points_frame(
        [[0, 10, 20, 20], [0, 10, 60, 60], [0, 10, 60.3, 60], [0, 10, 20.2, 20]],
        VOXEL,
        channel=[0, 0, 1, 1],
    )
    ik, io = match_other_channel(table, np.array([0, 1]), np.array([2, 3]), np.array(VOXEL))
    assert sorted(zip(ik.tolist(), io.tolist(), strict=True)) == [(0, 1), (1, 0)]
