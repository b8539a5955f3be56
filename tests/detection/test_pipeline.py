"""The one frame loop and the detector registry."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_kinetochores.backends import METHODS, detector_class, get_detector
from napari_kinetochores.core.targets import gaussian_heatmap
from napari_kinetochores.detection import (
    DetectionOptions,
    detect_frame,
    detect_movie,
    iter_detections,
    prepare_detector,
)
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import volume_from_array

VOXEL = (0.3, 0.13, 0.13)


def _movie(seed: int, n_frames: int, independent: bool, n_channels: int = 1, snr: float = 40.0):
    rng = np.random.default_rng(seed)
    shape = (24, 96, 96)
    centres = rng.uniform([5, 10, 10], [19, 86, 86], (16, 3))
    frames = []
    for _ in range(n_frames):
        if independent:
            centres = rng.uniform([5, 10, 10], [19, 86, 86], (16, 3))
        image = snr * gaussian_heatmap(centres, shape, VOXEL, (0.25, 0.1, 0.1))
        frames.append([image + rng.normal(100, 4, shape) for _ in range(n_channels)])
    return volume_from_array(np.asarray(frames, np.float32), VOXEL)


def test_registry_knows_every_method_and_refuses_others():
    assert METHODS[0] == "unet" and set(METHODS) == {"unet", "classical", "stardist"}
    assert detector_class("classical").method == "classical"
    with pytest.raises(InputError, match="unknown method"):
        get_detector(DetectionOptions(method="log"))


def test_frame_loop_equals_one_frame_at_a_time_and_tiled():
    volume = _movie(1, 2, independent=False)
    options = DetectionOptions(method="classical")
    whole = detect_movie(volume, options, progress=False)
    detector = prepare_detector(volume, options)
    for t in range(2):
        table, tiled = detect_frame(volume, t, options, detector)
        assert not tiled
        expected = whole[whole["t"] == t].reset_index(drop=True)
        assert table.equals(expected)
        table, tiled = detect_frame(
            volume, t, options, detector, max_frame_voxels=1, core_shape=(None, 40, 40)
        )
        assert tiled and np.array_equal(table[["z", "y", "x"]], expected[["z", "y", "x"]])


def test_score_maps_reach_on_prediction_for_classical():
    volume = _movie(2, 1, independent=False, n_channels=2)
    maps = {}
    options = DetectionOptions(method="classical", all_channels=True)
    list(iter_detections(volume, options, on_prediction=lambda t, m: maps.setdefault(t, m)))
    assert maps[0].shape == (2, 24, 96, 96) and maps[0].dtype == np.float32


def test_unet_refuses_all_channels_it_cannot_detect():
    volume = _movie(3, 3, independent=False, n_channels=2)
    with pytest.raises(InputError, match="all-channels"):
        list(iter_detections(volume, DetectionOptions(all_channels=True)))


@pytest.mark.slow
def test_default_model_is_not_fed_independent_frames():
    """Independent 3D images stacked along T go to the single-frame model, with a warning."""
    independent = _movie(4, 3, independent=True)
    continuous = _movie(5, 3, independent=False)
    options = DetectionOptions()
    with pytest.warns(UserWarning, match="not continuous"):
        detector = prepare_detector(independent, options)
    assert detector.config.temporal_window == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prepare_detector(continuous, options).config.temporal_window > 1


@pytest.mark.slow
def test_unet_resamples_other_voxel_sizes_to_the_model_and_maps_spots_back():
    from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams, simulate_movie

    voxel = (0.2, 0.1, 0.1)
    movie = simulate_movie(
        SimulationParams(
            n_frames=3, shape_zyx=(40, 120, 120), voxel_size_um=voxel, snr=SNR_LEVELS["high"]
        ),
        seed=11,
    )
    volume = volume_from_array(movie.image.astype(np.float32), voxel)
    maps = {}
    options = DetectionOptions(resample_to_model=True)
    found = detect_movie(
        volume,
        options,
        frames=[1],
        on_prediction=lambda t, m: maps.setdefault(t, m),
        progress=False,
    )
    assert maps[1].shape[1:] == (40, 120, 120)  # the map comes back on the frame's grid
    assert found.equals(detect_movie(volume, options, frames=[1], progress=False))
    truth = movie.points[(movie.points["t"] == 1) & (movie.points["channel"] == 0)]
    from napari_kinetochores.analysis.matching import evaluate_points

    evaluation = evaluate_points(found, truth, voxel)
    assert evaluation.overall["f1@0.3"] > 0.9
    assert evaluation.overall["median_nm"] < 60


def _tiny_unet(path):
    """A small UNet with random weights, saved as a checkpoint (no training needed)."""
    import torch

    from napari_kinetochores.nn.checkpoint import ModelInfo, save_checkpoint
    from napari_kinetochores.nn.model import ModelConfig, build_model

    torch.manual_seed(0)
    config = ModelConfig(f_maps=8, num_levels=2, num_groups=4, pool_kernels=[[1, 2, 2]])
    info = ModelInfo(voxel_size_um=VOXEL, threshold=0.5, tile_shape=(16, 48, 48))
    return save_checkpoint(path, build_model(config), config, info)


def _movie_with_a_hole(tmp_path, bad, t=2, channel=0):
    """A 3-frame, 2-channel .npy movie with one non-finite voxel in frame ``t``, ``channel``."""
    from napari_kinetochores.io import read_volume

    data = np.asarray(_movie(6, 3, independent=False, n_channels=2).data)
    data[t, channel, 10, 40, 40] = bad
    path = tmp_path / "holes.npy"
    np.save(path, data)
    return read_volume(path, voxel_size_um=VOXEL)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_frame_after_the_first_is_named(tmp_path, bad):
    volume = _movie_with_a_hole(tmp_path, bad)
    options = DetectionOptions(method="classical")
    assert len(detect_movie(volume, options, frames=[0, 1], progress=False)) > 0
    with pytest.raises(InputError, match="NaN or infinite") as caught:
        detect_movie(volume, options, progress=False)
    message = str(caught.value)
    assert "holes.npy" in message and "frame 2, channel 0" in message
    detector = prepare_detector(volume, options)
    with pytest.raises(InputError, match="frame 2, channel 0"):  # tiled frames are checked too
        detect_frame(volume, 2, options, detector, max_frame_voxels=1, core_shape=(None, 48, 48))
    unread = _movie_with_a_hole(tmp_path, bad, channel=1)  # a channel no detector reads
    assert len(detect_movie(unread, options, progress=False)) > 0


@pytest.mark.parametrize("method", ["classical", "unet"])
def test_every_method_reads_its_frames_through_the_check(tmp_path, method):
    volume = _movie_with_a_hole(tmp_path, np.nan)
    model = None if method == "classical" else str(_tiny_unet(tmp_path / "tiny.pt"))
    options = DetectionOptions(method=method, model=model, threshold=0.5)
    with pytest.raises(InputError, match="holes.npy: frame 2, channel 0 holds 1 NaN"):
        detect_movie(volume, options, frames=[2], progress=False)


def test_resampling_still_warns_about_an_axis_coarser_than_the_model():
    options = DetectionOptions(resample_to_model=True)
    detector = get_detector(options)
    fine_xy_coarse_z = volume_from_array(np.zeros((1, 1, 8, 32, 32), np.float32), (0.5, 0.08, 0.08))
    with pytest.warns(UserWarning, match=r"voxel size \(0.5, 0.13, 0.13\) µm is far from"):
        detector.check_input(fine_xy_coarse_z)
    finer_only = volume_from_array(np.zeros((1, 1, 8, 32, 32), np.float32), (0.2, 0.08, 0.08))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detector.check_input(finer_only)  # every axis is resampled to the model's: no warning
