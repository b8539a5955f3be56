"""Tests for napari_kinetochores.io.tiff: TIFF, ImageJ and OME-TIFF reading and write_tiff."""

from __future__ import annotations

import numpy as np
import pytest

from _io_helpers import SHAPE, VOXEL, is_dask, read_fails
from napari_kinetochores import DEFAULT_VOXEL_SIZE_UM
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import read_volume, write_tiff


def test_imagej_tiff_round_trip(tmp_path, movie):
    path = write_tiff(tmp_path / "movie.tif", movie, VOXEL, channel_names=["EGFP", "mCherry"])
    assert path.exists()
    assert not [p for p in tmp_path.iterdir() if p.name != "movie.tif"]  # temp file gone
    vol = read_volume(path)
    assert vol.shape == SHAPE
    assert isinstance(vol.data, np.ndarray)
    np.testing.assert_array_equal(vol.data, movie)
    assert vol.voxel_size_source == "metadata"
    np.testing.assert_allclose(vol.voxel_size_um, VOXEL, rtol=1e-6)
    assert vol.axes == "TZCYX"
    assert vol.channel_names == ["EGFP", "mCherry"]
    assert vol.n_frames == 3 and vol.n_channels == 2
    f = vol.frame(1)
    assert f.dtype == np.float32 and f.shape == SHAPE[1:]
    np.testing.assert_array_equal(vol.frame(2, channel=1), movie[2, 1].astype(np.float32))


def test_imagej_tiff_float64_stored_as_float32(tmp_path):
    data = np.linspace(0, 1, 5 * 8 * 8).reshape(1, 1, 5, 8, 8)
    vol = read_volume(write_tiff(tmp_path / "f.tif", data, VOXEL))
    assert vol.dtype == np.float32
    np.testing.assert_allclose(vol.data, data, rtol=1e-6)


def test_ome_tiff_round_trip(tmp_path, movie):
    path = write_tiff(tmp_path / "movie.ome.tif", movie, (0.5, 0.1, 0.2), ome=True)
    vol = read_volume(path)
    assert vol.shape == SHAPE
    np.testing.assert_array_equal(vol.data, movie)
    assert vol.voxel_size_source == "metadata"
    np.testing.assert_allclose(vol.voxel_size_um, (0.5, 0.1, 0.2))
    assert vol.channel_names == ["EGFP", "mCherry"]


def test_ome_tiff_units_converted(tmp_path):
    import tifffile

    path = tmp_path / "nm.ome.tif"
    tifffile.imwrite(
        path,
        np.ones((4, 8, 8), np.uint8),
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeZ": 300,
            "PhysicalSizeZUnit": "nm",
            "PhysicalSizeY": 130,
            "PhysicalSizeYUnit": "nm",
            "PhysicalSizeX": 0.13,
            "PhysicalSizeXUnit": "µm",
        },
    )
    vol = read_volume(path)
    assert vol.shape == (1, 1, 4, 8, 8)
    np.testing.assert_allclose(vol.voxel_size_um, VOXEL)


def test_imagej_micron_unit_and_nm(tmp_path):
    import tifffile

    path = tmp_path / "nm.tif"
    tifffile.imwrite(
        path,
        np.ones((4, 8, 8), np.uint16),
        imagej=True,
        resolution=(1 / 130, 1 / 130),
        metadata={"axes": "ZYX", "spacing": 300, "unit": "nm"},
    )
    vol = read_volume(path)
    np.testing.assert_allclose(vol.voxel_size_um, VOXEL, rtol=1e-6)
    assert vol.voxel_size_source == "metadata"


def test_plain_tiff_defaults_with_warning(tmp_path):
    import tifffile

    path = tmp_path / "plain.tif"
    data = np.arange(5 * 8 * 8, dtype=np.uint16).reshape(5, 8, 8)
    tifffile.imwrite(path, data)  # no voxel size, axes 'QYX'
    with pytest.warns(UserWarning, match="plain.tif.*default"):
        vol = read_volume(path)
    assert vol.shape == (1, 1, 5, 8, 8)
    assert vol.voxel_size_source == "default"
    assert vol.voxel_size_um == DEFAULT_VOXEL_SIZE_UM
    assert vol.axes == "ZYX"


def test_lazy_tiff_for_big_files(tmp_path, movie, monkeypatch):
    from napari_kinetochores.io import tiff

    path = write_tiff(tmp_path / "movie.tif", movie, VOXEL)
    monkeypatch.setattr(tiff, "TIFF_LAZY_BYTES", 0)
    with read_volume(path) as vol:
        assert is_dask(vol.data)
        assert vol.data.chunks[0] == (1, 1, 1)
        np.testing.assert_array_equal(vol.frame(2), movie[2].astype(np.float32))
        np.testing.assert_allclose(vol.voxel_size_um, VOXEL, rtol=1e-6)


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.9, 0.999])
def test_truncated_tiff(tmp_path, movie, fraction):
    good = write_tiff(tmp_path / "good.tif", movie, VOXEL)
    raw = good.read_bytes()
    bad = tmp_path / "truncated.tif"
    bad.write_bytes(raw[: int(len(raw) * fraction)])
    read_fails(bad, "corrupt or truncated")


def test_truncated_single_page_tiff(tmp_path):
    import tifffile

    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.ones((64, 64), np.uint16))
    raw = good.read_bytes()
    bad = tmp_path / "short.tif"
    bad.write_bytes(raw[: len(raw) - 100])
    read_fails(bad, "corrupt or truncated")


def test_garbage_tiff(tmp_path):
    bad = tmp_path / "garbage.tif"
    bad.write_bytes(b"this is not a tiff file at all" * 10)
    read_fails(bad, "corrupt or truncated")


def test_2d_tiff_wrong_ndim(tmp_path):
    import tifffile

    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, np.ones((8, 8), np.uint16))
    read_fails(path, "2 dimension")


def test_write_tiff_rejects_bad_input(tmp_path):
    with pytest.raises(InputError, match="5-D"):
        write_tiff(tmp_path / "x.tif", np.zeros((4, 8, 8)), VOXEL)
    with pytest.raises(InputError, match="voxel size"):
        write_tiff(tmp_path / "x.tif", np.zeros((1, 1, 4, 8, 8)), (0, 1, 1))
    assert not list(tmp_path.iterdir())
