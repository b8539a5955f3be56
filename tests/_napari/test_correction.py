"""CorrectionSession and snap_click without Qt: statuses, undo, autosave, restore, snapping."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_kinetochores._napari.correction import CorrectionSession, snap_click
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import read_points

VOXEL = (0.3, 0.13, 0.13)
PSF_SIGMA_VOXELS = (1.0, 0.77, 0.77)  # 0.30, 0.10, 0.10 µm


def gaussian(shape, centre, sigma):
    grids = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return np.exp(
        -0.5 * sum(((g - c) / s) ** 2 for g, c, s in zip(grids, centre, sigma, strict=True))
    )


def two_spots(offset_voxels, seed):
    """A bright spot and one half as bright ``offset_voxels`` from it, with Poisson noise."""
    shape = (15, 41, 41)
    bright = np.array([7.0, 20.0, 20.0])
    dim = bright + np.asarray(offset_voxels, float)
    image = 100 + 800 * gaussian(shape, bright, PSF_SIGMA_VOXELS)
    image = image + 400 * gaussian(shape, dim, PSF_SIGMA_VOXELS)
    return np.random.default_rng(seed).poisson(image).astype(float), bright, dim


def distance_um(a, b):
    return float(np.linalg.norm((np.asarray(a) - np.asarray(b)) * VOXEL))


@pytest.mark.parametrize("offset", [(0, 0, 2.7), (0, 2, 2)])  # 0.35 and 0.37 µm, in y/x
def test_a_click_on_a_dimmer_spot_beside_a_brighter_one_stays_on_it(offset):
    for seed in range(10):
        image, bright, dim = two_spots(offset, seed)
        assert 0.34 < distance_um(bright, dim) < 0.38
        snap = snap_click(image, dim, VOXEL)
        assert snap.snapped
        assert distance_um(snap.point_zyx, dim) < 0.06
        assert distance_um(snap.point_zyx, bright) > 0.3


def test_snapping_never_lands_on_an_existing_detection():
    """The issue's case: the brighter neighbour is detected; the click on the dimmer one stays."""
    for offset in [(0, 0, 2.7), (1, 0, 1.4)]:  # the second one the image cannot resolve
        image, bright, dim = two_spots(offset, seed=1)
        snap = snap_click(image, dim, VOXEL, others_zyx=np.array([bright]))
        assert distance_um(snap.point_zyx, bright) > 0.3  # no duplicate of the detection
        assert distance_um(snap.point_zyx, dim) < 0.06
        if not snap.snapped:
            assert "already has a point" in snap.reason and "click is kept" in snap.reason
    # a click on the detection itself is kept where it is, with the reason
    snap = snap_click(image, bright + 0.3, VOXEL, others_zyx=np.array([bright]))
    assert not snap.snapped and "already has a point" in snap.reason
    np.testing.assert_allclose(snap.point_zyx, bright + 0.3)
    flat = snap_click(np.zeros((9, 21, 21)), (4, 10, 10), VOXEL)
    assert not flat.snapped and "no spot" in flat.reason


def session_with_points(tmp_path, ndim=4):
    data = np.array([[0, 5, 10, 10], [0, 6, 20, 20], [1, 5, 10, 12], [1, 7, 30, 30.0]])[
        :, 4 - ndim :
    ]
    features = pd.DataFrame({"score": [0.9, 0.8, 0.7, 0.6]})
    session = CorrectionSession(tmp_path / "movie.detections.corrections", VOXEL, ndim)
    assert session.begin(data, features) == ""
    return session, data


def test_statuses_pairs_and_undo(tmp_path):
    session, data = session_with_points(tmp_path)
    assert session.path.suffix == ".csv" and session.path.is_file()
    assert session.counts() == {"auto": 4, "added": 0, "moved": 0, "deleted": 0}

    added = np.vstack([session.data, [1, 6, 15, 15]])
    features = pd.concat([session.features, pd.DataFrame({"score": [0.5]})], ignore_index=True)
    session.add(added, features, [4])
    assert session.features["status"].iloc[4] == "added"
    assert np.isnan(session.features["score"].iloc[4]) and session.features["pair_id"].iloc[4] == -1

    moved = session.data.copy()
    moved[[0, 4], 2] += 1.0
    assert session.move(moved) == 2
    assert session.features["status"].tolist() == ["moved", "auto", "auto", "auto", "added"]
    assert session.move(moved) == 0  # nothing moved: no new undo step
    depth = len(session.undo_stack)

    with pytest.raises(InputError, match="same frame"):
        session.pair([0, 2])
    with pytest.raises(InputError, match="exactly two"):
        session.pair([0])
    pair = session.pair([2, 3])
    assert session.features["pair_id"].iloc[[2, 3]].tolist() == [pair, pair]
    session.unpair([3])
    assert session.features["pair_id"].iloc[3] == -1

    session.delete([1, 4])  # a detection (kept as deleted) and an added point (just gone)
    assert len(session.data) == 3 and session.deleted["status"].tolist() == ["deleted"]
    np.testing.assert_allclose(session.deleted[["t", "z", "y", "x"]], [data[1]])
    assert session.counts() == {"auto": 2, "added": 0, "moved": 1, "deleted": 1}

    assert session.undo() and session.undo() and session.undo()  # delete, unpair, pair
    assert len(session.undo_stack) == depth and len(session.data) == 5
    assert (session.features["pair_id"] == -1).all() and session.deleted.empty
    while session.undo():
        pass
    np.testing.assert_allclose(session.data, data)
    assert set(session.features["status"]) == {"auto"}


def test_every_change_is_saved_and_a_new_session_restores_it(tmp_path):
    session, data = session_with_points(tmp_path, ndim=3)
    moved = session.data.copy()
    moved[0] += 0.5
    session.move(moved)
    session.pair([1, 2])
    session.delete([3])
    saved = read_points(session.path, voxel_size_um=VOXEL)
    assert saved["status"].tolist() == ["moved", "auto", "auto", "deleted"]
    assert (saved["t"] == 0).all()
    assert not list(tmp_path.glob(".*tmp"))  # written atomically

    again = CorrectionSession(session.path, VOXEL, 3)
    message = again.begin(data, pd.DataFrame({"score": np.ones(len(data))}))
    assert message == "restored 3 points (2 corrections) from movie.detections.corrections.csv"
    np.testing.assert_allclose(again.data, session.data)
    assert again.features["status"].tolist() == session.features["status"].tolist()
    assert again.features["pair_id"].tolist() == session.features["pair_id"].tolist()
    assert len(again.deleted) == 1 and again.counts() == session.counts()
    fresh = CorrectionSession(session.path, VOXEL, 3)
    assert fresh.begin(data, pd.DataFrame(index=range(len(data))), restore=False) == ""
    assert len(fresh.data) == 4 and fresh.deleted.empty
    with pytest.raises(InputError, match="2-D"):
        CorrectionSession(session.path, VOXEL, 2)


def test_next_uncertain_hands_out_detections_and_candidates_nearest_the_threshold(tmp_path):
    shape, sigma = (10, 40, 40), (1.0, 1.5, 1.5)
    data = np.array([[0, 5, 10, 10], [0, 5, 30, 30], [1, 5, 10, 10], [1, 5, 30, 10.0]])
    features = pd.DataFrame({"score": [0.95, 0.34, 0.5, 0.9]})
    session = CorrectionSession(tmp_path / "review.csv", VOXEL, 4)
    session.begin(data, features)
    score_map = np.zeros((2, *shape), np.float32)
    for t, z, y, x in data.astype(int):
        score_map[t] += 0.9 * gaussian(shape, (z, y, x), sigma)
    score_map[0] += 0.18 * gaussian(shape, (4, 30, 10), sigma)  # two missed spots
    score_map[1] += 0.22 * gaussian(shape, (6, 20, 30), sigma)

    session.delete([3])  # a false detection: its peak is no candidate
    assert session.start_review(0.3, score_map) == 2
    np.testing.assert_allclose(session.candidates, [[0, 4, 30, 10], [1, 6, 20, 30]], atol=0.05)
    np.testing.assert_allclose(session.candidate_scores, [0.18, 0.22], atol=0.01)

    first = session.next_uncertain()  # |0.34 - 0.3| = 0.04
    assert (first.kind, first.row, first.remaining) == ("detection", 1, 4)
    second = session.next_uncertain()  # |0.22 - 0.3| = 0.08
    assert (second.kind, second.row, second.remaining) == ("candidate", -1, 3)
    np.testing.assert_allclose(second.point, [1, 6, 20, 30], atol=0.05)
    # the user adds the other candidate before it is offered: it is no longer a candidate;
    # the 0.5 detection is moved by hand: corrected, so not offered either
    added = np.vstack([session.data, [0, 4, 30, 10.2]])
    more = pd.concat([session.features, pd.DataFrame({"score": [np.nan]})], ignore_index=True)
    session.add(added, more, [3])
    moved = session.data.copy()
    moved[2, 2] += 0.5
    session.move(moved)
    last = session.next_uncertain()
    assert (last.kind, last.row, last.remaining, last.score) == ("detection", 0, 0, 0.95)
    assert session.next_uncertain() is None
    assert len(session.reviewed_points) == 3

    # a new baseline (detection re-run) starts the review again
    session.replace(data, features)
    assert session.review_threshold is None and len(session.reviewed_points) == 0
    with pytest.raises(InputError, match="dimensions"):
        session.start_review(0.3, score_map[0])


def test_reviewed_spots_are_remembered_by_a_restored_session(tmp_path):
    data = np.array([[0, 5, 10, 10], [0, 5, 30, 30], [1, 5, 10, 10.0]])
    features = pd.DataFrame({"score": [0.31, 0.5, 0.9]})
    session = CorrectionSession(tmp_path / "review.csv", VOXEL, 4)
    session.begin(data, features)
    session.start_review(0.3)
    assert session.next_uncertain().row == 0 and session.next_uncertain().row == 1
    assert session.review_path.is_file()

    again = CorrectionSession(tmp_path / "review.csv", VOXEL, 4)
    assert "2 spot(s) already reviewed" in again.begin(data, features)
    again.start_review(0.3)
    item = again.next_uncertain()
    assert (item.row, item.remaining) == (2, 0) and again.next_uncertain() is None

    # a session that does not restore starts the review over, and forgets the old file
    fresh = CorrectionSession(tmp_path / "review.csv", VOXEL, 4)
    fresh.begin(data, features, restore=False)
    assert not fresh.review_path.is_file()
    fresh.start_review(0.3)
    assert fresh.next_uncertain().row == 0

    # a damaged file costs the memory of the review, not the corrections
    fresh.review_path.write_text("{not json")
    damaged = CorrectionSession(tmp_path / "review.csv", VOXEL, 4)
    assert "unreadable" in damaged.begin(data, features)
    assert len(damaged.reviewed_points) == 0 and len(damaged.data) == 3
    # another voxel size: these are other points
    assert fresh.next_uncertain() is not None and fresh.review_path.is_file()
    fresh.delete([2])  # a correction rewrites the CSV, and leaves the review's memory as it is
    assert len(json.loads(fresh.review_path.read_text())["reviewed"]) == 2
    other = CorrectionSession(tmp_path / "review.csv", (0.5, 0.2, 0.2), 4)
    assert "other points" in other.begin(data, features)
