"""Tests for napari_kinetochores.io.npy: memory-mapped .npy arrays."""

from __future__ import annotations

import numpy as np
import pytest

from _io_helpers import SHAPE, VOXEL, read_fails
from napari_kinetochores.io import read_volume


def test_npy_round_trip(tmp_path, movie):
    path = tmp_path / "stack.npy"
    np.save(path, movie[0, 0])
    with pytest.warns(UserWarning, match="stack.npy"):
        vol = read_volume(path)
    assert vol.shape == (1, 1, 5, 16, 16)
    np.testing.assert_array_equal(vol.data[0, 0], movie[0, 0])
    assert isinstance(vol.data, np.ndarray)

    path5 = tmp_path / "movie.npy"
    np.save(path5, movie)
    vol = read_volume(path5, voxel_size_um=VOXEL)
    assert vol.shape == SHAPE and vol.axes == "TCZYX"
    np.testing.assert_array_equal(vol.frame(2, 1), movie[2, 1])

    path4 = tmp_path / "four.npy"
    np.save(path4, movie[0])
    read_fails(path4, "ambiguous", voxel_size_um=VOXEL)
    vol = read_volume(path4, axes="CZYX", voxel_size_um=VOXEL)
    assert vol.shape == (1, 2, 5, 16, 16)
