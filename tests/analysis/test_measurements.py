"""The measurement pipeline: the rule for existing ids, measure_points, the sister-pair export."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kinetochores.analysis.measurements import (
    has_ids,
    measure_points,
    measure_table,
    pairing_accuracy,
    perturb_points,
    sister_pairs_table,
    track_and_pair,
)
from napari_kinetochores.analysis.pairing import PairingParams, pair_table, sister_rows
from napari_kinetochores.analysis.tracking import track_table

VOXEL = (0.3, 0.13, 0.13)


@pytest.fixture(scope="module")
def detections(movie):
    """Both channels, 23 nm noise per axis, 3 % dropouts, no ids."""
    det = perturb_points(movie.points, VOXEL, noise_nm=23.0, dropout=0.03, seed=2)
    return det.drop(columns=["pair_id", "track_id", "true_row"]), det


def test_computed_ids_are_tracks_and_pairs_of_whole_tracks(detections):
    det, truth = detections
    out = track_and_pair(det, VOXEL)
    assert out.attrs == {"pairs_from_input": False, "tracks_from_input": False}
    assert out.index.equals(det.index)
    # the same as tracking then pairing by hand, as the docs show
    expected = pair_table(track_table(det, VOXEL), VOXEL)
    np.testing.assert_array_equal(out["pair_id"], expected["pair_id"])
    kin = (det["channel"] == 0).to_numpy()
    acc = pairing_accuracy(det["t"][kin], truth["pair_id"][kin], out["pair_id"][kin])
    assert acc["pair_recall"] >= 0.97
    assert (out[kin].groupby("pair_id")["t"].nunique() > 1).mean() > 0.9


def test_existing_pairs_are_kept_unless_recomputed(detections):
    det, truth = detections
    given = det.assign(pair_id=truth["pair_id"], track_id=truth["track_id"])
    out = track_and_pair(given, VOXEL)
    assert out.attrs == {"pairs_from_input": True, "tracks_from_input": True}
    np.testing.assert_array_equal(out["pair_id"], truth["pair_id"])  # already stable: unchanged
    np.testing.assert_array_equal(out["track_id"], truth["track_id"])
    # hand-assigned (a new id per frame), no tracks: the partners stay, one id per pair of tracks
    hand = det.assign(pair_id=truth["pair_id"] + 1000 * truth["t"].astype(int))
    out = track_and_pair(hand, VOXEL)
    assert out.attrs["pairs_from_input"] and not out.attrs["tracks_from_input"]
    kin = (det["channel"] == 0).to_numpy()
    assert pairing_accuracy(det["t"][kin], hand["pair_id"][kin], out["pair_id"][kin]) == (
        pairing_accuracy(det["t"][kin], hand["pair_id"][kin], hand["pair_id"][kin])
    )
    assert out["pair_id"][kin].nunique() < 0.3 * hand["pair_id"][kin].nunique()
    # recompute ignores them; an all -1 column (as Correct labels adds) counts as none
    wrong = det.assign(pair_id=np.arange(len(det)) // 2)
    kept = track_and_pair(wrong, VOXEL)["pair_id"]
    np.testing.assert_array_equal(
        sister_rows(det["t"], kept), sister_rows(det["t"], wrong["pair_id"])
    )
    recomputed = track_and_pair(wrong, VOXEL, recompute=True)
    np.testing.assert_array_equal(recomputed["pair_id"], track_and_pair(det, VOXEL)["pair_id"])
    assert not has_ids(det.assign(pair_id=-1), "pair_id")
    empty_ids = track_and_pair(det.assign(pair_id=-1), VOXEL)
    np.testing.assert_array_equal(empty_ids["pair_id"], track_and_pair(det, VOXEL)["pair_id"])


def test_measure_points_is_measure_table_on_the_pipelines_ids(detections):
    det, _ = detections
    pairing = PairingParams(max_distance_um=1.3)
    result = measure_points(det, VOXEL, pairing=pairing)
    ids = track_and_pair(det, VOXEL, pairing=pairing)
    expected = measure_table(ids, VOXEL)
    assert result.table.equals(expected)
    assert result.points["pair_id"].equals(ids["pair_id"])
    assert result.plates.equals(expected.attrs["plates"])
    text = result.summary()
    assert "pairs (paired)" in text and "delta median" in text
    # without tracking (or with one frame) pairs are made frame by frame
    untracked = measure_points(det, VOXEL, track=False)
    assert (untracked.table["track_id"] == -1).all()
    paired = untracked.table[untracked.table["pair_id"] >= 0]
    assert paired.groupby("pair_id")["t"].nunique().max() == 1


def test_sister_pairs_table_has_one_id_per_pair_over_frames(detections):
    det, truth = detections
    pairs = sister_pairs_table(det, VOXEL)
    assert (pairs["pair_id"] >= 0).all()
    assert pairs["t"].is_monotonic_increasing
    n_true = truth.loc[truth["channel"] == 0, "pair_id"].nunique()
    assert n_true <= pairs["pair_id"].nunique() <= n_true + 3
    assert set(pairs["channel"]) == {0, 1}  # mCherry spots follow their kinetochore
    assert pairs.groupby(["t", "channel", "pair_id"]).size().max() == 2
