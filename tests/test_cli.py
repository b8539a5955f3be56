"""End-to-end tests of the ``kinetochores`` command (simulate -> detect -> evaluate)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from napari_kinetochores.cli import main

VOXEL_ARGS = ["--voxel-size", "0.3", "0.13", "0.13"]


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    """A small simulated two-frame, two-colour movie and its ground truth.

    SNR 10 sits between the "moderate" (7) and "high" (14) levels: at 7 the
    classical detector's F1 varies between 0.87 and 0.95 with the seed.
    """
    folder = tmp_path_factory.mktemp("cli")
    image, gt = folder / "movie.tif", folder / "gt.csv"
    args = ["simulate", str(image), "--gt", str(gt), "--frames", "2"]
    args += ["--shape", "24", "96", "96", "--pairs", "12", "--snr", "10", "--seed", "0"]
    assert main(args) == 0
    return image, gt


@pytest.fixture(scope="module")
def detections(movie):
    image, _ = movie
    pred = image.parent / "pred.csv"
    assert main(["detect", str(image), "-o", str(pred), "--method", "classical", "--quiet"]) == 0
    return pred


def test_simulate_writes_movie_and_ground_truth(movie):
    from napari_kinetochores.io import read_volume

    image, gt = movie
    volume = read_volume(image)
    assert volume.data.shape == (2, 2, 24, 96, 96)
    assert tuple(volume.voxel_size_um) == pytest.approx((0.3, 0.13, 0.13))
    table = pd.read_csv(gt)
    assert list(table.columns[:7]) == ["t", "z", "y", "x", "z_um", "y_um", "x_um"]
    assert set(table["channel"]) == {0, 1}
    assert set(table["t"]) == {0, 1}
    assert (table["channel"] == 0).sum() == 2 * 24  # 12 pairs, 2 frames


def test_detect_writes_kinetochore_channel(detections):
    table = pd.read_csv(detections)
    assert list(table.columns[:7]) == ["t", "z", "y", "x", "z_um", "y_um", "x_um"]
    assert set(table["t"]) == {0, 1}
    assert set(table["channel"]) == {0}  # only the kinetochore channel by default
    assert (table["status"] == "auto").all()
    assert table["z_um"].to_numpy() == pytest.approx(table["z"].to_numpy() * 0.3)
    assert 30 <= len(table) <= 60


def test_end_to_end_f1(movie, detections, capsys):
    _, gt = movie
    capsys.readouterr()
    assert main(["evaluate", str(detections), str(gt), *VOXEL_ARGS, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    overall = report["overall"]
    assert overall["n_frames"] == 2
    assert overall["n_gt"] == 48
    assert overall["f1@0.3"] >= 0.9, overall
    assert overall["precision@0.3"] >= 0.95
    assert overall["median_nm"] < 100
    assert {"f1@0.15", "p95_nm", "median_z_nm"} <= set(overall)
    assert [row["t"] for row in report["per_frame"]] == [0, 1]


def test_evaluate_text_and_per_frame_csv(movie, detections, tmp_path, capsys):
    _, gt = movie
    per_frame = tmp_path / "frames.csv"
    capsys.readouterr()
    args = ["evaluate", str(detections), str(gt), *VOXEL_ARGS, "--per-frame", str(per_frame)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "cutoff 0.3 µm: F1" in out and "cutoff 0.15 µm: F1" in out
    assert "localisation error" in out and " nm" in out
    frames = pd.read_csv(per_frame)
    assert list(frames["t"]) == [0, 1]
    assert frames["n_gt"].tolist() == [24, 24]


def test_evaluate_all_channels_counts_both_colours(movie, detections, capsys):
    _, gt = movie
    capsys.readouterr()
    assert (
        main(["evaluate", str(detections), str(gt), *VOXEL_ARGS, "--json", "--channel", "-1"]) == 0
    )
    overall = json.loads(capsys.readouterr().out)["overall"]
    assert overall["n_gt"] == 96  # EGFP and mCherry rows


def test_detect_frame_selection(movie, tmp_path, capsys):
    image, gt = movie
    pred = tmp_path / "first.csv"
    args = ["detect", str(image), "-o", str(pred), "--method", "classical", "--quiet"]
    assert main([*args, "--frames", "0:1"]) == 0
    assert "1 frame(s)" in capsys.readouterr().out
    table = pd.read_csv(pred)
    assert len(table) > 0 and set(table["t"]) == {0}
    pred_1 = tmp_path / "second.csv"
    assert (
        main(
            [
                "detect",
                str(image),
                "-o",
                str(pred_1),
                "--method",
                "classical",
                "--quiet",
                "--frames",
                "1",
            ]
        )
        == 0
    )
    assert set(pd.read_csv(pred_1)["t"]) == {1}


def test_detect_all_channels(movie, tmp_path):
    image, _ = movie
    pred = tmp_path / "both.csv"
    args = ["detect", str(image), "-o", str(pred), "--method", "classical", "--quiet"]
    assert main([*args, "--all-channels", "--frames", "0"]) == 0
    table = pd.read_csv(pred)
    assert set(table["channel"]) == {0, 1}


# --------------------------------------------------------------------------
# bad input: exit status 2 and a one-line message naming the file


def _fails_naming(capsys, argv, name):
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "error:" in captured.err
    assert name in captured.err, captured.err
    assert "Traceback" not in captured.err
    return captured.err


def test_detection_options_from_the_command_line():
    from napari_kinetochores.cli import _detection_options, build_parser
    from napari_kinetochores.detection import DetectionOptions

    parser = build_parser()
    default = _detection_options(parser.parse_args(["detect", "movie.tif", "-o", "out.csv"]))
    assert default == DetectionOptions()
    chosen = _detection_options(
        parser.parse_args(
            [
                "detect",
                "movie.tif",
                "-o",
                "out.csv",
                "--test-time-flips",
                "--precision",
                "fp32",
                "--threshold",
                "0.4",
                "--resample",
            ]
        )
    )
    assert chosen.test_time_flips and chosen.precision == "fp32" and chosen.threshold == 0.4
    assert not default.resample_to_model and chosen.resample_to_model


def test_missing_movie(tmp_path, capsys):
    missing = tmp_path / "nothing_here.tif"
    argv = ["detect", str(missing), "-o", str(tmp_path / "p.csv"), "--method", "classical"]
    _fails_naming(capsys, argv, "nothing_here.tif")
    assert not (tmp_path / "p.csv").exists()


def test_missing_points_file(movie, tmp_path, capsys):
    _, gt = movie
    argv = ["evaluate", str(tmp_path / "no_pred.csv"), str(gt), *VOXEL_ARGS]
    _fails_naming(capsys, argv, "no_pred.csv")


def test_corrupt_tiff(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00garbage")
    argv = ["detect", str(corrupt), "-o", str(tmp_path / "p.csv"), "--method", "classical"]
    _fails_naming(capsys, argv, "corrupt.tif")


def test_csv_missing_columns(movie, tmp_path, capsys):
    _, gt = movie
    partial = tmp_path / "partial.csv"
    partial.write_text("t,z,y\n0,1,2\n")
    err = _fails_naming(capsys, ["evaluate", str(partial), str(gt), *VOXEL_ARGS], "partial.csv")
    assert "x" in err
    _fails_naming(capsys, ["evaluate", str(gt), str(partial), *VOXEL_ARGS], "partial.csv")


def test_zero_voxel_size(movie, detections, tmp_path, capsys):
    image, gt = movie
    bad_voxel = ["--voxel-size", "0", "0.13", "0.13"]
    # the argument is at fault, and is named
    err = _fails_naming(capsys, ["evaluate", str(detections), str(gt), *bad_voxel], "--voxel-size")
    assert "voxel size" in err
    argv = [
        "detect",
        str(image),
        "-o",
        str(tmp_path / "p.csv"),
        "--method",
        "classical",
        *bad_voxel,
    ]
    assert "voxel size" in _fails_naming(capsys, argv, "--voxel-size")


def test_unknown_axes(movie, tmp_path, capsys):
    image, _ = movie
    argv = ["detect", str(image), "-o", str(tmp_path / "p.csv"), "--method", "classical"]
    err = _fails_naming(capsys, [*argv, "--axes", "QQQ"], "movie.tif")
    assert "QQQ" in err


def test_frames_outside_movie(movie, tmp_path, capsys):
    image, _ = movie
    argv = ["detect", str(image), "-o", str(tmp_path / "p.csv"), "--method", "classical"]
    capsys.readouterr()
    assert main([*argv, "--quiet", "--frames", "5:7"]) == 2
    assert "outside the movie" in capsys.readouterr().err
    assert main([*argv, "--quiet", "--frames", "one"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_unsupported_simulate_output(tmp_path, capsys):
    argv = ["simulate", str(tmp_path / "movie.xyz"), "--gt", str(tmp_path / "gt.csv")]
    _fails_naming(capsys, [*argv, "--frames", "1", "--shape", "8", "32", "32"], "movie.xyz")


def test_simulate_layout_and_set_options(tmp_path, capsys):
    from napari_kinetochores.io import read_volume

    image, gt = tmp_path / "ball.tif", tmp_path / "gt.csv"
    argv = ["simulate", str(image), "--gt", str(gt), "--frames", "3", "--shape", "12", "48", "48"]
    argv += ["--pairs", "4", "--layout", "ball", "--set", "output_dtype=uint8"]
    argv += ["--set", "voxel_size_um=(0.5, 0.16, 0.16)", "--set", "hot_pixel_fraction=0.01"]
    assert main(argv) == 0
    # the message counts what the CSV holds: every frame and both channels
    message = capsys.readouterr().out
    assert "(48 ground-truth points: 8 kinetochores in 3 frames, 2 channels)" in message
    volume = read_volume(image)
    assert volume.data.dtype.name == "uint8"
    assert tuple(volume.voxel_size_um) == pytest.approx((0.5, 0.16, 0.16))
    assert len(pd.read_csv(gt)) == 48
    _fails_naming(capsys, [*argv, "--set", "no_such_field=1"], "no_such_field")
    _fails_naming(capsys, [*argv, "--set", "hot_pixel_fraction=2"], "hot_pixel_fraction")


def test_evaluate_json_is_strict_json_without_matches(movie, tmp_path, capsys):
    _, gt = movie
    far = tmp_path / "far.csv"
    far.write_text("t,z,y,x\n0,0,0,0\n")
    capsys.readouterr()
    assert main(["evaluate", str(far), str(gt), *VOXEL_ARGS, "--json"]) == 0

    def reject(token):
        raise ValueError(f"non-standard JSON constant {token}")

    report = json.loads(capsys.readouterr().out, parse_constant=reject)
    assert report["overall"]["tp@0.3"] == 0


def test_evaluate_without_matches_reports_null_errors(movie, tmp_path, capsys):
    _, gt = movie
    far = tmp_path / "far.csv"
    far.write_text("t,z,y,x\n0,0,0,0\n")
    capsys.readouterr()
    assert main(["evaluate", str(far), str(gt), *VOXEL_ARGS, "--json"]) == 0
    overall = json.loads(capsys.readouterr().out)["overall"]
    assert overall["tp@0.3"] == 0 and overall["f1@0.3"] == 0.0
    assert overall["median_nm"] is None  # NaN is not valid JSON


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_detect_refuses_to_write_over_its_input_or_another_file(movie, tmp_path, capsys):
    image, _ = movie
    copy = tmp_path / "movie.tif"
    shutil.copy(image, copy)
    before = copy.read_bytes()
    args = ["--method", "classical", "--quiet", "--frames", "0"]
    err = _fails_naming(capsys, ["detect", str(copy), "-o", str(copy), *args], "movie.tif")
    assert "input" in _one_error_line(err)
    same = tmp_path / "." / "movie.tif"  # the same file, spelt otherwise
    _fails_naming(capsys, ["detect", str(copy), "-o", str(same), *args], "movie.tif")
    assert copy.read_bytes() == before
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    err = _fails_naming(capsys, ["detect", str(copy), "-o", str(notes), *args], "notes.txt")
    assert "--force" in _one_error_line(err) and notes.read_text() == "keep me"
    assert main(["detect", str(copy), "-o", str(notes), *args, "--force"]) == 0
    assert len(pd.read_csv(notes)) > 0
    assert main(["detect", str(copy), "-o", str(tmp_path / "new.csv"), *args]) == 0
    assert main(["detect", str(copy), "-o", str(tmp_path / "new.csv"), *args]) == 0  # a CSV: fine


def test_frames_are_parsed_into_a_checked_unique_selection(movie, tmp_path, capsys):
    image, _ = movie
    argv = ["detect", str(image), "--method", "classical", "--quiet"]
    assert main([*argv, "-o", str(tmp_path / "once.csv"), "--frames", "1"]) == 0
    assert main([*argv, "-o", str(tmp_path / "thrice.csv"), "--frames", "1,1,1"]) == 0
    once, thrice = (pd.read_csv(tmp_path / n) for n in ("once.csv", "thrice.csv"))
    assert len(once) > 0
    pd.testing.assert_frame_equal(thrice, once)
    for text in ("2:1", ",", "", "0:0"):
        out = tmp_path / "empty.csv"
        err = _fails_naming(capsys, [*argv, "-o", str(out), "--frames", text], "--frames")
        assert "selects no frame" in _one_error_line(err)
        assert not out.exists()
    for text in ("0:1000000000", "0:1000000", ",".join(map(str, range(100_000)))):
        err = _fails_naming(capsys, [*argv, "-o", str(tmp_path / "p.csv"), "--frames", text], "")
        assert "outside the movie" in err and len(err) < 400


@pytest.mark.parametrize("voxel", [("1e-300", "0.13", "0.13"), ("0.3", "1e300", "0.13")])
def test_voxel_sizes_outside_the_physical_range_are_refused(
    movie, detections, tmp_path, capsys, voxel
):
    image, gt = movie
    bad = ["--voxel-size", *voxel]
    commands = [
        ["detect", str(image), "-o", str(tmp_path / "p.csv"), "--method", "classical", *bad],
        ["evaluate", str(detections), str(gt), *bad],
        ["simulate", str(tmp_path / "s.tif"), "--gt", str(tmp_path / "g.csv"), *bad],
        ["pair", str(gt), "-o", str(tmp_path / "q.csv"), *bad],
    ]
    for argv in commands:
        err = _fails_naming(capsys, argv, "voxel size")
        assert "0.001" in err and "100" in err
        _one_error_line(err)
    assert not any(tmp_path.iterdir())


def _unwritable_commands(image, gt, detections, tmp_path, out):
    quiet = ["--quiet"]
    return {
        "detect": ["detect", str(image), "-o", str(out), "--method", "classical", *quiet],
        "pair": ["pair", str(gt), "-o", str(out), *VOXEL_ARGS, *quiet],
        "track": ["track", str(gt), "-o", str(out), *VOXEL_ARGS, *quiet],
        "measure": ["measure", str(gt), "-o", str(out), *VOXEL_ARGS, *quiet],
        "measure --plates": ["measure", str(gt), "-o", str(tmp_path / "m.csv"), "--plates",
                             str(out), *VOXEL_ARGS, *quiet],
        "simulate": ["simulate", str(out.with_suffix(".tif")), "--gt", str(tmp_path / "g.csv"),
                     "--frames", "1", "--shape", "8", "32", "32", "--pairs", "2"],
        "simulate --gt": ["simulate", str(tmp_path / "s.tif"), "--gt", str(out), "--frames", "1",
                          "--shape", "8", "32", "32", "--pairs", "2"],
        "evaluate --per-frame": ["evaluate", str(detections), str(gt), *VOXEL_ARGS,
                                 "--per-frame", str(out)],
        "batch": ["batch", str(image), "-o", str(out.parent / "batch_out"), "--method",
                  "classical", "--workers", "1", *quiet],
    }  # fmt: skip


@pytest.mark.parametrize("case", ["parent is a file", "missing folder"])
def test_unwritable_outputs_end_in_one_error_line(movie, detections, tmp_path, capsys, case):
    image, gt = movie
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("x")
    parent = blocker if case == "parent is a file" else tmp_path / "missing" / "deeper"
    out = parent / "out.csv"
    commands = _unwritable_commands(image, gt, detections, tmp_path, out)
    if case == "missing folder":
        del commands["batch"]  # batch creates its output folder
    for name, argv in commands.items():
        err = _fails_naming(capsys, argv, str(parent))
        assert "cannot" in _one_error_line(err), name
    assert blocker.read_text() == "x" and not (tmp_path / "missing").exists()


def test_evaluate_per_frame_is_written_atomically_and_clears_leftovers(
    movie, detections, tmp_path, capsys, monkeypatch
):
    import errno
    import os

    _, gt = movie
    per_frame = tmp_path / "per_frame.csv"
    per_frame.write_text("old,content\n")
    leftover = tmp_path / ".per_frame.csv.0123abcd.tmp"  # from a write killed long ago
    leftover.write_text("t,f1\n0,")
    os.utime(leftover, (0, 0))
    argv = ["evaluate", str(detections), str(gt), *VOXEL_ARGS, "--per-frame", str(per_frame)]

    def disk_full(self, path, *args, **kwargs):
        Path(path).write_text("t,f1\n0,")  # a torn write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(pd.DataFrame, "to_csv", disk_full)
        err = _fails_naming(capsys, argv, "per_frame.csv")
    assert "no space left" in _one_error_line(err)
    assert per_frame.read_text() == "old,content\n"  # untouched
    assert main(argv) == 0
    assert list(pd.read_csv(per_frame).columns[:1]) == ["t"]
    assert [p.name for p in tmp_path.iterdir()] == ["per_frame.csv"]


# --------------------------------------------------------------------------
# the installed console script


def _console_script() -> str:
    candidate = Path(sys.executable).parent / "kinetochores"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("kinetochores")
    assert found, "the kinetochores console script is not installed"
    return found


def test_console_script_help():
    result = subprocess.run(
        [_console_script(), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    for command in ("simulate", "detect", "evaluate", "train"):
        assert command in result.stdout


def test_console_script_bad_input_exit_code(tmp_path):
    result = subprocess.run(
        [
            _console_script(),
            "evaluate",
            str(tmp_path / "a.csv"),
            str(tmp_path / "b.csv"),
            *VOXEL_ARGS,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "a.csv" in result.stderr and "Traceback" not in result.stderr


def test_export_bioimageio_then_detect_gives_the_default_models_points(tmp_path, capsys):
    """Issue 22: ``detect --model pkg.zip`` gives the same CSV rows as ``--model default``."""
    pytest.importorskip(
        "bioimageio.spec",
        reason='bioimage.io support not installed: pip install "napari-kinetochores[bioimageio]"',
    )
    package, movie = tmp_path / "pkg.zip", tmp_path / "movie.tif"
    assert main(["export-bioimageio", "default", "-o", str(package)]) == 0
    assert "pkg.zip" in capsys.readouterr().out
    args = ["simulate", str(movie), "--gt", str(tmp_path / "gt.csv"), "--frames", "3"]
    assert main([*args, "--shape", "16", "64", "64", "--pairs", "6", "--seed", "1"]) == 0
    tables = {}
    for model in ("default", str(package)):
        output = tmp_path / f"{Path(model).stem}.csv"
        assert main(["detect", str(movie), "--model", model, "-o", str(output), "--quiet"]) == 0
        tables[model] = output.read_text()
    assert len(tables["default"].splitlines()) > 20  # 12 kinetochores x 3 frames, and a header
    assert tables[str(package)] == tables["default"]
