"""Review by uncertainty: the order, candidate spots of a score map, nearness in one frame."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kinetochores.analysis.review import candidate_spots, near_any, review_order
from napari_kinetochores.errors import InputError

VOXEL = (0.3, 0.13, 0.13)


def blob(shape, centre, height, sigma=(1.0, 1.5, 1.5)):
    grids = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    r2 = sum(((g - c) / s) ** 2 for g, c, s in zip(grids, centre, sigma, strict=True))
    return height * np.exp(-0.5 * r2)


def test_review_order_nearest_the_threshold_first_skipping_reviewed_and_unscored():
    scores = np.array([0.95, 0.31, 0.12, 0.45, np.nan, 0.29])
    assert review_order(scores, 0.3).tolist() == [1, 5, 3, 2, 0]
    reviewed = np.array([False, True, False, False, False, False])
    assert review_order(scores, 0.3, reviewed).tolist() == [5, 3, 2, 0]
    # a candidate above the threshold (a peak the detection dropped) comes first
    detected = np.array([True, True, False, True, True, False])
    order = review_order([0.95, 0.5, 0.6, 0.45, 0.9, 0.2], 0.3, detected=detected)
    assert order.tolist() == [2, 5, 3, 1, 4, 0]
    assert review_order([], 0.3).tolist() == []
    with pytest.raises(InputError, match="reviewed has 2"):
        review_order(scores, 0.3, reviewed=[True, False])


def test_near_any_counts_only_points_of_the_same_frame_within_the_distance():
    points = np.array([[0, 10, 10, 10], [1, 10, 10, 10], [0, 10, 10, 13]])
    others = np.array([[0, 10, 10, 11], [2, 10, 10, 10]])
    # 0.13 µm from the first; the second is in another frame; the third is 0.26 µm away
    assert near_any(points, others, VOXEL, 0.2).tolist() == [True, False, False]
    assert near_any(points, others, VOXEL, 0.3).tolist() == [True, False, True]
    assert near_any(points[:, 1:], others[:, 1:], VOXEL, 0.2).tolist() == [True, True, False]
    assert near_any(points, None, VOXEL, 1.0).tolist() == [False] * 3
    assert near_any(np.zeros((0, 4)), others, VOXEL, 1.0).shape == (0,)


def test_candidate_spots_are_uncovered_peaks_above_the_floor():
    shape = (12, 40, 60)
    detected, missed, dropped = (5, 10, 10), (6, 30, 30), (5, 10, 50)
    score = (
        blob(shape, detected, 0.9)
        + blob(shape, missed, 0.2)  # below the threshold, above its third
        + blob(shape, (5, 30, 50), 0.05)  # below the floor
        + blob(shape, dropped, 0.6)  # above the threshold but no detection there
    ).astype(np.float32)
    existing = np.array([[5.2, 10.3, 9.8]])
    coords, scores = candidate_spots(score, VOXEL, threshold=0.3, existing_zyx=existing)
    np.testing.assert_allclose(coords, [dropped, missed], atol=0.05)
    np.testing.assert_allclose(scores, [0.6, 0.2], atol=0.01)
    everything, _ = candidate_spots(score, VOXEL, threshold=0.3)
    assert len(everything) == 3
    higher_floor, _ = candidate_spots(score, VOXEL, 0.3, floor=0.25, existing_zyx=existing)
    np.testing.assert_allclose(higher_floor, [dropped], atol=0.05)
    with pytest.raises(InputError, match="floor"):
        candidate_spots(score, VOXEL, 0.3, floor=0.4)
