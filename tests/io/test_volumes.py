"""Tests for napari_kinetochores.io.volumes: readers, writers, validation."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_kinetochores import DEFAULT_VOXEL_SIZE_UM
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import (
    Volume,
    read_volume,
    to_tczyx,
    validate_voxel_size,
    write_tiff,
    write_zarr,
)

VOXEL = (0.3, 0.13, 0.13)
SHAPE = (3, 2, 5, 16, 16)  # T, C, Z, Y, X


@pytest.fixture
def movie() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 1000, size=SHAPE).astype(np.uint16)


def _is_dask(a) -> bool:
    import dask.array as da

    return isinstance(a, da.Array)


def _raises(path: Path, match: str, **kwargs) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        read_volume(path, **kwargs)
    assert path.name in str(info.value)
    return info.value


# --------------------------------------------------------------------------- to_tczyx


def test_to_tczyx_reorders_and_inserts_singletons():
    a = np.arange(5 * 2 * 4 * 6).reshape(5, 2, 4, 6)  # Z C Y X
    out = to_tczyx(a, "ZCYX")
    assert out.shape == (1, 2, 5, 4, 6)
    np.testing.assert_array_equal(out[0, 1, 3], a[3, 1])


def test_to_tczyx_samples_count_as_channel_and_lowercase():
    a = np.zeros((5, 4, 6, 3))
    assert to_tczyx(a, "zyxs").shape == (1, 3, 5, 4, 6)


def test_to_tczyx_dask_stays_lazy():
    import dask.array as da

    a = da.zeros((4, 5, 6, 7, 2), chunks=(1, 5, 6, 7, 2))  # T Z Y X C
    out = to_tczyx(a, "TZYXC")
    assert _is_dask(out)
    assert out.shape == (4, 2, 5, 6, 7)


@pytest.mark.parametrize(
    ("axes", "match"),
    [
        ("QYX", "ambiguous"),
        ("IYX", "ambiguous"),
        ("ZYB", "unknown axis"),
        ("ZZX", "repeated"),
        ("CSY", "repeated"),  # S counts as C
        ("ZYXC", "4 letters"),
        ("TYX", "lack Z"),
    ],
)
def test_to_tczyx_errors(axes, match):
    a = np.zeros((2, 3, 4))
    with pytest.raises(InputError, match=match):
        to_tczyx(a, axes)


# --------------------------------------------------------------------------- voxel size


def test_validate_voxel_size():
    assert validate_voxel_size([0.3, "0.13", 0.13]) == VOXEL
    for bad in ([0.3, 0.13], [0.3, 0.0, 0.13], [0.3, -1, 0.1], [np.nan, 1, 1], [np.inf, 1, 1]):
        with pytest.raises(InputError, match="voxel size"):
            validate_voxel_size(bad, "movie.tif")
    with pytest.raises(InputError, match="3 numbers"):
        validate_voxel_size("0.3")
    with pytest.raises(InputError, match=r"^movie\.tif: "):
        validate_voxel_size(None, "movie.tif")


# --------------------------------------------------------------------------- TIFF


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


def test_user_voxel_size_and_axes_override(tmp_path):
    import tifffile

    path = tmp_path / "ambiguous.tif"
    data = np.arange(2 * 5 * 8 * 8, dtype=np.uint16).reshape(2, 5, 8, 8)
    tifffile.imwrite(path, data)  # axes 'QQYX' -> ambiguous
    _raises(path, "ambiguous|axes=")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a user voxel size: no default warning
        vol = read_volume(path, axes="CZYX", voxel_size_um=(1.0, 0.5, 0.5))
    assert vol.shape == (1, 2, 5, 8, 8)
    assert vol.axes == "CZYX"
    assert vol.voxel_size_source == "user"
    assert vol.voxel_size_um == (1.0, 0.5, 0.5)
    vol_t = read_volume(path, axes="TZYX", voxel_size_um=VOXEL)
    assert vol_t.shape == (2, 1, 5, 8, 8)
    np.testing.assert_array_equal(vol_t.data[1, 0], data[1])


def test_user_voxel_size_overrides_metadata(tmp_path, movie):
    path = write_tiff(tmp_path / "movie.tif", movie, VOXEL)
    vol = read_volume(path, voxel_size_um=(1, 2, 3))
    assert vol.voxel_size_um == (1.0, 2.0, 3.0)
    assert vol.voxel_size_source == "user"


def test_axes_override_reinterprets_metadata(tmp_path, movie):
    # file axes TZCYX (3, 5, 2, 16, 16); pretend Z and C were swapped
    path = write_tiff(tmp_path / "movie.tif", movie, VOXEL)
    vol = read_volume(path, axes="TCZYX")
    assert vol.axes == "TCZYX"
    assert vol.shape == (3, 5, 2, 16, 16)


def test_lazy_tiff_for_big_files(tmp_path, movie, monkeypatch):
    from napari_kinetochores.io import volumes

    path = write_tiff(tmp_path / "movie.tif", movie, VOXEL)
    monkeypatch.setattr(volumes, "TIFF_LAZY_BYTES", 0)
    with read_volume(path) as vol:
        assert _is_dask(vol.data)
        assert vol.data.chunks[0] == (1, 1, 1)
        np.testing.assert_array_equal(vol.frame(2), movie[2].astype(np.float32))
        np.testing.assert_allclose(vol.voxel_size_um, VOXEL, rtol=1e-6)


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.9, 0.999])
def test_truncated_tiff(tmp_path, movie, fraction):
    good = write_tiff(tmp_path / "good.tif", movie, VOXEL)
    raw = good.read_bytes()
    bad = tmp_path / "truncated.tif"
    bad.write_bytes(raw[: int(len(raw) * fraction)])
    _raises(bad, "corrupt or truncated")


def test_truncated_single_page_tiff(tmp_path):
    import tifffile

    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.ones((64, 64), np.uint16))
    raw = good.read_bytes()
    bad = tmp_path / "short.tif"
    bad.write_bytes(raw[: len(raw) - 100])
    _raises(bad, "corrupt or truncated")


def test_garbage_tiff(tmp_path):
    bad = tmp_path / "garbage.tif"
    bad.write_bytes(b"this is not a tiff file at all" * 10)
    _raises(bad, "corrupt or truncated")


def test_2d_tiff_wrong_ndim(tmp_path):
    import tifffile

    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, np.ones((8, 8), np.uint16))
    _raises(path, "2 dimension")


# --------------------------------------------------------------------------- zarr


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
    assert _is_dask(vol.data)
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
    _raises(path, "ambiguous")
    with pytest.warns(UserWarning, match="default"):
        vol = read_volume(path, axes="ZYXC")
    assert _is_dask(vol.data)
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
    _raises(path, "several arrays", voxel_size_um=VOXEL)
    vol = read_volume(path, dataset="raw", voxel_size_um=VOXEL)
    np.testing.assert_array_equal(vol.data[0, 0].compute(), movie[0, 0])


def test_zarr_not_a_store(tmp_path):
    path = tmp_path / "empty.zarr"
    path.mkdir()
    _raises(path, "zarr")


# --------------------------------------------------------------------------- HDF5


def test_hdf5_with_key(tmp_path, movie):
    import h5py

    path = tmp_path / "movie.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = movie
        f["raw"].attrs["element_size_um"] = [0.4, 0.1, 0.1]
        f["extra/labels"] = np.zeros((5, 16, 16), np.uint8)
    _raises(path, "several datasets.*raw")
    with read_volume(path, dataset="raw") as vol:
        assert _is_dask(vol.data)
        assert vol.data.chunks[0] == (1, 1, 1)
        assert vol.shape == SHAPE
        np.testing.assert_array_equal(vol.data.compute(), movie)
        assert vol.voxel_size_um == (0.4, 0.1, 0.1)
        assert vol.voxel_size_source == "metadata"
        np.testing.assert_array_equal(vol.frame(1), movie[1])
    _raises(path, "no dataset 'nope'", dataset="nope")


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
    _raises(path, "HDF5")


# --------------------------------------------------------------------------- npy


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
    _raises(path4, "ambiguous", voxel_size_um=VOXEL)
    vol = read_volume(path4, axes="CZYX", voxel_size_um=VOXEL)
    assert vol.shape == (1, 2, 5, 16, 16)


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    _raises(tmp_path / "nothing.tif", "not found")


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "movie.png"
    path.write_bytes(b"x")
    _raises(path, "unsupported file type")


@pytest.mark.parametrize("shape", [(8, 8), (1, 2, 3, 4, 5, 6)])
def test_wrong_ndim(tmp_path, shape):
    path = tmp_path / "wrong.npy"
    np.save(path, np.ones(shape, np.float32))
    _raises(path, f"{len(shape)} dimension", voxel_size_um=VOXEL)
    _raises(path, f"{len(shape)} dimension", voxel_size_um=VOXEL, axes="ZYX")


def test_unknown_axes(tmp_path):
    path = tmp_path / "stack.npy"
    np.save(path, np.ones((4, 8, 8), np.float32))
    _raises(path, "unknown axis", axes="ZYW", voxel_size_um=VOXEL)
    _raises(path, "repeated", axes="ZZX", voxel_size_um=VOXEL)
    _raises(path, "4 letters", axes="TZYX", voxel_size_um=VOXEL)


def test_empty_volume(tmp_path):
    path = tmp_path / "empty.npy"
    np.save(path, np.ones((0, 8, 8), np.float32))
    _raises(path, "empty", voxel_size_um=VOXEL)


def test_nan_volume(tmp_path):
    path = tmp_path / "nan.npy"
    np.save(path, np.full((4, 8, 8), np.nan, np.float32))
    _raises(path, "NaN", voxel_size_um=VOXEL)
    # only the first frame is checked, and a partly-NaN frame is fine
    partly = np.full((2, 1, 4, 8, 8), np.nan, np.float32)
    partly[0, 0, 0, 0, 0] = 1
    np.save(path, partly)
    assert read_volume(path, voxel_size_um=VOXEL).shape == (2, 1, 4, 8, 8)


def test_nan_zarr(tmp_path):
    path = write_zarr(tmp_path / "nan.zarr", np.full((2, 1, 3, 4, 4), np.nan, np.float32), VOXEL)
    _raises(path, "NaN")


@pytest.mark.parametrize("bad", [(0.3, 0, 0.13), (-1, 0.13, 0.13), (np.nan, 1, 1), (1, 1)])
def test_bad_user_voxel_size(tmp_path, movie, bad):
    path = tmp_path / "m.npy"
    np.save(path, movie)
    _raises(path, "voxel size", voxel_size_um=bad)


def test_bad_voxel_size_in_metadata(tmp_path, movie):
    import h5py

    path = tmp_path / "zero.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = movie[0, 0]
        f["raw"].attrs["element_size_um"] = [0.0, 0.1, 0.1]
    _raises(path, "invalid voxel size in the file's metadata")
    assert read_volume(path, voxel_size_um=VOXEL).voxel_size_source == "user"


def test_write_tiff_rejects_bad_input(tmp_path):
    with pytest.raises(InputError, match="5-D"):
        write_tiff(tmp_path / "x.tif", np.zeros((4, 8, 8)), VOXEL)
    with pytest.raises(InputError, match="voxel size"):
        write_tiff(tmp_path / "x.tif", np.zeros((1, 1, 4, 8, 8)), (0, 1, 1))
    assert not list(tmp_path.iterdir())


def test_volume_dataclass_defaults():
    vol = Volume(np.zeros((2, 3, 4, 5, 6)), VOXEL, "user", "TCZYX", None)
    assert vol.channel_names == ["EGFP", "mCherry", "ch2"]
    with pytest.raises(IndexError):
        vol.frame(2)
    assert vol.frame(-1, channel=2).shape == (4, 5, 6)
