"""Atomic writes (napari_kinetochores.io.atomic): checked folders, clean failures, no leftovers."""

from __future__ import annotations

import errno
import os

import numpy as np
import pandas as pd
import pytest

from napari_kinetochores.errors import InputError
from napari_kinetochores.io import write_csv, write_points, write_tiff, write_zarr
from napari_kinetochores.io.atomic import (
    atomic_output,
    check_output_file,
    remove_stale_temps,
    temp_path_beside,
)

VOXEL = (0.3, 0.13, 0.13)


def _killed_write(target, suffix=".tmp", folder=False):
    """What a writer killed mid-way leaves: a temporary of ``target`` from an earlier process."""
    left = temp_path_beside(target, suffix)
    if folder:
        (left / "0").mkdir(parents=True)
        (left / "0" / "chunk").write_bytes(b"torn")
    else:
        left.write_text("t,z,y,x\n0,1")
    os.utime(left, (0, 0))
    return left


def test_next_write_removes_stale_temporaries_of_the_same_target(tmp_path):
    table = pd.DataFrame({"t": [0.0], "z": [1.0], "y": [2.0], "x": [3.0]})
    csv = tmp_path / "points.csv"
    stale = [_killed_write(csv), _killed_write(csv)]
    other = _killed_write(tmp_path / "other.csv")  # another target's: not ours to remove
    fresh = temp_path_beside(csv)  # made by this process: a write in progress
    fresh.write_text("")
    write_points(csv, table, VOXEL)
    assert not any(p.exists() for p in stale)
    assert other.exists() and fresh.exists()
    assert pd.read_csv(csv)["x"].tolist() == [3.0]

    movie = np.zeros((1, 1, 2, 4, 4), np.uint16)
    tif, store = tmp_path / "m.tif", tmp_path / "m.zarr"
    torn_tif, torn_store = _killed_write(tif, ".tif"), _killed_write(store, ".zarr", folder=True)
    write_tiff(tif, movie, VOXEL)
    write_zarr(store, movie, VOXEL)
    write_zarr(store, movie, VOXEL)  # replacing a store leaves nothing aside either
    assert not torn_tif.exists() and not torn_store.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted(
        [other.name, fresh.name]
    )
    assert remove_stale_temps(tmp_path / "missing" / "x.csv") == []


@pytest.mark.parametrize("case", ["missing folder", "parent is a file"])
def test_unwritable_paths_raise_one_input_error_naming_them(tmp_path, case):
    (tmp_path / "afile").write_text("x")
    parent = tmp_path / ("missing" if case == "missing folder" else "afile")
    table = pd.DataFrame({"t": [0.0], "z": [1.0], "y": [2.0], "x": [3.0]})
    movie = np.zeros((1, 1, 2, 4, 4), np.uint16)
    for write in (
        lambda p: write_points(p, table, VOXEL),
        lambda p: write_csv(p, table),
        lambda p: write_tiff(p.with_suffix(".tif"), movie, VOXEL),
        lambda p: write_zarr(p.with_suffix(".zarr"), movie, VOXEL),
    ):
        with pytest.raises(InputError, match="cannot write here") as caught:
            write(parent / "out.csv")
        assert str(parent / "out") in str(caught.value)
        assert ("does not exist" if case == "missing folder" else "not a folder") in str(
            caught.value
        )


def test_os_errors_while_writing_name_the_target_and_leave_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.csv"
    target.write_text("old")

    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(InputError, match="no permission") as caught:
        with atomic_output(target) as tmp:
            tmp.write_text("new")
    assert str(target) in str(caught.value)
    monkeypatch.undo()
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]

    # an OSError about another file (e.g. a source read while writing) is not blamed on the target
    with pytest.raises(FileNotFoundError):
        with atomic_output(target):
            open(tmp_path / "missing_source.txt")
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_check_output_file_protects_inputs_and_other_files(tmp_path):
    movie = tmp_path / "movie.tif"
    movie.write_bytes(b"II*\x00")
    (tmp_path / "old.csv").write_text("t,z,y,x\n")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match="input of the command"):
        check_output_file(movie, [movie])
    with pytest.raises(InputError, match="input of the command"):
        check_output_file(tmp_path / "." / "movie.tif", [movie])  # the same file, spelt otherwise
    with pytest.raises(InputError, match="refusing to replace"):
        check_output_file(movie, [])
    with pytest.raises(InputError, match="a folder"):
        check_output_file(tmp_path / "folder", [])
    assert check_output_file(tmp_path / "old.csv", [movie]) == tmp_path / "old.csv"
    assert check_output_file(tmp_path / "new.txt", [movie]) == tmp_path / "new.txt"
    assert check_output_file(movie, [movie], force=True) == movie
    with pytest.raises(InputError, match="does not exist"):
        check_output_file(tmp_path / "no" / "out.csv", [movie], force=True)


def test_a_folder_without_write_permission_is_named(tmp_path, monkeypatch):
    # root may write anywhere, so the permission check is simulated
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(InputError, match="no permission to write in") as caught:
        write_csv(tmp_path / "out.csv", pd.DataFrame({"t": [0]}))
    assert str(tmp_path / "out.csv") in str(caught.value)
    assert not any(tmp_path.iterdir())


def test_a_folder_written_atomically_replaces_a_file_or_folder_at_its_path(tmp_path):
    # As zarr's writer did before atomic_output: a store replaces whatever is there.
    for existing in ("file", "folder"):
        target = tmp_path / f"{existing}.zarr"
        if existing == "file":
            target.write_text("old")
        else:
            target.mkdir()
            (target / "old").write_text("old")
        with atomic_output(target) as tmp:
            tmp.mkdir()
            (tmp / "new").write_text("new")
        assert target.is_dir() and [p.name for p in target.iterdir()] == ["new"]
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
