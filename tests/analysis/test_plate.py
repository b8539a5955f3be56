"""Metaphase plate fit, against simulated ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kinetochores.analysis.pairing import pair_table
from napari_kinetochores.analysis.plate import (
    PlateWarning,
    fit_plate,
    fit_plates,
    plate_normals_per_point,
)
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import points_frame

VOXEL = (0.3, 0.13, 0.13)


def test_plate_normal_matches_the_simulated_tilt_and_ignores_outliers():
    rng = np.random.default_rng(0)
    normal = np.array([np.cos(0.6), np.sin(0.6) * 0.6, np.sin(0.6) * 0.8])
    a = np.cross(normal, [1.0, 0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(normal, a)
    uv = rng.uniform(-4, 4, size=(80, 2))
    pts = 5 + uv[:, :1] * a + uv[:, 1:] * b + np.outer(rng.normal(0, 0.4, 80), normal)
    pts[:4] += 6.0 * normal  # four stray detections far off the plate
    fit = fit_plate(pts)
    angle = np.degrees(np.arccos(min(1.0, abs(float(fit.normal @ normal)))))
    assert angle < 3.0
    assert fit.weights[:4].max() < 0.3 < fit.weights[4:].min()
    assert np.linalg.norm(fit.normal) == pytest.approx(1.0)


def test_plate_per_frame_follows_oscillation(movie):
    gt = movie.points[movie.points["channel"] == 0]
    pts = gt[["z_um", "y_um", "x_um"]].to_numpy()
    plates = fit_plates(gt["t"].to_numpy(), pts)
    assert list(plates["t"]) == list(range(6))
    normals = plates[["plate_normal_z", "plate_normal_y", "plate_normal_x"]].to_numpy()
    tilt = np.degrees(np.arccos(np.abs(normals[:, 0])))
    # the simulated tilt is 35°; this sample of 24 pairs (clipped to the volume)
    # lies in a plane tilted ~28°, which plain PCA of frame 0 also finds
    assert np.all(np.abs(tilt - 35.0) < 10.0)
    frame0 = pts[gt["t"].to_numpy() == 0]
    centred = frame0 - frame0.mean(axis=0)
    pca_normal = np.linalg.eigh(centred.T @ centred)[1][:, 0]
    assert np.degrees(np.arccos(min(1.0, abs(float(normals[0] @ pca_normal))))) < 2.0
    assert np.all(normals @ normals[0] > 0)  # consistent orientation over time
    # the fitted plate moves like the mean kinetochore along the normal
    mean = gt.groupby("t")[["z_um", "y_um", "x_um"]].mean().to_numpy() @ normals.mean(axis=0)
    np.testing.assert_allclose(plates["plate_position_um"], mean - mean.mean(), atol=0.1)


def test_too_few_spots_for_a_plate_warns_not_crashes():
    pts = np.array([[0, 0, 0], [0.9, 0, 0], [0, 2, 0], [0.9, 2, 0.0]])
    t = np.array([0, 0, 1, 1])
    with pytest.warns(PlateWarning, match=r"t=0 \(2 spots\), t=1 \(2 spots\)"):
        plates = fit_plates(t, pts)
    assert plates["plate_normal_z"].isna().all()
    assert list(plates["plate_n_spots"]) == [2, 2]
    # pairing goes on with the distance alone
    df = points_frame(np.column_stack([t, pts / VOXEL]), VOXEL)
    with pytest.warns(PlateWarning):
        out = pair_table(df, VOXEL)
    assert list(out["pair_id"]) == [0, 0, 1, 1]
    with pytest.raises(InputError, match="fewer than the 6"):
        fit_plate(pts)


def test_plate_normals_per_point_are_nan_for_frames_without_a_plate():
    rng = np.random.default_rng(2)
    pts = np.column_stack([0.1 * rng.standard_normal(30), rng.uniform(-4, 4, (30, 2))])
    plates = fit_plates(np.zeros(30, int), pts)
    normals = plate_normals_per_point(np.array([0, 0, 3]), plates)
    assert np.all(np.isfinite(normals[:2])) and np.isnan(normals[2]).all()
    np.testing.assert_allclose(np.abs(normals[0]), [1, 0, 0], atol=0.05)
