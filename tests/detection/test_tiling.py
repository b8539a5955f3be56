"""Detection in a frame read in tiles with halos (napari_kinetochores.detection.tiling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_kinetochores.detection import DetectionOptions, iter_detections
from napari_kinetochores.io import Volume
from napari_kinetochores.simulate import SimulationParams, simulate_movie

VOXEL = (0.3, 0.13, 0.13)


@pytest.mark.parametrize("core", [(None, 16, 20), (5, 23, 64), (None, None, None)])
@pytest.mark.parametrize("threshold", [None, 2.5])
def test_tiled_detection_equals_untiled(core, threshold):
    from napari_kinetochores.detection.tiling import detect_frame_tiled

    movie = simulate_movie(SimulationParams(n_frames=1, shape_zyx=(12, 70, 64), n_pairs=12), seed=3)
    volume = Volume(movie.image, VOXEL, "user", "TCZYX", None)
    options = DetectionOptions(method="classical", threshold=threshold, all_channels=True)
    ((_, untiled),) = list(iter_detections(volume, options, [0]))
    tiled = detect_frame_tiled(volume, 0, options, core_shape=core)
    assert len(untiled) > 20
    pd.testing.assert_frame_equal(tiled, untiled, check_exact=True)


def test_tiled_noise_estimate_matches_the_strided_one():
    """Above 2 million voxels the untiled MAD uses a strided subsample; tiles gather the same voxels."""
    from napari_kinetochores.backends.classical import dog_response, robust_noise_sigma
    from napari_kinetochores.detection.tiling import classical_noise_sigma

    rng = np.random.default_rng(1)
    data = rng.normal(100, 5, (1, 1, 9, 500, 470)).astype(np.float32)
    volume = Volume(data, VOXEL, "user", "TCZYX", None)
    expected = robust_noise_sigma(dog_response(data[0, 0], VOXEL))
    assert classical_noise_sigma(volume, 0, 0, core_shape=(4, 128, 100)) == expected


def test_tile_grid_cores_partition_the_frame():
    from napari_kinetochores.detection.tiling import tile_grid

    tiles = tile_grid((7, 50, 33), (3, 16, 16), (2, 5, 5))
    covered = np.zeros((7, 50, 33), int)
    for tile in tiles:
        covered[tile.core] += 1
        assert all(r0 >= 0 for r0 in tile.read_start) and tile.read_stop[1] <= 50
    assert (covered == 1).all()


def test_tiled_noise_of_a_background_subtracted_frame_skips_the_floor():
    """The tiled classical noise takes the same floor rule as the untiled one."""
    from napari_kinetochores.backends.classical import dog_response, response_noise_sigma
    from napari_kinetochores.detection.tiling import classical_noise_sigma

    rng = np.random.default_rng(2)
    data = np.maximum(rng.normal(0, 5, (1, 1, 8, 96, 90)) - 4, 0).astype(np.float32)
    volume = Volume(data, VOXEL, "user", "TCZYX", None)
    expected = response_noise_sigma(dog_response(data[0, 0], VOXEL), data[0, 0])
    tiled = classical_noise_sigma(volume, 0, 0, core_shape=(None, 40, 40))
    assert tiled == pytest.approx(expected, rel=1e-6)
