"""Tests of napari_kinetochores.training.finetune: bad input, the validation hold-out, the
re-chosen threshold, the checkpoint in ``detect --model``, interruption, and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from napari_kinetochores.errors import InputError  # noqa: E402
from napari_kinetochores.nn.checkpoint import load_checkpoint  # noqa: E402
from napari_kinetochores.training.finetune import block_cut, finetune  # noqa: E402

VOXEL = (0.3, 0.13, 0.13)
TINY = {"steps_per_epoch": 1, "batch_size": 1, "patch_shape": [8, 32, 32]}


@pytest.fixture(scope="module")
def movie():
    """(image (3, 1, 8, 48, 48), true spots of channel 0): about 12 spots per frame."""
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    params = SimulationParams(n_frames=3, shape_zyx=(8, 48, 48), n_pairs=6, voxel_size_um=VOXEL)
    simulated = simulate_movie(params, seed=3)
    points = simulated.points[simulated.points["channel"] == 0].reset_index(drop=True)
    return simulated.image[:, :1], points


def tiny_finetune(image, points, output, **kwargs):
    kwargs.setdefault("minutes", 0.02)
    return finetune(image, points, VOXEL, output, progress=False, settings=TINY, **kwargs)


def test_no_points_in_listed_frames(movie, tmp_path):
    image, points = movie
    deleted = points.assign(status=np.where(points["t"] == 2, "deleted", "auto"))
    with pytest.raises(InputError, match="no points to learn from in the listed frames"):
        tiny_finetune(image, deleted, tmp_path / "m.pt", frames=[2])
    with pytest.raises(InputError, match=r"frames \[7\] are not in the movie"):
        tiny_finetune(image, points, tmp_path / "m.pt", frames=[0, 7])
    assert not (tmp_path / "m.pt").exists()


def test_points_outside_the_volume(movie, tmp_path):
    image, points = movie
    shifted = points.copy()
    shifted.loc[0, "x"] = 60.0
    with pytest.raises(InputError, match=r"1 point\(s\) lie outside the movie .* x=60"):
        tiny_finetune(image, shifted, tmp_path / "m.pt")


def test_voxel_size_disagreeing_with_the_points(movie, tmp_path):
    image, points = movie
    in_um = points.assign(z_um=points["z"] * 0.3, y_um=points["y"] * 0.1, x_um=points["x"] * 0.1)
    with pytest.raises(InputError, match=r"imply a voxel size of \(0.3, 0.1, 0.1\) µm"):
        tiny_finetune(image, in_um, tmp_path / "m.pt")


def test_one_frame_holds_out_a_block_and_never_trains_on_unlisted_frames(movie, tmp_path):
    image, points = movie
    result = tiny_finetune(image, points, tmp_path / "m.pt", frames=[1])
    assert result.validation == "blocks" and result.train_frames == [1]
    assert "held-out block" in result.validated_on and "frame t=1" in result.validated_on
    about = load_checkpoint(result.best_checkpoint).info.training["finetune"]
    assert about["validation"] == "blocks" and about["train_frames"] == [1]


def test_block_cut_leaves_about_a_quarter_out():
    rng = np.random.default_rng(0)
    points = np.column_stack(
        [rng.uniform(0, 8, 80), rng.uniform(20, 30, 80), rng.uniform(0, 100, 80)]
    )
    axis, cut = block_cut(points, (8, 64, 128))
    assert axis == 2  # the spots spread along x
    assert 0.1 <= np.mean(points[:, 2] >= cut) <= 0.4
    with pytest.raises(InputError, match="too few to hold out a block"):
        block_cut(points[:3], (8, 64, 128))


def test_two_frames_hold_out_the_last_and_rechoose_the_threshold(movie, tmp_path):
    image, points = movie
    result = tiny_finetune(image, points, tmp_path / "m.pt", frames=[0, 2])
    assert result.validation == "frame" and result.train_frames == [0]
    assert "held-out frame t=2" in result.validated_on
    loaded = load_checkpoint(result.best_checkpoint)
    validation = loaded.info.training["validation"]
    by_threshold = validation["f1_by_threshold"]
    best = max(by_threshold, key=lambda t: (by_threshold[t], -float(t)))
    assert loaded.info.threshold == pytest.approx(float(best)) == pytest.approx(result.threshold)
    assert validation["f1"] == pytest.approx(result.best_f1)
    assert result.best_f1 >= result.initial_f1  # the start is validated first and kept if best
    assert result.log_path.is_file() and result.log_path.name == "m.log.csv"
    assert result.history[0]["epoch"] == 0  # the starting model, validated first
    assert result.history[0]["val_f1"] == pytest.approx(result.initial_f1)


def test_interruption_keeps_the_best_checkpoint(movie, tmp_path):
    image, points = movie
    output = tmp_path / "m.pt"

    def interrupt(row):
        if row["epoch"] >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny_finetune(image, points, output, minutes=5, on_epoch=interrupt)
    loaded = load_checkpoint(output)  # complete and loadable
    assert loaded.info.training["finetune"]["validation"] == "frame"
    assert not list(tmp_path.glob(".m.pt.tmp*"))

    stopped = tiny_finetune(image, points, tmp_path / "s.pt", minutes=5, should_stop=lambda: True)
    assert stopped.epochs_run == 1 and stopped.best_checkpoint.is_file()


def test_cli_finetune_then_detect_with_the_model(movie, tmp_path, capsys):
    from napari_kinetochores.cli import main
    from napari_kinetochores.io import read_points, write_points

    image, points = movie
    movie_path, csv, model = tmp_path / "movie.npy", tmp_path / "gt.csv", tmp_path / "mine.pt"
    np.save(movie_path, image.astype(np.float32))
    write_points(csv, points, VOXEL)
    voxel = [str(v) for v in VOXEL]
    args = ["finetune", str(movie_path), str(csv), "-o", str(model), "--frames", "0,1"]
    assert main([*args, "--minutes", "0", "--voxel-size", *voxel]) == 0
    assert f"wrote {model}: validation F1" in capsys.readouterr().out
    out = tmp_path / "found.csv"
    detect = ["detect", str(movie_path), "-o", str(out), "--model", str(model), "--quiet"]
    assert main([*detect, "--voxel-size", *voxel]) == 0
    found = read_points(out, voxel_size_um=VOXEL)
    assert len(found) > 0
    # batch (a Dask worker process) loads the same file and finds the same points
    batch = ["batch", str(movie_path), "-o", str(tmp_path / "batch"), "--workers", "1"]
    assert main([*batch, "--model", str(model), "--voxel-size", *voxel, "--quiet"]) == 0
    in_batch = read_points(tmp_path / "batch" / "movie.csv", voxel_size_um=VOXEL)
    np.testing.assert_allclose(in_batch[["t", "z", "y", "x"]], found[["t", "z", "y", "x"]])

    wrong = [str(v) for v in (0.3, 0.2, 0.2)]
    assert main([*args, "--minutes", "0", "--voxel-size", *wrong]) == 2
    assert "imply a voxel size of (0.3, 0.13, 0.13)" in capsys.readouterr().err


def test_points_table_with_other_channels_and_deleted_rows(movie, tmp_path):
    image, points = movie
    two = np.concatenate([image, image], axis=1)
    other = points.assign(channel=1, x=points["x"] + 100.0)  # another channel's rows are ignored
    table = pd.concat([points.assign(channel=0, status="auto"), other], ignore_index=True)
    result = tiny_finetune(two, table, tmp_path / "m.pt", frames=[0], minutes=0)
    assert result.validation == "blocks"
