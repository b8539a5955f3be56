"""Input checks and corrections: sensor defects, preprocessed data, temporal continuity."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kinetochores.core.normalize import clipped_floor, noise_statistics, sample_rows
from napari_kinetochores.core.preprocess import (
    MIN_CONTINUITY,
    CorrectedVolume,
    describe_preprocessing,
    suppress_sensor_defects,
    temporal_continuity,
)
from napari_kinetochores.core.targets import gaussian_heatmap
from napari_kinetochores.io import volume_from_array

VOXEL = (0.3, 0.13, 0.13)


def _spots_frame(rng, n_spots=12, shape=(24, 96, 96), amplitude=60.0):
    centres = rng.uniform([4, 8, 8], np.asarray(shape) - [4, 8, 8], (n_spots, 3))
    frame = amplitude * gaussian_heatmap(centres, shape, VOXEL, (0.25, 0.1, 0.1))
    return frame + rng.normal(100, 4, shape), centres


def test_hot_pixels_and_columns_are_removed_and_spots_kept():
    rng = np.random.default_rng(3)
    frame, _ = _spots_frame(rng)
    clean = frame.copy()
    frame[:, 40, 50] += 400  # hot pixel: the same sensor pixel in every plane
    frame[:, 70, 20] -= 90  # dead pixel
    frame[:, :, 80] += 150  # hot column
    fixed = suppress_sensor_defects(frame)
    assert np.abs(fixed - clean).max() < 30  # defects gone (to the noise), nothing else moved
    changed = np.any(np.abs(fixed - frame) > 1e-3, axis=0)  # float32 rounding is not a change
    assert changed[40, 50] and changed[70, 20] and changed[:, 80].all()
    assert changed.sum() <= 96 + 2 + 8  # a few noise pixels at most beside the defects


def test_clean_frames_are_returned_unchanged():
    rng = np.random.default_rng(4)
    for _ in range(3):
        frame, _ = _spots_frame(rng, n_spots=40)
        assert suppress_sensor_defects(frame) is frame


def test_classical_detection_ignores_a_hot_pixel_column():
    from napari_kinetochores.detection import DetectionOptions, detect_movie

    rng = np.random.default_rng(5)
    frame, centres = _spots_frame(rng, n_spots=8)
    frame[:, 30, 30] += 500
    volume = volume_from_array(frame[None, None].astype(np.float32), VOXEL)
    points = detect_movie(volume, DetectionOptions(method="classical"), progress=False)
    on_column = np.hypot(points["y"] - 30, points["x"] - 30) < 2
    assert not on_column.any()
    assert len(points) >= 6  # the real spots are still found


def test_noise_of_background_subtracted_data_is_measured_above_the_floor():
    rng = np.random.default_rng(6)
    raw = rng.normal(20.0, 3.0, (16, 64, 64))
    raw[:, :, :40] = rng.normal(-30.0, 3.0, (16, 64, 40))  # outside the cell
    clipped = np.maximum(raw, 0)  # background subtracted and clipped
    assert clipped_floor(clipped) == 0.0
    background, sigma = noise_statistics(sample_rows(clipped))
    assert background == pytest.approx(20.0, abs=0.5)
    assert sigma == pytest.approx(3.0, rel=0.1)


def test_describe_preprocessing_names_what_it_sees():
    rng = np.random.default_rng(7)
    assert describe_preprocessing(np.round(rng.normal(100, 5, (64, 64)))) is None
    note = describe_preprocessing(np.maximum(rng.normal(0, 5, (64, 64)) - 3, 0))
    assert "background subtracted" in note


def test_temporal_continuity_separates_movies_from_independent_frames():
    rng = np.random.default_rng(8)
    first, centres = _spots_frame(rng, n_spots=20)
    moved = 60.0 * gaussian_heatmap(centres + [0, 0.5, 0.5], first.shape, VOXEL, (0.25, 0.1, 0.1))
    movie = np.stack([first, moved + rng.normal(100, 4, first.shape)])[:, None]
    independent = np.stack([first, _spots_frame(rng, n_spots=20)[0]])[:, None]
    assert temporal_continuity(volume_from_array(movie.astype(np.float32), VOXEL)) > 0.5
    value = temporal_continuity(volume_from_array(independent.astype(np.float32), VOXEL))
    assert value < MIN_CONTINUITY


def test_corrected_volume_reads_through_and_keeps_other_attributes():
    rng = np.random.default_rng(9)
    frame, _ = _spots_frame(rng)
    frame[:, 10, 10] += 300
    volume = volume_from_array(frame[None, None].astype(np.float32), VOXEL)
    corrected = CorrectedVolume(volume)
    assert corrected.voxel_size_um == volume.voxel_size_um and corrected.n_frames == 1
    assert corrected.frame(0, 0)[:, 10, 10].mean() < 130
    assert corrected.corrected_frames == {(0, 0)}
