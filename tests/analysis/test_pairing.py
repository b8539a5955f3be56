"""Plate fit, sister pairing and two-colour delta, against simulated ground truth."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from napari_kinetochores.analysis.measurements import pairing_accuracy, perturb_points
from napari_kinetochores.analysis.pairing import (
    REASON_LOST,
    REASON_NO_PARTNER,
    REASON_PAIRED,
    PairingParams,
    PlateWarning,
    fit_plate,
    fit_plates,
    pair_sisters,
    pair_table,
    sister_rows,
    two_colour_delta,
)
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import points_frame

VOXEL = (0.3, 0.13, 0.13)


@pytest.fixture(scope="module")
def movie():
    """Ground truth of a 6-frame movie: 24 pairs in a tilted, oscillating plate."""
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    params = SimulationParams(n_frames=6, shape_zyx=(36, 112, 112), n_pairs=24, plate_tilt_deg=35.0)
    return simulate_movie(params, seed=11)


@pytest.fixture(scope="module")
def noisy(movie):
    """40 nm 3D-RMS localisation noise (23 nm per axis) and 3 % dropouts."""
    return perturb_points(movie.points, VOXEL, noise_nm=23.0, dropout=0.03, seed=5)


# --------------------------------------------------------------------------- plate


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


# --------------------------------------------------------------------------- pairing


def test_per_frame_pairing_recovers_true_pairs(noisy):
    kin = noisy[noisy["channel"] == 0].reset_index(drop=True)
    out = pair_table(kin.drop(columns=["pair_id", "track_id"]), VOXEL)
    acc = pairing_accuracy(kin["t"], kin["pair_id"], out["pair_id"])
    assert acc["n_true_pairs"] > 120
    assert acc["pair_recall"] >= 0.97
    assert acc["pair_precision"] >= 0.97
    # every unpaired kinetochore says why
    unpaired = out[out["pair_id"] < 0]
    assert set(unpaired["pair_reason"]) <= {REASON_NO_PARTNER, REASON_LOST}
    assert (out.loc[out["pair_id"] >= 0, "pair_reason"] == REASON_PAIRED).all()
    # a kinetochore whose sister dropped out has no partner or lost it
    lone = kin.groupby(["t", "pair_id"])["x"].transform("size") == 1
    assert (out.loc[lone.to_numpy(), "pair_id"] < 0).mean() >= 0.5


def test_track_pairing_gives_one_pair_id_per_track(noisy):
    kin = noisy[noisy["channel"] == 0].reset_index(drop=True)
    out = pair_table(kin.drop(columns=["pair_id"]), VOXEL)  # true track_id kept
    acc = pairing_accuracy(kin["t"], kin["pair_id"], out["pair_id"])
    assert acc["pair_recall"] == 1.0
    assert acc["pair_precision"] == 1.0
    assert (out.groupby("track_id")["pair_id"].nunique() == 1).all()
    paired = out[out["pair_id"] >= 0]
    assert (paired.groupby("pair_id")["track_id"].nunique() == 2).all()


def test_track_fragments_join_their_pair():
    """A sister whose track broke in two keeps its pair on both fragments."""
    t = np.repeat(np.arange(6), 2)
    pts = np.zeros((12, 3))
    pts[1::2, 0] = 0.9  # sister B along the normal
    pts[:, 1] = 0.02 * t  # slow drift
    track = np.tile([0, 1], 6)
    track[1::2][3:] = 2  # B's track breaks after frame 2: tracks 1 and 2
    res = pair_sisters(pts, t, track_id=track, normals=np.tile([1.0, 0, 0], (12, 1)))
    assert res.n_pairs == 1
    assert set(res.pair_id) == {0}
    assert list(res.partner[:4]) == [1, 0, 3, 2]


def test_global_matching_beats_greedy():
    """A greedy closest-first pairing takes b–c (0.95 µm) and strands a and d."""
    normal = np.tile([1.0, 0, 0], (4, 1))
    pts = np.array([[0, 0, 0], [1.0, 0, 0], [1.0, 0, 0.95], [2.0, 0, 0.95]])
    # a–b and c–d are along the normal; b–c is in the plate
    res = pair_sisters(pts, normals=normal)
    assert res.pair_id.tolist() == [0, 0, 1, 1]
    # without the plate, distance alone: still both pairs (a–b, c–d) beat b–c alone
    res = pair_sisters(pts, params=PairingParams(use_plate=False))
    assert res.n_pairs == 2


def test_window_and_reasons():
    pts = np.array([[0, 0, 0], [0.2, 0, 0], [5, 5, 5.0]])
    res = pair_sisters(pts, params=PairingParams(use_plate=False))
    assert res.pair_id.tolist() == [-1, -1, -1]  # 0.2 µm is below the window
    assert set(res.reason) == {REASON_NO_PARTNER}
    # three in a row: one must be left out of the optimal assignment
    pts = np.array([[0, 0, 0], [0.95, 0, 0], [1.9, 0, 0]])
    res = pair_sisters(pts, params=PairingParams(use_plate=False))
    assert res.n_pairs == 1
    assert sorted(res.reason.tolist()).count(REASON_LOST) == 1


def test_pairing_is_independent_of_row_order(noisy):
    kin = noisy[noisy["channel"] == 0].drop(columns=["pair_id", "track_id"])
    a = pair_table(kin, VOXEL)
    b = pair_table(kin.sample(frac=1.0, random_state=3), VOXEL).loc[a.index]
    same_a = sister_rows(a["t"], a["pair_id"])
    same_b = sister_rows(b["t"], b["pair_id"])
    np.testing.assert_array_equal(
        a.index[same_a.clip(0)][same_a >= 0], b.index[same_b.clip(0)][same_b >= 0]
    )


def test_bad_input():
    with pytest.raises(InputError, match="window"):
        PairingParams(min_distance_um=2.0, max_distance_um=1.0)
    with pytest.raises(InputError, match="whole frame"):
        pair_sisters(np.zeros((2, 3)), [0, 0.5])
    with pytest.raises(InputError, match="shape"):
        pair_sisters(np.zeros((2, 2)))
    with pytest.raises(InputError, match="at most one point per frame"):
        pair_sisters(np.zeros((2, 3)), [0, 0], track_id=[3, 3])


# --------------------------------------------------------------------------- delta


def _channels(table: pd.DataFrame):
    e = table[table["channel"] == 0].reset_index(drop=True)
    m = table[table["channel"] == 1].reset_index(drop=True)
    return e, m


def test_delta_recovers_truth_and_estimates_chromatic_shift(movie, noisy):
    shift_nm = np.array([120.0, -70.0, 40.0])
    e, m = _channels(noisy)
    m = m.copy()
    m[["z", "y", "x"]] += shift_nm / 1000.0 / np.array(VOXEL)
    e_tzyx, m_tzyx = e[["t", "z", "y", "x"]].to_numpy(), m[["t", "z", "y", "x"]].to_numpy()
    # from the spots alone (the median over spots) ...
    res = two_colour_delta(e_tzyx, m_tzyx, VOXEL)
    assert res.shift_estimated
    np.testing.assert_allclose(res.shift_nm, shift_nm, atol=20.0)
    # ... and, tighter, over sister pairs, whose true deltas cancel
    res = two_colour_delta(e_tzyx, m_tzyx, VOXEL, egfp_pair_id=e["pair_id"])
    np.testing.assert_allclose(res.shift_nm, shift_nm, atol=8.0)
    # one-to-one, and each EGFP spot is matched to its own mCherry spot
    assert len(set(res.egfp_index)) == len(res.egfp_index) == len(set(res.mcherry_index))
    same = e["track_id"].to_numpy()[res.egfp_index] == m["track_id"].to_numpy()[res.mcherry_index]
    assert same.mean() > 0.99
    assert len(res.egfp_index) > 0.9 * min(len(e), len(m))
    # the per-frame error is set by the noise: sqrt(2) * 23 nm per axis
    truth = movie.points.set_index(["t", "channel", "track_id"])[["z_um", "y_um", "x_um"]]
    te = truth.loc[[(t, 0, k) for t, k in zip(e["t"], e["track_id"], strict=True)]].to_numpy()
    tm = truth.loc[[(t, 1, k) for t, k in zip(m["t"], m["track_id"], strict=True)]].to_numpy()
    true_delta = (tm[res.mcherry_index] - te[res.egfp_index]) * 1000
    err = np.linalg.norm(res.delta_nm - true_delta, axis=1)
    assert 35 < np.median(err) < 65
    assert np.median(res.norm_nm) == pytest.approx(movie.params.mcherry_offset_nm, abs=35)


def test_delta_without_noise_is_exact(movie):
    e, m = _channels(movie.points)
    res = two_colour_delta(
        e[["t", "z", "y", "x"]].to_numpy(),
        m[["t", "z", "y", "x"]].to_numpy(),
        VOXEL,
        chromatic_shift_nm=(0, 0, 0),
    )
    assert not res.shift_estimated
    assert len(res.egfp_index) == len(e)
    np.testing.assert_allclose(res.norm_nm, movie.params.mcherry_offset_nm, atol=1e-6)


def test_delta_given_shift_and_bad_cutoff():
    egfp = np.array([[0, 10, 20, 20]], dtype=float)
    mch = egfp + [0, 1.0, 0, 0]  # 300 nm in z: beyond the 0.25 µm cutoff ...
    res = two_colour_delta(egfp, mch, VOXEL, chromatic_shift_nm=(0, 0, 0))
    assert len(res.egfp_index) == 0
    res = two_colour_delta(egfp, mch, VOXEL, chromatic_shift_nm=(250, 0, 0))  # ... unless corrected
    np.testing.assert_allclose(res.delta_nm, [[50.0, 0, 0]], atol=1e-9)
    with pytest.raises(InputError, match="cutoff"):
        two_colour_delta(egfp, mch, VOXEL, cutoff_um=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(two_colour_delta(egfp, np.zeros((0, 4)), VOXEL).egfp_index) == 0
