"""Tests of napari_kinetochores.backends.unet: the UNet detector's model rules and predictions."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")


def test_default_model_hands_short_movies_to_the_single_frame_model():
    import warnings

    from napari_kinetochores.backends.unet import UNetDetector
    from napari_kinetochores.detection import DetectionOptions
    from napari_kinetochores.io.volumes import volume_from_array

    detector = UNetDetector.from_options(DetectionOptions())
    if detector.config.temporal_window == 1:
        pytest.skip("the bundled default model reads a single frame")
    one_frame = volume_from_array(np.zeros((1, 1, 8, 32, 32), np.uint16), (0.3, 0.13, 0.13))
    long_movie = volume_from_array(np.zeros((3, 1, 8, 32, 32), np.uint16), (0.3, 0.13, 0.13))
    assert detector.for_volume(long_movie) is detector
    with pytest.warns(UserWarning, match="single_frame"):
        chosen = detector.for_volume(one_frame)
    assert chosen.config.temporal_window == 1
    # the Detect widget names the bundled default: the same rule applies
    named = UNetDetector.from_options(DetectionOptions(model="default"))
    with pytest.warns(UserWarning, match="single_frame"):
        assert named.for_volume(one_frame).config.temporal_window == 1
    # a temporal checkpoint chosen by its path is kept, with a warning
    from napari_kinetochores.nn.checkpoint import bundled_model_path

    explicit = UNetDetector.from_options(DetectionOptions(model=str(bundled_model_path("default"))))
    with pytest.warns(UserWarning, match="repeated frames"):
        assert explicit.for_volume(one_frame) is explicit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit.for_volume(long_movie)


def test_detect_movie_hands_out_each_frames_prediction():
    from napari_kinetochores.detection import DetectionOptions, detect_movie
    from napari_kinetochores.io.volumes import volume_from_array
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    movie = simulate_movie(SimulationParams(n_frames=3, shape_zyx=(16, 64, 64), n_pairs=5), seed=3)
    volume = volume_from_array(movie.image, (0.3, 0.13, 0.13))
    seen = []
    options = DetectionOptions(method="unet", model="default")
    found = detect_movie(
        volume, options, progress=False, on_prediction=lambda t, p: seen.append((t, p))
    )
    assert [t for t, _ in seen] == [0, 1, 2]
    assert all(p.shape == (1, 16, 64, 64) for _, p in seen)
    # the same detections as without the callback
    again = detect_movie(volume, options, progress=False)
    np.testing.assert_allclose(found[["t", "z", "y", "x"]], again[["t", "z", "y", "x"]])
