"""Tests for napari_kinetochores.io.hdf5: HDF5 and ilastik datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _io_helpers import SHAPE, VOXEL, is_dask, read_fails
from napari_kinetochores.io import read_volume


def test_hdf5_with_key(tmp_path, movie):
    import h5py

    path = tmp_path / "movie.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = movie
        f["raw"].attrs["element_size_um"] = [0.4, 0.1, 0.1]
        f["extra/labels"] = np.zeros((5, 16, 16), np.uint8)
    read_fails(path, "several datasets.*raw")
    with read_volume(path, dataset="raw") as vol:
        assert is_dask(vol.data)
        assert vol.data.chunks[0] == (1, 1, 1)
        assert vol.shape == SHAPE
        np.testing.assert_array_equal(vol.data.compute(), movie)
        assert vol.voxel_size_um == (0.4, 0.1, 0.1)
        assert vol.voxel_size_source == "metadata"
        np.testing.assert_array_equal(vol.frame(1), movie[1])
    read_fails(path, "no dataset 'nope'", dataset="nope")


def test_hdf5_ilastik_exported_data(tmp_path, movie):
    import h5py

    zyxc = np.moveaxis(movie[0], 0, -1)  # (5, 16, 16, 2)
    path = tmp_path / "ilastik.h5"
    with h5py.File(path, "w") as f:
        f["exported_data"] = zyxc
    with pytest.warns(UserWarning, match="ilastik.h5"):
        vol = read_volume(path)  # single dataset, no key needed
    assert vol.axes == "ZYXC"
    assert vol.shape == (1, 2, 5, 16, 16)
    np.testing.assert_array_equal(vol.data.compute(), movie[:1])
    assert vol.voxel_size_source == "default"
    vol.close()


def test_hdf5_ilastik_axistags(tmp_path, movie):
    import h5py

    tzyxc = np.moveaxis(movie, 1, -1)
    path = tmp_path / "tags.h5"
    tags = {"axes": [{"key": k} for k in "tzyxc"]}
    with h5py.File(path, "w") as f:
        d = f.create_dataset("exported_data", data=tzyxc)
        d.attrs["axistags"] = json.dumps(tags)
        d.attrs["element_size_um"] = [1.0, 0.3, 0.13, 0.13, 1.0]  # per axis
    vol = read_volume(path)
    assert vol.axes == "TZYXC"
    assert vol.shape == SHAPE
    assert vol.data.chunks[0] == (1, 1, 1)
    np.testing.assert_allclose(vol.voxel_size_um, VOXEL)
    np.testing.assert_array_equal(vol.frame(2), movie[2])
    vol.close()


def test_hdf5_corrupt(tmp_path):
    path = tmp_path / "bad.h5"
    path.write_bytes(b"not hdf5" * 100)
    read_fails(path, "HDF5")
