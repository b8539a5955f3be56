"""Tests for napari_kinetochores.io.zarr: OME-Zarr and plain zarr reading and write_zarr."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _io_helpers import SHAPE, VOXEL, is_dask, read_fails
from napari_kinetochores.io import read_volume, write_zarr


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_round_trip(tmp_path, movie, zarr_format):
    path = write_zarr(
        tmp_path / "movie.ome.zarr",
        movie,
        VOXEL,
        zarr_format=zarr_format,
        channel_names=["a", "b"],
    )
    vol = read_volume(path)
    assert is_dask(vol.data)
    assert vol.shape == SHAPE
    assert vol.data.chunks[0] == (1, 1, 1)
    np.testing.assert_array_equal(vol.data.compute(), movie)
    assert vol.voxel_size_source == "metadata"
    np.testing.assert_allclose(vol.voxel_size_um, VOXEL)
    assert vol.axes == "TCZYX"
    assert vol.channel_names == ["a", "b"]
    np.testing.assert_array_equal(vol.frame(1, 0), movie[1, 0])


def test_ome_zarr_metadata_layout(tmp_path, movie):
    import zarr

    path = write_zarr(tmp_path / "m.zarr", movie, VOXEL)
    group = zarr.open_group(str(path), mode="r")
    ms = group.attrs["multiscales"][0]
    assert ms["version"] == "0.4"
    assert [a["name"] for a in ms["axes"]] == ["t", "c", "z", "y", "x"]
    assert ms["axes"][2]["unit"] == "micrometer"
    assert ms["datasets"][0]["path"] == "0"
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1, 1, *VOXEL]
    assert group["0"].chunks[0] == 1
    path3 = write_zarr(tmp_path / "m3.zarr", movie, VOXEL, zarr_format=3)
    meta = json.loads((path3 / "zarr.json").read_text())
    assert meta["attributes"]["ome"]["version"] == "0.5"


def test_write_zarr_from_dask_and_overwrite(tmp_path, movie):
    import dask.array as da

    path = tmp_path / "d.zarr"
    write_zarr(path, np.zeros(SHAPE, np.uint16), VOXEL)
    write_zarr(path, da.from_array(movie, chunks=(1, 2, 5, 16, 16)), VOXEL, chunks=(2, 1, 5, 8, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]  # no temp left
    vol = read_volume(path)
    np.testing.assert_array_equal(vol.data.compute(), movie)


def test_plain_zarr_array(tmp_path, movie):
    import zarr

    # written by us: axes and voxel size hints in attributes
    vol = read_volume(write_zarr(tmp_path / "plain.zarr", movie, (1, 2, 3), ome=False))
    assert vol.shape == SHAPE and vol.voxel_size_um == (1, 2, 3)
    assert vol.voxel_size_source == "metadata"

    # foreign: no metadata, 4D -> axes needed
    path = tmp_path / "foreign.zarr"
    zyxc = np.moveaxis(movie[0], 0, -1)  # Z Y X C
    arr = zarr.create_array(store=str(path), shape=zyxc.shape, dtype=zyxc.dtype, zarr_format=3)
    arr[...] = zyxc
    read_fails(path, "ambiguous")
    with pytest.warns(UserWarning, match="default"):
        vol = read_volume(path, axes="ZYXC")
    assert is_dask(vol.data)
    assert vol.shape == (1, 2, 5, 16, 16)
    assert vol.voxel_size_source == "default"
    np.testing.assert_array_equal(vol.data.compute(), movie[:1])


def test_zarr_group_with_one_or_several_arrays(tmp_path, movie):
    import zarr

    path = tmp_path / "group.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("raw", shape=(5, 16, 16), dtype="uint16")[...] = movie[0, 0]
    vol = read_volume(path, voxel_size_um=VOXEL)
    assert vol.shape == (1, 1, 5, 16, 16)
    group.create_array("other", shape=(5, 16, 16), dtype="uint16")
    read_fails(path, "several arrays", voxel_size_um=VOXEL)
    vol = read_volume(path, dataset="raw", voxel_size_um=VOXEL)
    np.testing.assert_array_equal(vol.data[0, 0].compute(), movie[0, 0])


def test_zarr_not_a_store(tmp_path):
    path = tmp_path / "empty.zarr"
    path.mkdir()
    read_fails(path, "zarr")
