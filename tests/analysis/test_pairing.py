"""Sister pairing, against simulated ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kinetochores.analysis.measurements import pairing_accuracy
from napari_kinetochores.analysis.pairing import (
    REASON_LOST,
    REASON_NO_PARTNER,
    REASON_PAIRED,
    PairingParams,
    pair_sisters,
    pair_table,
    sister_rows,
)
from napari_kinetochores.errors import InputError

VOXEL = (0.3, 0.13, 0.13)


def test_per_frame_pairing_recovers_true_pairs(noisy):
    kin = noisy[noisy["channel"] == 0].reset_index(drop=True)
    out = pair_table(kin.drop(columns=["pair_id", "track_id"]), VOXEL)
    acc = pairing_accuracy(kin["t"], kin["pair_id"], out["pair_id"])
    assert acc["n_true_pairs"] > 120
    assert acc["pair_recall"] >= 0.97
    assert acc["pair_precision"] >= 0.97
    # every unpaired kinetochore says why
    unpaired = out[out["pair_id"] < 0]
    assert set(unpaired["pair_reason"]) <= {REASON_NO_PARTNER, REASON_LOST}
    assert (out.loc[out["pair_id"] >= 0, "pair_reason"] == REASON_PAIRED).all()
    # a kinetochore whose sister dropped out has no partner or lost it
    lone = kin.groupby(["t", "pair_id"])["x"].transform("size") == 1
    assert (out.loc[lone.to_numpy(), "pair_id"] < 0).mean() >= 0.5


def test_track_pairing_gives_one_pair_id_per_track(noisy):
    kin = noisy[noisy["channel"] == 0].reset_index(drop=True)
    out = pair_table(kin.drop(columns=["pair_id"]), VOXEL)  # true track_id kept
    acc = pairing_accuracy(kin["t"], kin["pair_id"], out["pair_id"])
    assert acc["pair_recall"] == 1.0
    assert acc["pair_precision"] == 1.0
    assert (out.groupby("track_id")["pair_id"].nunique() == 1).all()
    paired = out[out["pair_id"] >= 0]
    assert (paired.groupby("pair_id")["track_id"].nunique() == 2).all()


def test_track_fragments_join_their_pair():
    """A sister whose track broke in two keeps its pair on both fragments."""
    t = np.repeat(np.arange(6), 2)
    pts = np.zeros((12, 3))
    pts[1::2, 0] = 0.9  # sister B along the normal
    pts[:, 1] = 0.02 * t  # slow drift
    track = np.tile([0, 1], 6)
    track[1::2][3:] = 2  # B's track breaks after frame 2: tracks 1 and 2
    res = pair_sisters(pts, t, track_id=track, normals=np.tile([1.0, 0, 0], (12, 1)))
    assert res.n_pairs == 1
    assert set(res.pair_id) == {0}
    assert list(res.partner[:4]) == [1, 0, 3, 2]


def test_global_matching_beats_greedy():
    """A greedy closest-first pairing takes b–c (0.95 µm) and strands a and d."""
    normal = np.tile([1.0, 0, 0], (4, 1))
    pts = np.array([[0, 0, 0], [1.0, 0, 0], [1.0, 0, 0.95], [2.0, 0, 0.95]])
    # a–b and c–d are along the normal; b–c is in the plate
    res = pair_sisters(pts, normals=normal)
    assert res.pair_id.tolist() == [0, 0, 1, 1]
    # without the plate, distance alone: still both pairs (a–b, c–d) beat b–c alone
    res = pair_sisters(pts, params=PairingParams(use_plate=False))
    assert res.n_pairs == 2


def test_window_and_reasons():
    pts = np.array([[0, 0, 0], [0.2, 0, 0], [5, 5, 5.0]])
    res = pair_sisters(pts, params=PairingParams(use_plate=False))
    assert res.pair_id.tolist() == [-1, -1, -1]  # 0.2 µm is below the window
    assert set(res.reason) == {REASON_NO_PARTNER}
    # three in a row: one must be left out of the optimal assignment
    pts = np.array([[0, 0, 0], [0.95, 0, 0], [1.9, 0, 0]])
    res = pair_sisters(pts, params=PairingParams(use_plate=False))
    assert res.n_pairs == 1
    assert sorted(res.reason.tolist()).count(REASON_LOST) == 1


def test_pairing_is_independent_of_row_order(noisy):
    kin = noisy[noisy["channel"] == 0].drop(columns=["pair_id", "track_id"])
    a = pair_table(kin, VOXEL)
    b = pair_table(kin.sample(frac=1.0, random_state=3), VOXEL).loc[a.index]
    same_a = sister_rows(a["t"], a["pair_id"])
    same_b = sister_rows(b["t"], b["pair_id"])
    np.testing.assert_array_equal(
        a.index[same_a.clip(0)][same_a >= 0], b.index[same_b.clip(0)][same_b >= 0]
    )


def test_bad_input():
    with pytest.raises(InputError, match="window"):
        PairingParams(min_distance_um=2.0, max_distance_um=1.0)
    with pytest.raises(InputError, match="whole frame"):
        pair_sisters(np.zeros((2, 3)), [0, 0.5])
    with pytest.raises(InputError, match="shape"):
        pair_sisters(np.zeros((2, 2)))
    with pytest.raises(InputError, match="at most one point per frame"):
        pair_sisters(np.zeros((2, 3)), [0, 0], track_id=[3, 3])
