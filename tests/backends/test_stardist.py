"""Tests of the StarDist 3D detector: instance labels, missing-extra errors, detection with a
tiny trained model (``tiny_stardist_model`` in conftest.py; training is tested in
tests/training/test_stardist.py).

The instance-label and missing-TensorFlow tests need no TensorFlow. The
detection tests are skipped with a clear reason when the extra
``napari-kinetochores[stardist]`` is not installed (``make test`` installs it).
"""

from __future__ import annotations

import builtins
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_kinetochores.core.targets import instance_labels
from napari_kinetochores.errors import InputError
from napari_kinetochores.io.volumes import volume_from_array

VOXEL = (0.3, 0.13, 0.13)
REPO = Path(__file__).resolve().parents[2]


def _physical_distance(shape, point, voxel) -> np.ndarray:
    grid = np.indices(shape, dtype=float)
    diff = grid - np.asarray(point, float)[:, None, None, None]
    return np.sqrt(np.sum((diff * np.asarray(voxel)[:, None, None, None]) ** 2, axis=0))


# --------------------------------------------------------------------------- instance labels (no TF)


def test_instance_labels_are_physical_spheres_under_anisotropy():
    shape, centre, radius = (11, 41, 41), (5.0, 20.0, 20.0), 0.5
    labels = instance_labels([centre], shape, VOXEL, radius)
    assert labels.dtype == np.int32 and labels.shape == shape
    expected = _physical_distance(shape, centre, VOXEL) <= radius
    np.testing.assert_array_equal(labels == 1, expected)
    # 0.5 µm is 1 voxel in z but 3 voxels in x
    assert labels[6, 20, 20] == 1 and labels[7, 20, 20] == 0
    assert labels[5, 20, 23] == 1 and labels[5, 20, 24] == 0


def test_instance_labels_ellipsoid_semi_axes_in_um():
    shape, centre = (15, 31, 31), (7.0, 15.0, 15.0)
    labels = instance_labels([centre], shape, VOXEL, radius_um=(0.9, 0.26, 0.39))
    # semi-axes: 3 voxels in z, 2 in y, 3 in x
    assert labels[10, 15, 15] == 1 and labels[11, 15, 15] == 0
    assert labels[7, 17, 15] == 1 and labels[7, 18, 15] == 0
    assert labels[7, 15, 18] == 1 and labels[7, 15, 19] == 0


def test_instance_labels_split_overlapping_neighbours_by_nearest_centre():
    shape = (9, 31, 41)
    a, b = np.array([4.0, 15.0, 15.0]), np.array([4.0, 15.0, 21.5])  # 0.845 µm apart in x
    labels = instance_labels([a, b], shape, VOXEL, 0.6)  # spheres overlap
    assert set(np.unique(labels)) == {0, 1, 2}
    union = (_physical_distance(shape, a, VOXEL) <= 0.6) | (
        _physical_distance(shape, b, VOXEL) <= 0.6
    )
    np.testing.assert_array_equal(labels > 0, union)
    da, db = _physical_distance(shape, a, VOXEL), _physical_distance(shape, b, VOXEL)
    owned = labels > 0
    np.testing.assert_array_equal(labels[owned], np.where(da < db, 1, 2)[owned])
    # the split is the plane halfway between the centres (x = 18.25)
    assert labels[4, 15, 18] == 1 and labels[4, 15, 19] == 2


def test_instance_labels_tiny_radius_and_edges():
    labels = instance_labels([[2.2, 5.4, 5.0], [0.0, 0.0, -3.0]], (5, 11, 11), VOXEL, 0.01)
    assert labels[2, 5, 5] == 1 and (labels == 1).sum() == 1  # still marks its nearest voxel
    assert (labels == 2).sum() == 0  # outside the volume: nothing
    empty = instance_labels(np.zeros((0, 3)), (4, 8, 8), VOXEL, 0.3)
    assert empty.shape == (4, 8, 8) and not empty.any()
    with pytest.raises(InputError, match="radius"):
        instance_labels([[1, 1, 1]], (4, 8, 8), VOXEL, 0.0)


# --------------------------------------------------------------------------- missing extra (no TF)


def _hide_tensorflow(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.split(".")[0] in ("tensorflow", "stardist", "csbdeep"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for name in list(sys.modules):
        if name.split(".")[0] in ("tensorflow", "stardist", "csbdeep"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_missing_tensorflow_says_how_to_install(monkeypatch):
    from napari_kinetochores.backends.stardist import StarDistDetector, require_stardist
    from napari_kinetochores.detection import DetectionOptions, iter_detections

    _hide_tensorflow(monkeypatch)
    with pytest.raises(InputError, match=r'pip install "napari-kinetochores\[stardist\]"'):
        require_stardist()
    with pytest.raises(InputError, match=r"napari-kinetochores\[stardist\]"):
        StarDistDetector.load()
    volume = volume_from_array(np.zeros((1, 1, 8, 16, 16), np.float32), VOXEL)
    with pytest.raises(InputError, match=r'pip install "napari-kinetochores\[stardist\]"'):
        list(iter_detections(volume, DetectionOptions(method="stardist")))


def test_cli_detect_stardist_without_tensorflow_exits_with_install_hint(
    monkeypatch, tmp_path, capsys
):
    from napari_kinetochores.cli import main

    movie = tmp_path / "movie.npy"
    np.save(movie, np.zeros((8, 16, 16), np.uint16))
    _hide_tensorflow(monkeypatch)
    code = main(
        [
            "detect",
            str(movie),
            "-o",
            str(tmp_path / "out.csv"),
            "--method",
            "stardist",
            "--voxel-size",
            "0.3",
            "0.13",
            "0.13",
            "--quiet",
        ]
    )
    assert code == 2
    assert 'pip install "napari-kinetochores[stardist]"' in capsys.readouterr().err


def test_anisotropy_and_tiles():
    from napari_kinetochores.backends.stardist import anisotropy_from_voxel_size, n_tiles_for

    assert anisotropy_from_voxel_size((0.3, 0.13, 0.13)) == pytest.approx((2.3077, 1.0, 1.0))
    assert n_tiles_for((61, 1000, 1000), (64, 256, 256)) == (1, 4, 4)
    with pytest.raises(InputError, match="voxel size"):
        anisotropy_from_voxel_size((0.3, 0.0, 0.13))


def test_stardist_input_is_in_noise_units_so_an_empty_field_stays_noise():
    from napari_kinetochores.backends.stardist import normalise_frame

    rng = np.random.default_rng(3)
    empty = rng.poisson(100.0, (8, 64, 64)).astype(np.float32)
    noise = normalise_frame(empty, "noise", noise_units=10.0)
    assert noise.dtype == np.float32
    # background at 0, noise sd 1 / noise_units (Poisson sd 10 at 100 photons)
    assert abs(float(np.median(noise))) < 0.02
    assert float(noise.std()) == pytest.approx(0.1, rel=0.1)
    # a percentile normalisation stretches the same empty field over [0, 1]
    stretched = normalise_frame(empty, "percentile", percentiles=(1.0, 99.8))
    assert float(np.percentile(stretched, 99.8)) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(InputError, match="normalization"):
        normalise_frame(empty, "zscore")


# --------------------------------------------------------------------------- with TensorFlow


@pytest.mark.slow
@pytest.mark.tensorflow
def test_tiny_stardist_detects_spots_in_the_point_schema(tiny_stardist_model):
    from napari_kinetochores.analysis.matching import match_points
    from napari_kinetochores.detection import DetectionOptions, detect_movie
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    _, result = tiny_stardist_model
    movie = simulate_movie(
        SimulationParams(n_frames=1, shape_zyx=(16, 48, 48), n_pairs=6, snr=14.0), seed=4242
    )
    volume = volume_from_array(movie.image.astype(np.float32), movie.params.voxel_size_um)
    options = DetectionOptions(method="stardist", model=str(result.model_dir))  # its own threshold
    table = detect_movie(volume, options, progress=False)
    assert {"t", "z", "y", "x", "z_um", "y_um", "x_um", "channel", "score", "status"} <= set(
        table.columns
    )
    assert (table["channel"] == 0).all() and (table["t"] == 0).all()
    assert ((table["score"] >= result.threshold) & (table["score"] <= 1)).all()
    np.testing.assert_allclose(table["z_um"], table["z"] * movie.params.voxel_size_um[0])
    coords = table[["z", "y", "x"]].to_numpy()
    assert np.all((coords >= -0.5) & (coords <= np.array(volume.data.shape[2:]) - 0.5))
    truth = movie.points[movie.points["channel"] == 0][["z", "y", "x"]].to_numpy()
    # A tiny model after 240 steps is no real detector, but what it finds must be the spots:
    # at least a third of the true spots get a detection within 0.6 µm, and at least a
    # third of the detections are near a true spot (measured: 12 of 12 and 12 of 18).
    match = match_points(coords, truth, movie.params.voxel_size_um, 0.6)
    assert match.tp >= len(truth) / 3, (match.tp, len(truth), len(coords))
    assert match.tp >= len(coords) / 3, (match.tp, len(truth), len(coords))


@pytest.mark.slow
@pytest.mark.tensorflow
def test_stardist_detector_tiles_and_threshold(tiny_stardist_model):
    from napari_kinetochores.backends.stardist import StarDistDetector
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    _, result = tiny_stardist_model
    detector = StarDistDetector.load(result.model_dir, tile_shape=(16, 32, 32))
    movie = simulate_movie(
        SimulationParams(n_frames=1, shape_zyx=(16, 48, 48), n_pairs=6, snr=14.0), seed=7
    )
    frame = movie.image[0, 0]
    tiled, tiled_scores = detector.detect_volume(frame, VOXEL, threshold=0.05)  # 1 × 2 × 2 tiles
    whole, _ = detector.detect_volume(frame, VOXEL, threshold=0.05, n_tiles=(1, 1, 1))
    assert tiled.shape[1] == 3 and len(tiled) == len(tiled_scores)
    assert abs(len(tiled) - len(whole)) <= max(2, 0.2 * len(whole))
    strict, _ = detector.detect_volume(frame, VOXEL, threshold=0.99)
    assert len(strict) <= len(whole)
    spaced, spaced_scores = detector.detect_volume(
        frame, VOXEL, threshold=0.05, min_distance_um=2.0
    )
    if len(spaced) > 1:
        d = np.sqrt((((spaced[:, None] - spaced[None]) * np.asarray(VOXEL)) ** 2).sum(-1))
        assert d[np.triu_indices(len(spaced), 1)].min() >= 2.0


@pytest.mark.tensorflow
def test_unknown_stardist_model_is_an_input_error(tmp_path):
    pytest.importorskip(
        "stardist",
        reason='StarDist backend not installed: pip install "napari-kinetochores[stardist]"',
    )
    from napari_kinetochores.backends.stardist import StarDistDetector

    with pytest.raises(InputError, match="no StarDist model folder"):
        StarDistDetector.load(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="config.json"):
        StarDistDetector.load(str(tmp_path / "empty"))


@pytest.mark.slow
@pytest.mark.tensorflow
def test_bundled_stardist_model_finds_kinetochores():
    pytest.importorskip(
        "stardist",
        reason='StarDist backend not installed: pip install "napari-kinetochores[stardist]"',
    )
    from napari_kinetochores.analysis.matching import match_points
    from napari_kinetochores.backends.stardist import StarDistDetector
    from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams, simulate_movie

    detector = StarDistDetector.load()  # the bundled model
    assert detector.normalization == "noise"
    assert 0 < detector.threshold < 1
    movie = simulate_movie(
        SimulationParams(
            n_frames=1, shape_zyx=(32, 96, 96), n_pairs=20, snr=SNR_LEVELS["moderate"]
        ),
        seed=31337,
    )
    voxel = movie.params.voxel_size_um
    coords, scores = detector.detect_volume(movie.image[0, 0].astype(np.float32), voxel)
    truth = movie.points[movie.points["channel"] == 0][["z", "y", "x"]].to_numpy()
    result = match_points(coords, truth, voxel, 0.3)
    # measured 0.92 on this volume (38 detections, 40 kinetochores); validation F1 at
    # moderate SNR 0.885. A model that stopped finding spots fails this.
    assert result.f1 >= 0.8, (result.f1, len(coords), len(truth))
    assert np.all(scores >= detector.threshold)
