"""Tests of napari_kinetochores.training.stardist: configs, the training pool and held-out
validation frames (no TensorFlow), and tiny training runs (marker ``tensorflow``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_kinetochores.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def test_stardist_config_validation():
    from napari_kinetochores.training.stardist import (
        load_stardist_config,
        stardist_config_from_dict,
    )

    config = load_stardist_config(REPO / "configs" / "stardist.yaml")
    assert config.net.grid[0] == 1
    tiny = load_stardist_config(REPO / "configs" / "stardist_tiny.yaml")
    assert tiny.epochs * tiny.steps_per_epoch <= 300
    with pytest.raises(InputError, match="must not subsample z"):
        stardist_config_from_dict({"net": {"grid": [2, 2, 2]}})
    with pytest.raises(InputError, match="divisible"):
        stardist_config_from_dict({"patch_shape": [16, 60, 60]})
    with pytest.raises(InputError, match="unknown option"):
        stardist_config_from_dict({"net": {"n_rayz": 8}})
    assert config.normalization == "noise"
    with pytest.raises(InputError, match="normalization"):
        stardist_config_from_dict({"normalization": "zscore"})
    with pytest.raises(InputError, match="validation.source"):
        stardist_config_from_dict({"validation": {"source": "mine"}})


def test_old_import_path_still_works():
    from napari_kinetochores.backends import stardist as backend
    from napari_kinetochores.training import stardist as training

    assert backend.train_stardist is training.train_stardist
    assert backend.StarDistConfig is training.StarDistConfig
    with pytest.raises(AttributeError):
        backend.no_such_name  # noqa: B018


def _user_movie(n_frames: int):
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    movie = simulate_movie(
        SimulationParams(n_frames=n_frames, shape_zyx=(16, 48, 48), n_pairs=6, snr=14.0), seed=9
    )
    return movie.image, movie.points, movie.params.voxel_size_um


def test_held_out_user_frames_leave_the_pool_and_become_the_validation():
    from napari_kinetochores.training.samples import user_movies
    from napari_kinetochores.training.stardist import (
        StarDistTraining,
        load_stardist_config,
        training_pool,
    )
    from napari_kinetochores.training.validation import plan_validation

    config = load_stardist_config(REPO / "configs" / "stardist_tiny.yaml")
    config.validation.held_out_every = 3
    image, points, voxel = _user_movie(6)
    movies = user_movies(config.data, [(image, points, voxel)])
    plan = plan_validation(config.validation, movies, channel=0)
    assert plan.held_out == [(0, 2), (0, 5)]
    assert plan.description == "2 held-out frames of your labels (t=2, 5)"
    pool = training_pool(config, np.random.default_rng(0), movies, plan)
    assert len(pool) == 4 and pool.refresh() == []
    run = StarDistTraining(config, None, pool, plan, Path("unused"))
    assert [label for label, *_ in run.volumes] == ["held_out", "held_out"]
    for (_, _, labels, gt, _), t in zip(run.volumes, (2, 5), strict=True):
        truth = points[(points["t"] == t) & (points["channel"] == 0)][["z", "y", "x"]]
        np.testing.assert_allclose(gt, truth.to_numpy())
        assert labels.max() == len(truth)  # one instance per held-out label
    # the pool holds the other four frames, in order
    counts = [int(((points["t"] == t) & (points["channel"] == 0)).sum()) for t in (0, 1, 3, 4)]
    assert [int(labels.max()) for _, labels in pool.items] == counts


@pytest.mark.slow
@pytest.mark.tensorflow
def test_tiny_stardist_trains_and_writes_a_model_folder(tiny_stardist_model):
    config, result = tiny_stardist_model
    folder = result.model_dir
    for name in (
        "config.json",
        "weights_best.h5",
        "thresholds.json",
        "kinetochores.json",
        "log.csv",
    ):
        assert (folder / name).is_file(), name
    assert result.epochs_run == config.epochs
    assert 0.0 <= result.best_f1 <= 1.0
    log = pd.read_csv(result.log_path)
    assert list(log["epoch"]) == list(range(1, config.epochs + 1))
    assert np.isfinite(log["loss"]).all()
    assert set(log["validated_on"]) == {"simulated"}
    assert result.validated_on.startswith("1 simulated movie (SNR high")
    stored = json.loads((folder / "config.json").read_text())
    assert stored["grid"] == [1, 2, 2]
    assert stored["anisotropy"] == pytest.approx([0.3 / 0.13, 1.0, 1.0], rel=1e-3)
    assert stored["rays_json"]["kwargs"]["anisotropy"] == pytest.approx(stored["anisotropy"])
    info = json.loads((folder / "kinetochores.json").read_text())
    assert info["validated_on"] == result.validated_on


@pytest.mark.tensorflow
def test_stardist_fine_tuning_on_user_labels_validates_on_their_held_out_frames(tmp_path):
    pytest.importorskip("stardist", reason='pip install "napari-kinetochores[stardist]"')
    from napari_kinetochores.training.stardist import load_stardist_config, train_stardist

    config = load_stardist_config(REPO / "configs" / "stardist_tiny.yaml")
    config.output_dir = str(tmp_path / "tuned")
    config.epochs, config.steps_per_epoch = 1, 2
    image, points, voxel = _user_movie(4)
    rows = []
    result = train_stardist(
        config, progress=False, on_epoch=rows.append, samples=[(image, points, voxel)]
    )
    assert result.validated_on == "1 held-out frame of your labels (t=3)"
    assert rows[0]["validated_on"] == "held_out" and "f1_held_out" in rows[0]
    assert config.data.source == "memory"
