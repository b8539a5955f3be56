"""Tests of napari_kinetochores.training.unet: a tiny run end to end, resume, configs, and
validation on held-out frames of the user's own labels."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from napari_kinetochores.errors import InputError  # noqa: E402
from napari_kinetochores.nn.checkpoint import load_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_train_tiny_config_then_detect(tmp_path, capsys):
    from napari_kinetochores.cli import main

    config = tmp_path / "tiny.yaml"
    shutil.copy(REPO / "configs" / "tiny.yaml", config)
    out = tmp_path / "run"
    assert main(["train", str(config), "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "validating on 1 simulated movie (SNR moderate; no labels of yours" in printed
    assert "(validation F1 " in printed and " on 1 simulated movie (SNR moderate" in printed
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,loss,val_f1") and len(log) == 3
    loaded = load_checkpoint(out / "best.pt")
    assert loaded.info.training["history"]
    assert loaded.info.threshold in (0.2, 0.5)

    movie, gt, pred = tmp_path / "m.tif", tmp_path / "gt.csv", tmp_path / "pred.csv"
    assert (
        main(
            [
                "simulate",
                str(movie),
                "--gt",
                str(gt),
                "--frames",
                "2",
                "--shape",
                "16",
                "48",
                "48",
                "--pairs",
                "4",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "detect",
                str(movie),
                "-o",
                str(pred),
                "--method",
                "unet",
                "--model",
                str(out / "best.pt"),
                "--quiet",
            ]
        )
        == 0
    )
    import pandas as pd

    table = pd.read_csv(pred)
    assert list(table.columns[:7]) == ["t", "z", "y", "x", "z_um", "y_um", "x_um"]
    assert set(table["channel"]) <= {0}

    # resume continues from the last epoch
    from napari_kinetochores.training.unet import load_config, train

    cfg = load_config(config)
    cfg.output_dir = str(out)
    cfg.epochs = 3
    result = train(cfg, resume=out / "last.pt", progress=False)
    assert result.epochs_run == 3
    assert len((out / "log.csv").read_text().splitlines()) == 4


def test_training_rejects_bad_labels():
    import pandas as pd

    from napari_kinetochores.training.unet import TrainConfig, prepare_sample

    image = np.zeros((1, 1, 4, 8, 8), np.uint16)
    config = TrainConfig()
    with pytest.raises(InputError, match="no labelled points"):
        prepare_sample(
            image, pd.DataFrame(columns=["t", "z", "y", "x"]), (0.3, 0.13, 0.13), config, "x.csv"
        )
    outside = pd.DataFrame({"t": [0.0], "z": [2.0], "y": [3.0], "x": [50.0]})
    with pytest.raises(InputError, match="outside the volume"):
        prepare_sample(image, outside, (0.3, 0.13, 0.13), config, "x.csv")


def test_config_errors(tmp_path):
    from napari_kinetochores.training.unet import load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 2\nbogus: 1\n")
    with pytest.raises(InputError, match=r"bad.yaml.*bogus"):
        load_config(bad)
    bad.write_text("model: {target: distance}\nloss: gaussian_dice\n")
    with pytest.raises(InputError, match="distance"):
        load_config(bad)
    assert math.isfinite(load_config(REPO / "configs" / "tiny.yaml").lr)


def _tiny(tmp_path, **validation):
    from napari_kinetochores.training.unet import load_config

    config = load_config(REPO / "configs" / "tiny.yaml")
    config.output_dir = str(tmp_path / "run")
    config.epochs, config.steps_per_epoch = 1, 2
    config.validation.thresholds = [0.5]
    for key, value in validation.items():
        setattr(config.validation, key, value)
    return config


def _movie(n_frames: int):
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    movie = simulate_movie(
        SimulationParams(n_frames=n_frames, shape_zyx=(16, 48, 48), n_pairs=6), seed=5
    )
    return movie.image, movie.points, movie.params.voxel_size_um


def test_user_labels_are_validated_on_held_out_frames(tmp_path):
    """The F1 reported is that of the held-out frames of the user's movie, which the pool lacks."""
    from napari_kinetochores.training.unet import train, validate
    from napari_kinetochores.training.validation import ValidationFrame

    image, points, voxel = _movie(4)
    config = _tiny(tmp_path, held_out_every=2)
    result = train(config, samples=[(image, points, voxel)], progress=False)
    assert result.validated_on == "2 held-out frames of your labels (t=1, 3)"
    log = pd.read_csv(result.log_path)
    assert list(log["validated_on"]) == ["held_out"] and "f1_held_out" in log.columns
    best = load_checkpoint(result.best_checkpoint)
    assert best.info.training["validated_on"] == result.validated_on
    # the same F1, recomputed from the best model on frames 1 and 3 of the user's labels
    frames = [
        ValidationFrame(
            "held_out",
            image,
            t,
            points[(points["t"] == t) & (points["channel"] == 0)][["z", "y", "x"]].to_numpy(),
            voxel,
        )
        for t in (1, 3)
    ]
    again = validate(best.model, config, frames, "cpu")
    assert again["f1"] == pytest.approx(result.best_f1)


def test_held_out_frames_are_left_out_of_training(tmp_path):
    from napari_kinetochores.training.samples import user_movies
    from napari_kinetochores.training.unet import training_pool
    from napari_kinetochores.training.validation import plan_validation

    image, points, voxel = _movie(4)
    config = _tiny(tmp_path, held_out_every=2)
    movies = user_movies(config.data, [(image, points, voxel)])
    plan = plan_validation(config.validation, movies, channel=0)
    assert plan.held_out == [(0, 1), (0, 3)]
    pool = training_pool(config, np.random.default_rng(0), movies, plan)
    (sample,) = pool.items
    assert len(sample.inputs) == 2  # frames 0 and 2
    kept = [points[(points["t"] == t) & (points["channel"] == 0)] for t in (0, 2)]
    for spots, frame in zip(sample.points, kept, strict=True):
        np.testing.assert_allclose(spots, frame[["z", "y", "x"]].to_numpy())
    assert pool.refresh() == []  # user data are never replaced


def test_without_spare_frames_validation_is_simulated_and_says_why(tmp_path):
    from napari_kinetochores.training.unet import train

    image, points, voxel = _movie(1)
    result = train(_tiny(tmp_path), samples=[(image, points, voxel)], progress=False)
    assert result.validated_on.startswith("1 simulated movie (SNR moderate")
    assert "only one labelled frame" in result.validated_on
    assert pd.read_csv(result.log_path)["validated_on"].tolist() == ["simulated"]
    config = _tiny(tmp_path, source="held_out")
    with pytest.raises(InputError, match="fewer than two frames"):
        train(config, samples=[(image, points, voxel)], progress=False)
    config = _tiny(tmp_path, source="simulate")
    image4, points4, _ = _movie(4)
    result = train(config, samples=[(image4, points4, voxel)], progress=False)
    assert "validation.source: simulate" in result.validated_on


def test_validation_config_errors():
    from napari_kinetochores.training.unet import config_from_dict

    with pytest.raises(InputError, match="validation.source"):
        config_from_dict({"validation": {"source": "users"}})
    with pytest.raises(InputError, match="held_out_every"):
        config_from_dict({"validation": {"held_out_every": 1}})
