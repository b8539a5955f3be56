"""Tests of napari_kinetochores.simulate.layouts: plate, real and ball layouts, motion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from napari_kinetochores.simulate import SimulationParams, reference_layout_um, simulate_movie

UM = ["z_um", "y_um", "x_um"]


def _sister_distances(pts: pd.DataFrame, channel: int = 0) -> np.ndarray:
    sub = pts[pts.channel == channel].sort_values(["t", "pair_id", "track_id"])
    sizes = sub.groupby(["t", "pair_id"]).size()
    assert (sizes == 2).all()
    xyz = sub[UM].to_numpy()
    return np.linalg.norm(xyz[0::2] - xyz[1::2], axis=1)


def test_sister_distances_within_range(small):
    lo, hi = 0.7, 1.1
    p = small(
        n_pairs=15,
        shape_zyx=(24, 96, 96),
        sister_sep_range_um=(lo, hi),
        sister_sep_sd_um=0.3,
        spot_jitter_sd_um=0.0,
    )
    d = _sister_distances(simulate_movie(p, seed=2).points)
    assert len(d) == 2 * 15
    assert d.min() >= lo - 1e-9
    assert d.max() <= hi + 1e-9
    assert d.std() > 0.05  # really spread, not a constant
    # with the default per-spot jitter the separation stays near the range
    d = _sister_distances(simulate_movie(small(n_frames=4), seed=2).points)
    lo0, hi0 = SimulationParams().sister_sep_range_um
    assert d.min() > lo0 - 0.1
    assert d.max() < hi0 + 0.1


def test_sister_axis_follows_plate_normal(small):
    p = small(
        n_pairs=12,
        shape_zyx=(24, 96, 96),
        orientation_jitter_deg=0.0,
        spot_jitter_sd_um=0.0,
        plate_thickness_sd_um=0.05,
        n_frames=1,
    )
    pts = simulate_movie(p, seed=4).points
    sub = pts[pts.channel == 0].sort_values(["pair_id", "track_id"])
    xyz = sub[UM].to_numpy()
    axes = xyz[0::2] - xyz[1::2]
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    # all sister axes are parallel (to the normal) ...
    cos = np.abs(axes @ axes[0])
    assert cos.min() > 0.999
    # ... and the plate (pair centres) is thin along it
    centres = 0.5 * (xyz[0::2] + xyz[1::2])
    along = (centres - centres.mean(axis=0)) @ axes[0]
    assert along.std() < 0.2


def test_density_matches_real_nearest_neighbours():
    p = SimulationParams(n_frames=1, shape_zyx=(48, 160, 160), n_pairs=40)
    pts = simulate_movie(p, seed=0).points
    xyz = pts[pts.channel == 0][UM].to_numpy()
    d, _ = cKDTree(xyz).query(xyz, 2)
    nn = d[:, 1]
    assert 0.2 < nn.min() < 0.7
    assert 0.75 < np.median(nn) < 1.15  # real: median 0.96 µm


def test_mcherry_offset(small):
    offset_nm = 60.0
    p = small(n_pairs=10, shape_zyx=(20, 80, 80), mcherry_offset_nm=offset_nm, n_frames=2)
    pts = simulate_movie(p, seed=5).points
    g = pts[pts.channel == 0].set_index(["t", "track_id"])
    r = pts[pts.channel == 1].set_index(["t", "track_id"])
    assert len(g) == len(r)
    r = r.loc[g.index]
    dist_nm = 1000 * np.linalg.norm(g[UM].to_numpy() - r[UM].to_numpy(), axis=1)
    assert abs(dist_nm.mean() - offset_nm) < 1.0
    assert dist_nm.std() < 1.0
    # positive offset points away from the sister (towards the pole)
    d_g = _sister_distances(pts, 0)
    d_r = _sister_distances(pts, 1)
    np.testing.assert_allclose(d_r - d_g, 2 * offset_nm / 1000, atol=1e-3)
    # mCherry is dimmer on average
    assert r["amplitude"].mean() < g["amplitude"].mean()
    assert (pts.groupby("channel")["pair_id"].nunique() == 10).all()


def test_plate_oscillation_moves_mean_position(small):
    kw = dict(
        n_frames=5, shape_zyx=(24, 96, 96), n_pairs=8, motion_sd_um=0.0, spot_jitter_sd_um=0.0
    )
    moving = simulate_movie(
        small(**kw, oscillation_amplitude_um=1.0, oscillation_period_frames=4), 1
    )
    still = simulate_movie(small(**kw, oscillation_amplitude_um=0.0), 1)

    def mean_path(pts):
        g = pts[pts.channel == 0]
        assert (g.groupby("t").size() == 16).all()
        return g.groupby("t")[UM].mean().to_numpy()

    path = mean_path(moving.points)
    shift = np.linalg.norm(path - path[0], axis=1)
    assert shift.max() > 0.8
    # the motion is along one axis (the plate normal)
    _, s, _ = np.linalg.svd(path - path.mean(axis=0))
    assert s[1] < 1e-6 * s[0] + 1e-9
    still_path = mean_path(still.points)
    assert np.abs(still_path - still_path[0]).max() < 1e-9


def test_random_walk_moves_spots_a_little(small):
    p = small(n_frames=4, oscillation_amplitude_um=0.0, motion_sd_um=0.05, spot_jitter_sd_um=0.0)
    pts = simulate_movie(p, seed=2).points
    g = pts[pts.channel == 0]
    xyz = g.pivot(index="track_id", columns="t", values="x_um")
    step = np.abs(np.diff(xyz.to_numpy(), axis=1))
    assert 0.005 < step.mean() < 0.15


def test_reference_layout():
    ref = reference_layout_um()
    assert ref.shape == (79, 3)
    np.testing.assert_allclose(ref.mean(axis=0), 0.0, atol=1e-4)
    d, _ = cKDTree(ref).query(ref, 2)
    assert d[:, 1].min() == pytest.approx(0.31, abs=0.01)
    assert np.median(d[:, 1]) == pytest.approx(0.96, abs=0.01)
    ref[0] = 1e6  # a copy: the cache is not modified
    assert reference_layout_um()[0, 0] < 100


def test_real_layout(small):
    p = small(layout="real", n_pairs=10, shape_zyx=(24, 96, 96), n_frames=2)
    movie = simulate_movie(p, seed=0)
    pts = movie.points
    g0 = pts[(pts.channel == 0) & (pts.t == 0)]
    assert g0["pair_id"].nunique() == 10
    assert 10 <= len(g0) <= 20
    assert g0.groupby("pair_id").size().max() <= 2
    # sisters (where present) are real neighbours, at most 2 µm apart
    for _, grp in g0.groupby("pair_id"):
        if len(grp) == 2:
            assert np.linalg.norm(np.diff(grp[UM].to_numpy(), axis=0)) <= 2.0 + 0.3
    # the geometry is the real one: nearest-neighbour distances as in the reference
    big = simulate_movie(
        SimulationParams(n_frames=1, shape_zyx=(60, 160, 160), n_pairs=50, layout="real"), seed=3
    )
    xyz = big.points[big.points.channel == 0][UM].to_numpy()
    assert len(xyz) == 79
    d, _ = cKDTree(xyz).query(xyz, 2)
    assert np.median(d[:, 1]) == pytest.approx(0.96, abs=0.1)
    # random rotation about the normal: two seeds differ
    other = simulate_movie(p, seed=1).points
    assert not np.allclose(
        g0[UM].to_numpy()[:4], other[(other.channel == 0) & (other.t == 0)][UM].to_numpy()[:4]
    )


# --------------------------------------------------------------------------- prometaphase ball


def _sister_axes(pts: pd.DataFrame) -> np.ndarray:
    sub = pts[(pts.channel == 0) & (pts.t == 0)].sort_values(["pair_id", "track_id"])
    xyz = sub[UM].to_numpy()
    axes = xyz[0::2] - xyz[1::2]
    return axes / np.linalg.norm(axes, axis=1, keepdims=True)


def test_ball_sister_axes_point_in_every_direction():
    p = SimulationParams(layout="ball", n_pairs=46, n_frames=1, spot_jitter_sd_um=0.0)
    axes = _sister_axes(simulate_movie(p, seed=1).points)
    assert len(axes) == 46
    cos = np.abs(axes @ axes.T)[np.triu_indices(46, k=1)]
    assert np.mean(cos < 0.5) > 0.35  # isotropic: half of all pairs of axes are > 60° apart
    # the orientation tensor of isotropic axes is ~identity / 3
    eigen = np.linalg.eigvalsh(axes.T @ axes / len(axes))
    assert eigen.min() > 0.15
    plate = _sister_axes(simulate_movie(SimulationParams(n_pairs=46, n_frames=1), seed=1).points)
    assert np.linalg.eigvalsh(plate.T @ plate / len(plate)).min() < 0.05


def test_ball_neighbours_are_close_but_resolved():
    p = SimulationParams(layout="ball", n_pairs=46, n_frames=1, spot_jitter_sd_um=0.0)
    pts = simulate_movie(p, seed=2).points
    g = pts[pts.channel == 0]
    xyz = g[UM].to_numpy()
    assert len(xyz) == 92
    nn = cKDTree(xyz).query(xyz, 2)[0][:, 1]
    assert 0.3 <= np.median(nn) <= 0.55
    assert nn.min() >= 0.3 * 0.8 - 1e-9  # at most one relaxation of the spacing
    centre = xyz.mean(axis=0)
    assert np.linalg.norm(xyz - centre, axis=1).max() < p.ball_radius() + 1.0
    # sisters are still pairs at the drawn separation
    lo, hi = p.sister_sep_range_um
    d = _sister_distances(pts)
    assert len(d) == 46
    assert d.min() >= lo - 1e-9 and d.max() <= hi + 1e-9


def test_focal_shift_scales_axial_distances_about_the_plate(small):
    kw = dict(n_frames=1, n_pairs=10, shape_zyx=(24, 96, 96), plate_tilt_deg=80.0)
    true = simulate_movie(small(**kw), seed=3).points
    shifted = simulate_movie(small(**kw, focal_shift_scale=0.8), seed=3).points
    z_true, z_app = true["z_um"].to_numpy(), shifted["z_um"].to_numpy()
    fit = np.polyfit(z_true, z_app, 1)
    assert fit[0] == pytest.approx(0.8, abs=1e-9)
    np.testing.assert_allclose(
        shifted[["y_um", "x_um"]].to_numpy(), true[["y_um", "x_um"]].to_numpy()
    )
