"""Tests for napari_kinetochores.io.points: the point CSV schema and other layouts."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_kinetochores import DEFAULT_VOXEL_SIZE_UM
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import (
    OPTIONAL_COLUMNS,
    POINT_COLUMNS,
    UM_COLUMNS,
    points_frame,
    read_points,
    write_csv,
    write_points,
)

VOXEL = (0.3, 0.13, 0.13)
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


def _raises(path: Path, match: str, **kwargs) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        read_points(path, **kwargs)
    assert path.name in str(info.value)
    return info.value


# --------------------------------------------------------------------------- points_frame


def test_points_frame_columns_and_units():
    coords = np.array([[0, 10, 20, 30], [1, 5.5, 6.25, 7]])
    df = points_frame(
        coords, VOXEL, track_id=[3, 4], score=[0.9, 0.5], note="x", pair_id=[1, np.nan]
    )
    assert list(df.columns) == [
        *POINT_COLUMNS,
        *UM_COLUMNS,
        "score",
        "pair_id",
        "track_id",
        "note",
    ]
    np.testing.assert_allclose(df[["z_um", "y_um", "x_um"]].to_numpy(), coords[:, 1:] * VOXEL)
    assert df.pair_id.tolist() == [1, -1]
    assert df.pair_id.dtype == np.int64
    assert df.note.tolist() == ["x", "x"]
    assert df.attrs["voxel_size_um"] == VOXEL


def test_points_frame_3_columns_and_empty():
    df = points_frame(np.array([[1.0, 2.0, 3.0]]), VOXEL, score=pd.Series([0.5], index=[7]))
    assert df.t.tolist() == [0.0]
    assert df.score.tolist() == [0.5]  # a Series is taken by position
    assert df.z.tolist() == [1.0]
    empty = points_frame(np.zeros((0, 4)), VOXEL)
    assert len(empty) == 0 and list(empty.columns) == [*POINT_COLUMNS, *UM_COLUMNS]
    with pytest.raises(ValueError, match="shape"):
        points_frame(np.zeros((3, 2)), VOXEL)


# --------------------------------------------------------------------------- schema


def test_schema_round_trip(tmp_path):
    coords = np.array([[0, 10.25, 20.5, 30.125], [2, 1, 2, 3], [2, 40, 50, 60]])
    df = points_frame(
        coords,
        VOXEL,
        channel=[0, 0, 1],
        score=[0.9, 0.8, 0.7],
        status=["auto", "added", "moved"],
        pair_id=[1, 1, -1],
        track_id=[5, 6, 7],
        extra=[1.5, 2.5, 3.5],
    )
    path = write_points(tmp_path / "points.csv", df, VOXEL)
    assert [p.name for p in tmp_path.iterdir()] == ["points.csv"]  # temp file renamed
    header = path.read_text().splitlines()[0].split(",")
    assert header == [*POINT_COLUMNS, *UM_COLUMNS, *OPTIONAL_COLUMNS, "extra"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # *_um in the file: no default warning
        back = read_points(path)
    assert back.attrs["layout"] == "schema"
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert back.pair_id.dtype == np.int64 and back.track_id.dtype == np.int64
    for c in POINT_COLUMNS:
        assert back[c].dtype == np.float64


def test_write_recomputes_um_and_orders(tmp_path):
    df = pd.DataFrame({"extra": ["a"], "x": [10], "y": [20], "z": [2], "z_um": [999.0]})
    path = write_points(tmp_path / "p.csv", df, VOXEL)
    back = read_points(path)
    assert list(back.columns) == [*POINT_COLUMNS, *UM_COLUMNS, "extra"]
    assert back.t.tolist() == [0.0]
    np.testing.assert_allclose(back[list(UM_COLUMNS)].to_numpy(), [[0.6, 2.6, 1.3]])


def test_write_points_rejects_bad_tables(tmp_path):
    with pytest.raises(InputError, match="lacks column.*x"):
        write_points(tmp_path / "p.csv", pd.DataFrame({"z": [1], "y": [2]}), VOXEL)
    with pytest.raises(InputError, match="'y'.*row 2"):
        write_points(
            tmp_path / "p.csv", pd.DataFrame({"z": [1, 2], "y": [2, np.nan], "x": [1, 1]}), VOXEL
        )
    with pytest.raises(InputError, match="voxel size"):
        write_points(tmp_path / "p.csv", pd.DataFrame({"z": [1], "y": [2], "x": [3]}), (0, 1, 1))
    assert not list(tmp_path.iterdir())


def test_write_points_keeps_existing_file_on_error(tmp_path):
    path = write_points(tmp_path / "p.csv", points_frame([[0, 1, 2, 3]], VOXEL), VOXEL)
    before = path.read_text()
    with pytest.raises(InputError):
        write_points(path, pd.DataFrame({"z": [np.nan], "y": [1], "x": [1]}), VOXEL)
    assert path.read_text() == before


def test_schema_without_t_and_without_um_warns(tmp_path):
    path = tmp_path / "zyx.csv"
    path.write_text("z,y,x\n1,2,3\n4.5,5,6\n")
    with pytest.warns(UserWarning, match="zyx.csv.*default"):
        df = read_points(path)
    assert df.t.tolist() == [0.0, 0.0]
    np.testing.assert_allclose(df.z_um, np.array([1, 4.5]) * DEFAULT_VOXEL_SIZE_UM[0])
    assert df.attrs["voxel_size_um"] == DEFAULT_VOXEL_SIZE_UM


def test_schema_voxel_size_recomputes_um(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("t,z,y,x,z_um,y_um,x_um\n0,1,2,3,9,9,9\n")
    df = read_points(path, voxel_size_um=(1, 2, 3))
    assert df[list(UM_COLUMNS)].to_numpy().tolist() == [[1, 4, 9]]


def test_schema_um_only(tmp_path):
    path = tmp_path / "um.csv"
    path.write_text("t,z_um,y_um,x_um\n3,0.6,1.3,2.6\n")
    df = read_points(path, voxel_size_um=VOXEL)
    np.testing.assert_allclose(df[["t", "z", "y", "x"]].to_numpy(), [[3, 2, 10, 20]])
    _raises(path, "physical coordinates.*voxel size")


# --------------------------------------------------------------------------- napari


def test_napari_4d(tmp_path):
    path = tmp_path / "napari.csv"
    path.write_text(
        "index,axis-0,axis-1,axis-2,axis-3,confidence\n0,1.0,2.5,3.5,4.5,0.9\n1,2.0,5,6,7,0.1\n"
    )
    df = read_points(path, voxel_size_um=VOXEL)
    assert df.attrs["layout"] == "napari"
    np.testing.assert_allclose(
        df[list(POINT_COLUMNS)].to_numpy(), [[1, 2.5, 3.5, 4.5], [2, 5, 6, 7]]
    )
    assert "index" not in df.columns
    assert df.confidence.tolist() == [0.9, 0.1]
    np.testing.assert_allclose(df.z_um, [2.5 * 0.3, 5 * 0.3])


def test_napari_3d_and_world(tmp_path):
    path = tmp_path / "napari3.csv"
    path.write_text("index,axis-0,axis-1,axis-2\n0,0.6,1.3,2.6\n")
    df = read_points(path, voxel_size_um=VOXEL)
    assert df.t.tolist() == [0.0]
    np.testing.assert_allclose(df[["z", "y", "x"]].to_numpy(), [[0.6, 1.3, 2.6]])
    world = read_points(path, voxel_size_um=VOXEL, napari_world=True)
    np.testing.assert_allclose(world[["z", "y", "x"]].to_numpy(), [[2, 10, 20]])
    np.testing.assert_allclose(world[list(UM_COLUMNS)].to_numpy(), [[0.6, 1.3, 2.6]])
    _raises(path, "napari_world", napari_world=True)


def test_napari_too_few_axes(tmp_path):
    path = tmp_path / "napari2.csv"
    path.write_text("index,axis-0,axis-1\n0,1,2\n")
    _raises(path, "missing coordinate column.*axis-2")


# --------------------------------------------------------------------------- Arivis


ARIVIS = (
    '"","X (px), Center of Mass (Intensities) #1","Y (px), Center of Mass (Intensities) #1",'
    '"Z (px), Center of Mass (Intensities) #1","X (px), Center of Geometry","Time Point",'
    '"Tags","Volume (µm³)"\n'
    '1,448.94,467.52,20,1,0,"Pair07_1",0.12\n'
    '2,443.86,493.40,20.97,1,0,"Pair07_2",0.11\n'
    '3,444.45,480.46,22.18,1,1,"Pair12_1, checked",0.10\n'
    '4,502.68,479.00,28.87,1,1,"",0.13\n'
)


def test_arivis_with_pair_tags(tmp_path):
    path = tmp_path / "arivis.csv"
    path.write_text(ARIVIS, encoding="utf-8")
    df = read_points(path, voxel_size_um=VOXEL)
    assert df.attrs["layout"] == "arivis"
    np.testing.assert_allclose(
        df.x, [448.94, 443.86, 444.45, 502.68]
    )  # centre of mass, not geometry
    np.testing.assert_allclose(df.z, [20, 20.97, 22.18, 28.87])
    assert df.t.tolist() == [0, 0, 1, 1]
    assert df.pair_id.tolist() == [7, 7, 12, -1]
    assert df.pair_id.dtype == np.int64
    assert "Tags" in df.columns and "Volume (µm³)" in df.columns
    assert list(df.columns[:7]) == [*POINT_COLUMNS, *UM_COLUMNS]


def test_arivis_semicolon_decimal_comma_latin1(tmp_path):
    text = (
        "X (px), Center of Mass (Intensities) #1;Y (px), Center of Mass (Intensities) #1;"
        "Z (px), Center of Mass (Intensities) #1;Tags\n"
        "448,5;467,25;20;Pair03_1\n"
        "443,0;493,0;21;Pair03_2\n"
    )
    path = tmp_path / "arivis_semicolon.csv"
    path.write_bytes(text.encode("cp1252"))
    df = read_points(path, voxel_size_um=VOXEL)
    np.testing.assert_allclose(
        df[["t", "z", "y", "x"]].to_numpy(), [[0, 20, 467.25, 448.5], [0, 21, 493, 443]]
    )
    assert df.pair_id.tolist() == [3, 3]


def test_arivis_missing_axis(tmp_path):
    path = tmp_path / "arivis_bad.csv"
    path.write_text('"X (px), Center of Mass","Y (px), Center of Mass"\n1,2\n')
    err = _raises(path, r"missing coordinate column\(s\) Z \(px\)")
    assert "X (px), Center of Mass" in str(err)  # found columns are listed


# --------------------------------------------------------------------------- x_px


def test_px_layout(tmp_path):
    path = tmp_path / "px.csv"
    path.write_text("x_px,y_px,z_px,t\n1,2,3,4\n")
    df = read_points(path, voxel_size_um=VOXEL)
    assert df.attrs["layout"] == "px"
    assert df[list(POINT_COLUMNS)].to_numpy().tolist() == [[4, 3, 2, 1]]


def test_real_gt_file():
    path = REAL / "gt_ds5_com_float_from_Results.csv"
    if not path.exists():
        pytest.skip(f"{path} not available")
    df = read_points(path, voxel_size_um=VOXEL)
    assert len(df) == 79
    assert (df.t == 0).all()
    assert df.x.iloc[0] == pytest.approx(448.944248704663)
    assert df.y.iloc[0] == pytest.approx(467.519170984456)
    assert df.z.iloc[0] == pytest.approx(20.0)
    np.testing.assert_allclose(df.z_um, df.z * 0.3)
    assert df[list(POINT_COLUMNS)].notna().all().all()


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    _raises(tmp_path / "nope.csv", "not found")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    _raises(path, "empty")
    path.write_text("\n  \n")
    _raises(path, "empty")


def test_header_only_gives_zero_rows(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("t,z,y,x\n")
    df = read_points(path, voxel_size_um=VOXEL)
    assert len(df) == 0
    assert list(df.columns) == [*POINT_COLUMNS, *UM_COLUMNS]


def test_missing_columns_named(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("t,z,y,intensity\n0,1,2,3\n")
    err = _raises(path, r"missing coordinate column\(s\) x")
    assert "intensity" in str(err)  # found columns listed
    path.write_text("a,b\n1,2\n")
    _raises(path, r"missing coordinate column\(s\) z, y, x; found columns \['a', 'b'\]")


def test_non_numeric_coordinates(tmp_path):
    path = tmp_path / "text.csv"
    path.write_text("t,z,y,x\n0,1,2,3\n0,1,oops,3\n")
    _raises(path, r"column 'y' is not numeric: data row 2 \(line 3\) holds 'oops'")


def test_nan_coordinates(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("t,z,y,x\n0,1,2,3\n0,1,2,3\n0,,2,3\n")
    _raises(path, r"column 'z' has a missing \(NaN\).*data row 3")
    path.write_text("t,z,y,x\n0,1,2,nan\n")
    _raises(path, r"column 'x'.*data row 1")


def test_bad_pair_id(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("t,z,y,x,pair_id\n0,1,2,3,\n0,1,2,3,abc\n")
    _raises(path, "pair_id.*row 2", voxel_size_um=VOXEL)


@pytest.mark.parametrize(
    ("column", "row"),
    [("channel", "0,1,2,3,zero"), ("t", "one,1,2,3,0"), ("score", "0,1,2,3,0,high")],
)
def test_non_numeric_channel_t_or_score_names_file_line_and_column(tmp_path, column, row):
    path = tmp_path / "cells.csv"
    header = "t,z,y,x,channel" + (",score" if column == "score" else "")
    good = "0,1,2,3,0" + (",0.5" if column == "score" else "")
    path.write_text(f"{header}\n{good}\n{good}\n{row}\n")
    bad = row.split(",")[header.split(",").index(column)]
    _raises(
        path,
        rf"column '{column}' is not numeric: data row 3 \(line 4\) holds '{bad}'",
        voxel_size_um=VOXEL,
    )


def test_bad_cell_line_counts_blank_lines_and_multiline_cells(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text('t,z,y,x,note\n\n0,1,2,3,"two\nlines"\n   \n0,1,2,oops,ok\n')
    _raises(path, r"column 'x' is not numeric: data row 2 \(line 6\)", voxel_size_um=VOXEL)


@pytest.mark.parametrize(
    ("cells", "match"),
    [
        ("0.5,1,2,3,0", r"'t'.*whole frame number.*line 2"),
        ("-1,1,2,3,0", r"'t'.*line 2.*-1"),
        ("0,1,2,3,1.5", r"'channel'.*whole number.*line 2"),
        ("0,1,2,3,-2", r"'channel'.*line 2"),
        ("0,1,2,3,", r"'channel' has a missing.*line 2"),
    ],
)
def test_t_and_channel_must_be_whole_non_negative_numbers(tmp_path, cells, match):
    path = tmp_path / "whole.csv"
    path.write_text(f"t,z,y,x,channel\n{cells}\n")
    _raises(path, match, voxel_size_um=VOXEL)


@pytest.mark.parametrize("value", ["1e308", "-2e6", "inf", "-Infinity"])
def test_absurd_or_infinite_coordinates_are_refused(tmp_path, value):
    path = tmp_path / "far.csv"
    path.write_text(f"t,z,y,x\n0,1,2,3\n0,1,2,{value}\n")
    _raises(path, r"column 'x'.*data row 2 \(line 3\)", voxel_size_um=VOXEL)


def test_absurd_physical_coordinates_are_refused(tmp_path):
    path = tmp_path / "um.csv"
    path.write_text("t,z_um,y_um,x_um\n0,1,2,3e9\n")
    _raises(path, r"column 'x_um'.*line 2", voxel_size_um=VOXEL)
    path.write_text("t,z_um,y_um,x_um\n0,1,2,9e5\n")  # 9e5 µm / 0.13 µm > 1e6 voxels
    _raises(path, r"'x_um'.*voxels.*line 2", voxel_size_um=VOXEL)


def test_valid_channel_and_t_read_as_numbers(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("t,z,y,x,channel,score\n2,1,2,3,1,\n0.0,-1.5,2,3,0,0.25\n")
    df = read_points(path, voxel_size_um=VOXEL)
    assert df.channel.tolist() == [1, 0] and df.channel.dtype == np.int64
    assert df.t.tolist() == [2.0, 0.0]
    assert np.isnan(df.score[0]) and df.score[1] == 0.25


# --------------------------------------------------------------------------- CSV injection

FORMULAS = ["=1+2", "+cmd|' /C calc'!A0", "@SUM(A1)", "\tx", "\rx", "-x", "-", "'=q", "''+y"]
PLAIN = ["-1", "-0.5", "ok", "", "a=b", "'quoted"]


def test_text_cells_that_a_spreadsheet_runs_are_neutralised(tmp_path):
    values = FORMULAS + PLAIN
    n = len(values)
    coords = np.column_stack([np.zeros(n), np.full(n, -1.5), np.arange(n), np.arange(n)])
    df = points_frame(coords, VOXEL, status=values, note=values[::-1], score=np.linspace(-1, 1, n))
    df["=HYPERLINK(1)"] = values
    path = write_points(tmp_path / "p.csv", df, VOXEL)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    for cell, value in zip(raw["status"], values, strict=True):
        assert cell == ("'" + value if value in FORMULAS else value)
    assert "'=HYPERLINK(1)" in raw.columns
    assert raw["z"].tolist() == ["-1.5"] * n  # numeric columns untouched
    assert raw["score"].iloc[0] == "-1.0"
    back = read_points(path)
    pd.testing.assert_frame_equal(back.fillna(""), df.fillna(""), check_dtype=False)


def test_write_csv_neutralises_any_table(tmp_path):
    path = write_csv(tmp_path / "plates.csv", pd.DataFrame({"t": [0, 1], "label": ["=1", "b"]}))
    assert path.read_text().splitlines() == ["t,label", "0,'=1", "1,b"]


def test_column_names_repeated_once_blanks_are_stripped(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("t,z,y,x, x\n0,1,2,3,4\n")
    _raises(path, r"column name\(s\) \['x'\] appear more than once", voxel_size_um=VOXEL)
