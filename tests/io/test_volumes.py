"""Tests for napari_kinetochores.io.volumes: read_volume, to_tczyx, voxel sizes, Volume."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from _io_helpers import VOXEL, is_dask, read_fails
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import (
    Volume,
    read_volume,
    to_tczyx,
    validate_voxel_size,
    write_tiff,
    write_zarr,
)

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
    assert is_dask(out)
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


def test_voxel_sizes_outside_the_physical_range_are_refused_wherever_they_enter(tmp_path, movie):
    import h5py

    assert validate_voxel_size([0.001, 1, 100]) == (0.001, 1.0, 100.0)
    for bad in ([1e-300, 0.13, 0.13], [0.3, 1e300, 0.13], [0.3, 0.13, 0.0009], [101, 1, 1]):
        with pytest.raises(InputError, match=r"between 0\.001 and 100 µm") as caught:
            validate_voxel_size(bad, "movie.tif")
        assert str(caught.value).startswith("movie.tif: ")
    path = tmp_path / "tiny.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = movie[0, 0]
        f["raw"].attrs["element_size_um"] = [1e-300, 0.1, 0.1]
    read_fails(path, "invalid voxel size in the file's metadata.*between 0.001 and 100 µm")
    read_fails(path, "between 0.001 and 100 µm", voxel_size_um=(0.3, 0.1, 1e300))


# --------------------------------------------------------------------------- the caller's axes and voxel size


def test_user_voxel_size_and_axes_override(tmp_path):
    import tifffile

    path = tmp_path / "ambiguous.tif"
    data = np.arange(2 * 5 * 8 * 8, dtype=np.uint16).reshape(2, 5, 8, 8)
    tifffile.imwrite(path, data)  # axes 'QQYX' -> ambiguous
    read_fails(path, "ambiguous|axes=")
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


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    read_fails(tmp_path / "nothing.tif", "not found")


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "movie.png"
    path.write_bytes(b"x")
    read_fails(path, "unsupported file type")


@pytest.mark.parametrize("shape", [(8, 8), (1, 2, 3, 4, 5, 6)])
def test_wrong_ndim(tmp_path, shape):
    path = tmp_path / "wrong.npy"
    np.save(path, np.ones(shape, np.float32))
    read_fails(path, f"{len(shape)} dimension", voxel_size_um=VOXEL)
    read_fails(path, f"{len(shape)} dimension", voxel_size_um=VOXEL, axes="ZYX")


def test_unknown_axes(tmp_path):
    path = tmp_path / "stack.npy"
    np.save(path, np.ones((4, 8, 8), np.float32))
    read_fails(path, "unknown axis", axes="ZYW", voxel_size_um=VOXEL)
    read_fails(path, "repeated", axes="ZZX", voxel_size_um=VOXEL)
    read_fails(path, "4 letters", axes="TZYX", voxel_size_um=VOXEL)


def test_empty_volume(tmp_path):
    path = tmp_path / "empty.npy"
    np.save(path, np.ones((0, 8, 8), np.float32))
    read_fails(path, "empty", voxel_size_um=VOXEL)


def test_nan_volume(tmp_path):
    path = tmp_path / "nan.npy"
    np.save(path, np.full((4, 8, 8), np.nan, np.float32))
    read_fails(path, "NaN", voxel_size_um=VOXEL)
    # only the first frame is checked, and a partly-NaN frame is fine
    partly = np.full((2, 1, 4, 8, 8), np.nan, np.float32)
    partly[0, 0, 0, 0, 0] = 1
    np.save(path, partly)
    assert read_volume(path, voxel_size_um=VOXEL).shape == (2, 1, 4, 8, 8)


def test_nan_zarr(tmp_path):
    path = write_zarr(tmp_path / "nan.zarr", np.full((2, 1, 3, 4, 4), np.nan, np.float32), VOXEL)
    read_fails(path, "NaN")


@pytest.mark.parametrize("bad", [(0.3, 0, 0.13), (-1, 0.13, 0.13), (np.nan, 1, 1), (1, 1)])
def test_bad_user_voxel_size(tmp_path, movie, bad):
    path = tmp_path / "m.npy"
    np.save(path, movie)
    read_fails(path, "voxel size", voxel_size_um=bad)


def test_bad_voxel_size_in_metadata(tmp_path, movie):
    import h5py

    path = tmp_path / "zero.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = movie[0, 0]
        f["raw"].attrs["element_size_um"] = [0.0, 0.1, 0.1]
    read_fails(path, "invalid voxel size in the file's metadata")
    assert read_volume(path, voxel_size_um=VOXEL).voxel_size_source == "user"


def test_volume_dataclass_defaults():
    vol = Volume(np.zeros((2, 3, 4, 5, 6)), VOXEL, "user", "TCZYX", None)
    assert vol.channel_names == ["EGFP", "mCherry", "ch2"]
    with pytest.raises(IndexError):
        vol.frame(2)
    assert vol.frame(-1, channel=2).shape == (4, 5, 6)


# --------------------------------------------------------------------------- axes that make no sense


def _tiff_with_axes(path, data, axes):
    import tifffile

    tifffile.imwrite(path, data, imagej=True, metadata={"axes": axes})
    return path


def test_64_channels_of_2x2_images_are_refused_naming_file_and_axes(tmp_path):
    data = np.ones((1, 3, 64, 2, 2), np.uint16)  # ImageJ TZCYX: 64 "channels" of 2 x 2 pixels
    path = _tiff_with_axes(tmp_path / "odd.tif", data, "TZCYX")
    err = read_fails(path, r"axes 'ZCYX' \(from the file's metadata\).*64 channels of 2 × 2")
    assert "(1, 64, 3, 2, 2)" in str(err) and "--axes" in str(err)
    npy = tmp_path / "odd.npy"
    np.save(npy, np.ones((64, 3, 2, 2), np.float32))
    read_fails(npy, r"axes 'CZYX' \(given\).*64 channels", axes="CZYX", voxel_size_um=VOXEL)


@pytest.mark.parametrize(
    ("shape", "match"),
    [((500, 1, 2, 4, 4), r"500 time points.*32 voxels"), ((1, 40, 1, 2, 16), r"40 channels")],
)
def test_more_frames_or_channels_than_voxels_per_image_are_refused(tmp_path, shape, match):
    path = tmp_path / "tall.npy"
    np.save(path, np.ones(shape, np.uint8))
    read_fails(path, rf"axes 'TCZYX' \(guessed.*{match}", voxel_size_um=VOXEL)


@pytest.mark.parametrize(
    ("shape", "match"),
    [((1, 12, 5, 16, 16), r"12 channels.*more than 8"), ((2, 1, 5, 3, 16), r"3 × 16 pixels")],
)
def test_unlikely_axes_warn_naming_file_and_axes(tmp_path, shape, match):
    path = tmp_path / "odd.npy"
    np.save(path, np.ones(shape, np.uint8))
    with pytest.warns(UserWarning, match=rf"odd\.npy.*axes 'TCZYX'.*{match}"):
        assert read_volume(path, voxel_size_um=VOXEL).shape == shape


def test_plausible_axes_read_without_a_warning(tmp_path, movie):
    path = write_tiff(tmp_path / "movie.tif", movie, VOXEL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_volume(path).shape == movie.shape
