"""Tracking with laptrack in µm: link accuracy on simulated movies, pairs along tracks."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kinetochores.analysis.measurements import pairing_accuracy, perturb_points
from napari_kinetochores.analysis.pairing import pair_table
from napari_kinetochores.analysis.tracking import (
    TrackingParams,
    consistent_pair_ids,
    link_accuracy,
    stable_pair_ids,
    track_points,
    track_table,
)
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import points_frame

VOXEL = (0.3, 0.13, 0.13)


@pytest.fixture(scope="module")
def fast_movie():
    """A plate oscillating fast (1 µm amplitude, 8-frame period: up to 0.8 µm per frame)."""
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    params = SimulationParams(
        n_frames=8,
        shape_zyx=(36, 112, 112),
        n_pairs=20,
        oscillation_amplitude_um=1.0,
        oscillation_period_frames=8.0,
        margin_um=0.2,
    )
    movie = simulate_movie(params, seed=21)
    det = perturb_points(movie.points, VOXEL, noise_nm=23.0, dropout=0.03, seed=8)
    return det[det["channel"] == 0].reset_index(drop=True)


def test_tracking_links_correctly_with_drift_correction(fast_movie):
    kin = fast_movie
    out = track_table(kin.drop(columns=["track_id", "pair_id"]), VOXEL)
    acc = link_accuracy(kin["t"], kin["track_id"], out["track_id"])
    assert acc["n_true_links"] > 250
    assert acc["link_recall"] >= 0.98
    assert acc["link_precision"] >= 0.98
    # one point per track and frame
    assert not out.duplicated(["track_id", "t"]).any()


def test_tracking_without_drift_correction_fails_on_fast_plates(fast_movie):
    """The drift correction is what makes fast oscillations trackable."""
    kin = fast_movie
    out = track_table(
        kin.drop(columns=["track_id"]), VOXEL, params=TrackingParams(drift_correction=False)
    )
    acc = link_accuracy(kin["t"], kin["track_id"], out["track_id"])
    assert acc["link_recall"] < 0.9


def test_gap_closing_bridges_missed_frames():
    t = np.array([0, 1, 3, 4, 6])  # frames 2 and 5 missed
    pts = np.column_stack([np.zeros(5), 0.05 * t, np.zeros(5)])
    assert len(set(track_points(t, pts))) == 1
    no_gaps = TrackingParams(max_gap_frames=0)
    assert len(set(track_points(t, pts, no_gaps))) == 3


def test_pairs_stay_consistent_along_tracks(fast_movie):
    kin = fast_movie
    # per-frame pairing first, then tracking: pair ids become per track
    paired = pair_table(kin.drop(columns=["pair_id", "track_id"]), VOXEL)
    tracked = track_table(paired, VOXEL)
    assert (tracked.groupby("track_id")["pair_id"].nunique() == 1).all()
    acc = pairing_accuracy(kin["t"], kin["pair_id"], tracked["pair_id"])
    assert acc["pair_recall"] >= 0.98


def test_consistent_pair_ids_majority_vote():
    t = np.repeat(np.arange(5), 3)
    tracks = np.tile([0, 1, 2], 5)
    # tracks 0 and 1 are paired in 4 frames; in frame 2 a mistake pairs 1 and 2
    pair = np.array([7, 7, -1] * 2 + [-1, 9, 9] + [7, 7, -1] * 2)
    out = consistent_pair_ids(t, tracks, pair)
    assert out.tolist() == [7, 7, -1] * 5


def test_rows_in_any_order_give_the_same_tracks(fast_movie):
    kin = fast_movie.drop(columns=["track_id", "pair_id"])
    a = track_table(kin, VOXEL)["track_id"]
    b = track_table(kin.sample(frac=1.0, random_state=1), VOXEL)["track_id"].loc[a.index]
    # same partition of the points into tracks (ids may differ)
    assert (a.groupby(b).nunique() == 1).all() and (b.groupby(a).nunique() == 1).all()


def test_refuses_points_without_time_column(tmp_path):
    from napari_kinetochores.io import read_points

    path = tmp_path / "no_time.csv"
    path.write_text("z,y,x\n10,20,20\n11,21,20\n")
    points = read_points(path, voxel_size_um=VOXEL)
    assert points.attrs["has_time"] is False
    with pytest.raises(InputError, match="no time column"):
        track_table(points, VOXEL)
    with pytest.raises(InputError, match="no time column"):
        track_table(points.drop(columns=["t"]), VOXEL)
    with pytest.raises(InputError, match="whole frame"):
        track_points([0.5, 1], np.zeros((2, 3)))


def test_other_channel_inherits_track_ids():
    e = [[t, 10, 20 + t, 20] for t in range(3)]
    m = [[t, 10.2, 20 + t, 20] for t in range(3)]
    df = points_frame(e + m, VOXEL, channel=[0] * 3 + [1] * 3)
    out = track_table(df, VOXEL)
    assert out["track_id"].tolist() == [0, 0, 0, 0, 0, 0]


def test_stable_pair_ids_merge_single_frame_ids_and_never_change_partners():
    t = np.repeat([0, 1, 2], 4)
    tracks = np.tile([0, 1, 2, 3], 3)
    # frame 0: 0-1 (id 3), 2-3 (id 4); frame 1: the same pairs, new ids; frame 2: 0-2 re-paired
    pair = np.array([3, 3, 4, 4, 10, 10, 11, 11, 20, 21, 20, 21])
    out = stable_pair_ids(t, tracks, pair)
    assert out[:8].tolist() == [3, 3, 4, 4, 3, 3, 4, 4]
    # frame 2 pairs other tracks (0-2, 1-3): new partners keep their own ids
    assert out[8:].tolist() == [20, 21, 20, 21]
    # ids that already span frames are left alone, and single-frame ids join them
    pair = np.array([7, 7, -1, -1, 7, 7, 12, 12, 30, 30, 12, 12])
    assert stable_pair_ids(t, tracks, pair).tolist() == [7, 7, -1, -1, 7, 7, 12, 12, 7, 7, 12, 12]
    # untracked rows keep what they have
    assert stable_pair_ids([0, 0, 1, 1], [0, -1, 0, -1], [3, 3, 8, 8]).tolist() == [3, 3, 8, 8]
    with pytest.raises(InputError, match="same length"):
        stable_pair_ids([0, 0], [0], [1, 1])
