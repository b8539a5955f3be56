"""Tests of napari_kinetochores.training.samples: labelled frames, the held-out split, the pool."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_kinetochores.errors import InputError
from napari_kinetochores.training.config import DataConfig
from napari_kinetochores.training.samples import (
    LabelledMovie,
    SamplePool,
    held_out_frames,
    labelled_frames,
    user_movies,
)

VOXEL = (0.3, 0.13, 0.13)


def _movie(frames, n_frames=6, channel=None, source="m"):
    points = pd.DataFrame({"t": list(frames), "z": 1.0, "y": 2.0, "x": 3.0})
    if channel is not None:
        points["channel"] = channel
    return LabelledMovie(np.zeros((n_frames, 1, 2, 4, 4)), points, VOXEL, source)


def test_labelled_frames_count_the_detected_channel_inside_the_movie():
    movie = _movie([0, 0, 2, 4, 9], channel=[0, 1, 1, 0, 0])
    assert labelled_frames(movie, channel=0) == [0, 4]  # t=9 lies outside 6 frames
    assert labelled_frames(movie, channel=1) == [0, 2]
    assert labelled_frames(_movie([1.0, 3.0]), channel=0) == [1, 3]  # no channel column


def test_held_out_frames_run_over_all_movies_in_time_order():
    movies = [_movie([0, 1, 2]), _movie([0, 1, 2, 3])]
    assert held_out_frames(movies, every=3, channel=0) == [(0, 2), (1, 2)]
    assert held_out_frames(movies, every=10, channel=0) == [(1, 3)]  # at least one
    assert held_out_frames([_movie([2])], every=2, channel=0) == []  # nothing to spare
    assert held_out_frames([_movie([2]), _movie([0])], every=2, channel=0) == [(1, 0)]


def test_pool_refresh_simulates_then_picks_the_entry_it_replaces():
    rng = np.random.default_rng(0)
    seeds = []

    def simulate(seed):
        seeds.append(seed)
        rng.random()  # a simulation draws from the same generator, before the pick
        return [f"fresh {seed}"]

    pool = SamplePool(["a", "b", "c"], simulate, 2, next_seed=100, rng=rng)
    replaced = pool.refresh()
    expected = np.random.default_rng(0)
    picks = []
    for _ in range(2):
        expected.random()
        picks.append(int(expected.integers(3)))
    assert replaced == picks and seeds == [100, 101] and pool.next_seed == 102
    assert pool.items[picks[-1]] == "fresh 101"
    assert SamplePool(["a"], None, 5, 0, rng).refresh() == []
    with pytest.raises(InputError, match="no training frames"):
        SamplePool([], None, 0, 0, rng)


def test_user_movies_from_memory_and_files():
    data = DataConfig()
    assert user_movies(data) is None
    image = np.zeros((2, 1, 2, 4, 4))
    points = pd.DataFrame({"t": [0], "z": [1.0], "y": [1.0], "x": [1.0]})
    (movie,) = user_movies(data, [(image, points, [0.3, 0.13, 0.13])])
    assert movie.source == "sample 0" and movie.voxel_size_um == VOXEL
    assert data.source == "memory"
    with pytest.raises(InputError, match="no training samples"):
        user_movies(DataConfig(), [])
    with pytest.raises(InputError, match="needs 'movie' and 'points'"):
        user_movies(DataConfig(source="files", files=[{"movie": "m.tif"}]))
