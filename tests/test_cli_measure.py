"""Measurements table and the ``pair``, ``track`` and ``measure`` commands end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_kinetochores.analysis.measurements import (
    MEASUREMENT_COLUMNS,
    measure_table,
    pairing_accuracy,
    perturb_points,
)
from napari_kinetochores.analysis.plate import PlateWarning
from napari_kinetochores.analysis.tracking import link_accuracy
from napari_kinetochores.cli import main
from napari_kinetochores.io import points_frame, read_points, write_points

VOXEL = (0.3, 0.13, 0.13)
VOXEL_ARGS = ["--voxel-size", "0.3", "0.13", "0.13"]


@pytest.fixture(scope="module")
def truth():
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    params = SimulationParams(n_frames=5, shape_zyx=(32, 96, 96), n_pairs=14, plate_tilt_deg=50)
    return simulate_movie(params, seed=7)


@pytest.fixture(scope="module")
def files(truth, tmp_path_factory):
    """Detections (both channels, 23 nm noise per axis, 3 % dropouts) in shuffled order."""
    folder = tmp_path_factory.mktemp("measure")
    det = perturb_points(truth.points, VOXEL, noise_nm=23.0, dropout=0.03, seed=3)
    det = det.sample(frac=1.0, random_state=0).reset_index(drop=True)
    write_points(folder / "truth_ids.csv", det, VOXEL)  # keeps the true ids for checking
    write_points(folder / "det.csv", det.drop(columns=["pair_id", "track_id", "true_row"]), VOXEL)
    kin = det[det["channel"] == 0]
    write_points(folder / "egfp.csv", kin.drop(columns=["pair_id", "track_id", "channel"]), VOXEL)
    write_points(
        folder / "mcherry.csv",
        det[det["channel"] == 1].drop(columns=["pair_id", "track_id", "channel"]),
        VOXEL,
    )
    return folder, det


def test_pair_track_measure_end_to_end(files, capsys):
    folder, det = files
    paired, tracked, measured = folder / "p.csv", folder / "tr.csv", folder / "m.csv"
    assert main(["pair", str(folder / "det.csv"), "-o", str(paired), *VOXEL_ARGS, "--quiet"]) == 0
    assert "sister pairs" in capsys.readouterr().out
    out = pd.read_csv(paired)
    assert list(out.columns[:7]) == ["t", "z", "y", "x", "z_um", "y_um", "x_um"]
    assert len(out) == len(det)
    np.testing.assert_allclose(out["x"], det["x"])  # row order kept
    kin = (det["channel"] == 0).to_numpy()
    acc = pairing_accuracy(det["t"][kin], det["pair_id"][kin], out["pair_id"][kin])
    assert acc["pair_recall"] >= 0.97
    assert out.loc[out["pair_id"] < 0, "pair_reason"].notna().all()

    assert main(["track", str(paired), "-o", str(tracked), *VOXEL_ARGS, "--quiet"]) == 0
    out = pd.read_csv(tracked)
    links = link_accuracy(det["t"][kin], det["track_id"][kin], out["track_id"][kin])
    assert links["link_recall"] >= 0.98 and links["link_precision"] >= 0.98
    # pair ids kept and made consistent along tracks; mCherry rows follow their kinetochore
    assert "pair_id" in out.columns
    assert (out[kin].groupby("track_id")["pair_id"].nunique() == 1).all()
    acc = pairing_accuracy(det["t"][kin], det["pair_id"][kin], out["pair_id"][kin])
    assert acc["pair_recall"] >= 0.97
    mch = ~kin & (out["track_id"] >= 0).to_numpy()
    assert mch.sum() > 0.9 * (~kin).sum()
    egfp_track = dict(
        zip(
            zip(det["t"][kin], det["track_id"][kin], strict=True), out["track_id"][kin], strict=True
        )
    )
    keys = zip(det["t"][mch], det["track_id"][mch], strict=True)
    inherited = [egfp_track.get(k, -2) for k in keys]
    assert np.mean(np.asarray(inherited) == out["track_id"][mch].to_numpy()) > 0.95

    plates = folder / "plates.csv"
    args = ["measure", str(tracked), "-o", str(measured), *VOXEL_ARGS, "--plates", str(plates)]
    assert main([*args, "--quiet"]) == 0
    assert "delta median" in capsys.readouterr().out
    table = pd.read_csv(measured)
    assert len(table) == kin.sum()
    assert list(table.columns) == list(MEASUREMENT_COLUMNS)
    assert table["t"].is_monotonic_increasing
    assert table["kk_distance_um"].dropna().between(0.4, 1.5).all()
    assert table["kk_distance_um"].notna().mean() > 0.9
    assert table["delta_nm"].notna().mean() > 0.9
    # the sister of a row is in the same frame, with the same pair id and K-K distance
    sis = table["sister_row"].to_numpy()
    has = sis >= 0
    np.testing.assert_array_equal(table["t"][has], table["t"].to_numpy()[sis[has]])
    np.testing.assert_array_equal(table["pair_id"][has], table["pair_id"].to_numpy()[sis[has]])
    # the sister axis runs along the plate normal (the simulated jitter is 15° per axis)
    assert table["kk_angle_deg"].median() < 30
    plate_table = pd.read_csv(plates)
    assert list(plate_table["t"]) == list(range(5))
    # the measurement CSV is a valid point table
    again = read_points(measured, voxel_size_um=VOXEL)
    assert len(again) == len(table)


def test_measure_with_separate_mcherry_file(files, truth, capsys):
    folder, det = files
    out = folder / "m2.csv"
    args = ["measure", str(folder / "egfp.csv"), "--mcherry", str(folder / "mcherry.csv")]
    args += ["-o", str(out), *VOXEL_ARGS, "--track", "--quiet"]
    args += ["--chromatic-shift-nm", "0", "0", "0"]
    assert main(args) == 0
    table = pd.read_csv(out)
    assert (table["chromatic_shift_z_nm"] == 0).all()
    assert table["track_id"].min() >= 0  # --track tracked them
    # delta along the sister axis is the simulated +60 nm (outwards) on average
    assert table["delta_1d_nm"].median() == pytest.approx(truth.params.mcherry_offset_nm, abs=10)


def test_measure_table_columns_and_plate_geometry(truth):
    gt = truth.points
    kin = gt[gt["channel"] == 0]
    table = measure_table(gt.drop(columns=["pair_id", "track_id"]), VOXEL)
    assert len(table) == len(kin)
    assert set(table.index) == set(kin.index)
    # the true pairs are found, K-K distance matches the truth
    acc = pairing_accuracy(kin["t"], kin["pair_id"], table.loc[kin.index, "pair_id"])
    assert acc["pair_recall"] == 1.0
    pos = kin[["z_um", "y_um", "x_um"]].to_numpy()
    by_pair = kin.assign(i=np.arange(len(kin))).groupby(["t", "pair_id"])["i"].apply(list)
    true_kk = {tuple(v): np.linalg.norm(pos[v[0]] - pos[v[1]]) for v in by_pair if len(v) == 2}
    got = table.loc[kin.index, "kk_distance_um"].to_numpy()
    for (a, b), d in true_kk.items():
        assert got[a] == pytest.approx(d) and got[b] == pytest.approx(d)
    # no noise: the delta equals the simulated offset, along the sister axis
    assert table["delta_1d_nm"].to_numpy() == pytest.approx(60.0, abs=1.0)
    assert table["delta_nm"].to_numpy() == pytest.approx(60.0, abs=1.0)
    assert table.attrs["plates"]["plate_normal_z"].notna().all()
    # the chromatic shift estimated over sister pairs is zero here
    np.testing.assert_allclose(table.attrs["chromatic_shift_nm"], 0.0, atol=1e-6)


def test_bad_input_cli(tmp_path, capsys):
    no_time = tmp_path / "no_time.csv"
    no_time.write_text("z,y,x\n10,20,20\n12,20,20\n")
    assert main(["track", str(no_time), "-o", str(tmp_path / "o.csv"), *VOXEL_ARGS]) == 2
    err = capsys.readouterr().err
    assert "no_time.csv" in err and "no time column" in err
    assert not (tmp_path / "o.csv").exists()

    # too few spots for a plate: a warning, and the pairs are still written
    few = tmp_path / "few.csv"
    write_points(few, points_frame([[0, 10, 20, 20], [0, 13, 20, 20]], VOXEL), VOXEL)
    with pytest.warns(PlateWarning, match="too few to fit the metaphase plate"):
        assert main(["pair", str(few), "-o", str(tmp_path / "p.csv"), *VOXEL_ARGS, "--quiet"]) == 0
    assert pd.read_csv(tmp_path / "p.csv")["pair_id"].tolist() == [0, 0]

    missing = tmp_path / "missing.csv"
    assert main(["measure", str(missing), "-o", str(tmp_path / "m.csv"), *VOXEL_ARGS]) == 2
    assert "file not found" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["pair", "track", "measure"])
def test_commands_refuse_to_write_over_their_input_or_another_file(
    command, files, tmp_path, capsys
):
    folder, _ = files
    points = tmp_path / "points.csv"
    points.write_bytes((folder / "det.csv").read_bytes())
    before = points.read_bytes()
    movie = tmp_path / "movie.tif"
    movie.write_bytes(b"II*\x00not really a movie")
    for output in (points, movie):
        capsys.readouterr()
        assert main([command, str(points), "-o", str(output), *VOXEL_ARGS]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and output.name in err and "--force" in err, err
    assert points.read_bytes() == before
    assert movie.read_bytes() == b"II*\x00not really a movie"
    assert main([command, str(points), "-o", str(points), *VOXEL_ARGS, "--force"]) == 0
    assert points.read_bytes() != before
