"""Tests of napari_kinetochores.simulate (small volumes, fast)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree
from scipy.stats import norm

from napari_kinetochores.simulate import (
    SNR_LEVELS,
    SimulatedMovie,
    SimulationParams,
    reference_layout_um,
    render_spots,
    sample_params,
    simulate_movie,
)

SMALL = {"n_frames": 2, "shape_zyx": (16, 64, 64), "n_pairs": 6}
UM = ["z_um", "y_um", "x_um"]
VOX = ["z", "y", "x"]


def small(**kw) -> SimulationParams:
    return SimulationParams(**{**SMALL, **kw})


# --------------------------------------------------------------------------- basics


def test_snr_levels_ordered():
    assert list(SNR_LEVELS) == ["very_low", "low", "moderate", "high"]
    values = list(SNR_LEVELS.values())
    assert values == sorted(values)
    assert 1.5 <= SNR_LEVELS["very_low"] <= 2.0


def test_shape_dtype_and_columns():
    p = small()
    movie = simulate_movie(p, seed=3)
    assert isinstance(movie, SimulatedMovie)
    assert movie.image.shape == (2, 2, 16, 64, 64)
    assert movie.image.dtype == np.uint16
    assert movie.params is p
    assert movie.voxel_size_um == p.voxel_size_um
    expected = ["t", "z", "y", "x", "z_um", "y_um", "x_um", "channel"]
    expected += ["pair_id", "track_id", "amplitude"]
    assert list(movie.points.columns) == expected
    pts = movie.points
    assert set(pts["channel"]) == {0, 1}
    assert set(pts["t"]) == {0, 1}
    # every kinetochore once per frame and channel
    counts = pts.groupby(["t", "channel"]).size()
    assert (counts == 2 * p.n_pairs).all()
    # physical = voxel x voxel size
    np.testing.assert_allclose(pts[UM].to_numpy(), pts[VOX].to_numpy() * np.array(p.voxel_size_um))
    # track ids constant over time, pair ids shared by exactly two sisters
    egfp = pts[pts.channel == 0]
    assert egfp.groupby("track_id")["pair_id"].nunique().max() == 1
    assert (egfp[egfp.t == 0].groupby("pair_id").size() == 2).all()
    # camera offset floor and a real signal above it
    assert movie.image.min() >= 0
    assert np.median(movie.image) > p.camera_offset_adu
    assert movie.clutter.empty


def test_determinism():
    p = small()
    a = simulate_movie(p, seed=7)
    b = simulate_movie(p, seed=7)
    c = simulate_movie(p, seed=8)
    np.testing.assert_array_equal(a.image, b.image)
    pd.testing.assert_frame_equal(a.points, b.points)
    assert not np.array_equal(a.image, c.image)
    assert not np.allclose(a.points[VOX].to_numpy()[:4], c.points[VOX].to_numpy()[:4])


def test_global_rng_untouched():
    state = np.random.get_state()[1].copy()  # noqa: NPY002 (the legacy global RNG)
    simulate_movie(small(n_frames=1), seed=0)
    sample_params(np.random.default_rng(0))
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_default_params_run():
    movie = simulate_movie(SimulationParams(n_frames=1))
    assert movie.image.shape == (1, 2, 32, 128, 128)
    assert (movie.points.channel == 0).sum() == 40


def test_ground_truth_inside_volume():
    # a cramped volume with strong motion: spots leaving it are dropped from the GT
    p = small(
        n_frames=6,
        shape_zyx=(10, 40, 40),
        n_pairs=12,
        oscillation_amplitude_um=1.5,
        oscillation_period_frames=4,
        motion_sd_um=0.2,
    )
    for seed in range(3):
        pts = simulate_movie(p, seed=seed).points
        coords = pts[VOX].to_numpy()
        assert np.all(coords >= 0)
        assert np.all(coords <= np.array(p.shape_zyx) - 1)
    # the default movie keeps everything inside with its margin
    pts = simulate_movie(small(n_frames=3), seed=1).points
    assert len(pts) == 3 * 2 * 2 * SMALL["n_pairs"]


def test_invalid_params():
    with pytest.raises(ValueError, match="snr"):
        SimulationParams(snr=0)
    with pytest.raises(ValueError, match="render_style"):
        SimulationParams(render_style="airy")
    with pytest.raises(ValueError, match="voxel_size_um"):
        SimulationParams(voxel_size_um=(0.3, 0.0, 0.13))
    with pytest.raises(ValueError, match="noise_model"):
        SimulationParams(noise_model="none")
    with pytest.raises(ValueError, match="layout"):
        SimulationParams(layout="grid")


# --------------------------------------------------------------------------- geometry


def _sister_distances(pts: pd.DataFrame, channel: int = 0) -> np.ndarray:
    sub = pts[pts.channel == channel].sort_values(["t", "pair_id", "track_id"])
    sizes = sub.groupby(["t", "pair_id"]).size()
    assert (sizes == 2).all()
    xyz = sub[UM].to_numpy()
    return np.linalg.norm(xyz[0::2] - xyz[1::2], axis=1)


def test_sister_distances_within_range():
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


def test_sister_axis_follows_plate_normal():
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


def test_mcherry_offset():
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


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("style", ["gaussian", "moffat"])
def test_render_spots_integrates_to_amplitude(style):
    sigma = (1.0, 0.77, 0.77)
    shape = (41, 81, 81) if style == "moffat" else (21, 25, 25)
    centre = (np.array(shape) - 1) / 2 + np.array([0.3, -0.2, 0.45])
    img = render_spots(shape, centre[None], [500.0], sigma, style=style)
    assert img.dtype == np.float32
    assert img.shape == shape
    assert img.min() >= 0
    np.testing.assert_allclose(img.sum(dtype=np.float64), 500.0, rtol=2e-3)
    # the brightest voxel contains the centre
    assert np.unravel_index(np.argmax(img), shape) == tuple(np.rint(centre).astype(int))


@pytest.mark.parametrize("offset", [(0.0, 0.0, 0.0), (0.37, -0.21, 0.49), (-0.5, 0.13, -0.33)])
def test_render_spots_subvoxel_centroid(offset):
    shape = (21, 25, 25)
    pos = np.array([10.0, 12.0, 12.0]) + np.array(offset)
    img = render_spots(shape, pos[None], 1.0, (1.0, 0.77, 0.77)).astype(np.float64)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    centroid = np.array([np.sum(g * img) for g in grids]) / img.sum()
    np.testing.assert_allclose(centroid, pos, atol=0.02)


def test_render_spots_many_and_edges():
    shape = (12, 30, 30)
    pos = np.array([[5.5, 10.2, 10.7], [6.0, 20.0, 20.0], [0.0, 0.0, 0.0], [-20.0, 5.0, 5.0]])
    amp = np.array([100.0, 50.0, 80.0, 1000.0])
    sigma = (1.0, 0.8, 0.8)
    img = render_spots(shape, pos, amp, sigma)
    single = sum(render_spots(shape, p[None], a, sigma) for p, a in zip(pos, amp, strict=True))
    np.testing.assert_allclose(img, single, rtol=1e-5, atol=1e-6)
    # a spot centred on the corner voxel keeps the mass beyond its lower voxel edges
    corner = render_spots(shape, pos[2:3], 80.0, sigma)
    inside = np.prod(norm.cdf(0.5 / np.array(sigma)))
    np.testing.assert_allclose(corner.sum() / 80.0, inside, rtol=1e-4)
    # one far outside adds nothing
    assert render_spots(shape, pos[3:4], 1000.0, sigma).sum() == 0
    # per-spot sigmas: a wider spot has a lower peak
    wide = render_spots(shape, pos[:2], 1.0, np.array([sigma, [2.0, 1.6, 1.6]]))
    assert wide[6, 20, 20] < wide[6, 10, 11]
    # adding into an existing array
    out = np.ones(shape, np.float32)
    render_spots(shape, pos[:1], 100.0, sigma, out=out)
    np.testing.assert_allclose(out.sum(), out.size + 100.0, rtol=1e-3)
    with pytest.raises(ValueError):
        render_spots(shape, pos, amp, (0.0, 1.0, 1.0))


def test_moffat_has_heavier_tails():
    shape = (31, 61, 61)
    c = (np.array(shape) - 1) / 2
    g = render_spots(shape, c[None], 1.0, (1.0, 1.0, 1.0), "gaussian")
    m = render_spots(shape, c[None], 1.0, (1.0, 1.0, 1.0), "moffat")
    # same FWHM in xy: comparable central peak profile, but more mass far out
    ring = np.hypot(*np.meshgrid(np.arange(61) - 30, np.arange(61) - 30, indexing="ij")) > 5
    assert m[15][ring].sum() > 5 * g[15][ring].sum()
    # longer in z
    assert m[:, 30, 30][15 + 3] / m[15, 30, 30] > g[:, 30, 30][15 + 3] / g[15, 30, 30]


def _measured_snr(movie: SimulatedMovie) -> float:
    p = movie.params
    img = (movie.image[0, 0].astype(np.float64) - p.camera_offset_adu) / p.gain_adu_per_e
    pts = movie.points[(movie.points.t == 0) & (movie.points.channel == 0)]
    idx = np.rint(pts[VOX].to_numpy()).astype(int)
    # background: voxels far from every spot
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in img.shape], indexing="ij"), -1)
    dist, _ = cKDTree(pts[VOX].to_numpy() * np.array(p.voxel_size_um)).query(
        grid.reshape(-1, 3) * np.array(p.voxel_size_um)
    )
    bg = img.reshape(-1)[dist > 1.5]
    peaks = img[tuple(idx.T)] - bg.mean()
    return peaks.mean() / bg.std()


@pytest.mark.parametrize("noise_model", ["poisson_gaussian", "emccd"])
@pytest.mark.parametrize("snr", [3.0, 8.0])
def test_snr_honoured(snr, noise_model):
    # uniform background (no haze) so that 'local background' is well defined
    p = SimulationParams(
        n_frames=1,
        shape_zyx=(24, 96, 96),
        n_pairs=30,
        snr=snr,
        haze_rel=0.0,
        background_e=60.0,
        noise_model=noise_model,
    )
    measured = np.mean([_measured_snr(simulate_movie(p, seed=s)) for s in range(2)])
    assert measured == pytest.approx(snr, rel=0.3)
    assert measured == pytest.approx(snr, rel=0.2)  # in practice within ~10 %


def test_snr_scales_spot_contrast_with_haze():
    # with haze and clutter the calibration still holds in noise-free terms:
    # higher SNR gives proportionally brighter spots over the same background
    base = dict(n_frames=1, shape_zyx=(16, 64, 64), n_pairs=6, haze_rel=0.5, n_clutter=2)
    lo = simulate_movie(SimulationParams(**base, snr=3.0), seed=1)
    hi = simulate_movie(SimulationParams(**base, snr=12.0), seed=1)
    a_lo = lo.points[lo.points.channel == 0]["amplitude"].to_numpy()
    a_hi = hi.points[hi.points.channel == 0]["amplitude"].to_numpy()
    assert np.all(a_hi > 3 * a_lo)
    assert not lo.clutter.empty
    assert set(lo.clutter.columns) >= {"t", "z", "y", "x", "channel", "clutter_id"}


# --------------------------------------------------------------------------- dynamics


def test_photobleaching_lowers_signal():
    p = small(n_frames=4, bleach_rate=0.15, background_e=5.0, snr=10.0)
    movie = simulate_movie(p, seed=0)
    signal = movie.image.astype(np.float64).mean(axis=(2, 3, 4)) - p.camera_offset_adu
    signal -= p.gain_adu_per_e * p.background_e
    for ch in range(2):
        assert np.all(np.diff(signal[:, ch]) < 0)
    amp = movie.points[movie.points.channel == 0].pivot(
        index="track_id", columns="t", values="amplitude"
    )
    ratio = amp[3] / amp[0]
    np.testing.assert_allclose(ratio, np.exp(-0.15 * 3), rtol=1e-9)
    # without bleaching the amplitudes are constant
    still = simulate_movie(small(n_frames=3, bleach_rate=0.0), seed=0).points
    still = still[still.channel == 0]
    assert still.groupby("track_id")["amplitude"].nunique().max() == 1


def test_plate_oscillation_moves_mean_position():
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


def test_random_walk_moves_spots_a_little():
    p = small(n_frames=4, oscillation_amplitude_um=0.0, motion_sd_um=0.05, spot_jitter_sd_um=0.0)
    pts = simulate_movie(p, seed=2).points
    g = pts[pts.channel == 0]
    xyz = g.pivot(index="track_id", columns="t", values="x_um")
    step = np.abs(np.diff(xyz.to_numpy(), axis=1))
    assert 0.005 < step.mean() < 0.15


# --------------------------------------------------------------------------- real layout


def test_reference_layout():
    ref = reference_layout_um()
    assert ref.shape == (79, 3)
    np.testing.assert_allclose(ref.mean(axis=0), 0.0, atol=1e-4)
    d, _ = cKDTree(ref).query(ref, 2)
    assert d[:, 1].min() == pytest.approx(0.31, abs=0.01)
    assert np.median(d[:, 1]) == pytest.approx(0.96, abs=0.01)
    ref[0] = 1e6  # a copy: the cache is not modified
    assert reference_layout_um()[0, 0] < 100


def test_real_layout():
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


# --------------------------------------------------------------------------- randomisation


def test_sample_params_varied_and_valid():
    rng = np.random.default_rng(0)
    draws = [sample_params(rng) for _ in range(40)]
    assert all(isinstance(p, SimulationParams) for p in draws)
    snr = np.array([p.snr for p in draws])
    assert snr.min() >= SNR_LEVELS["very_low"] and snr.max() <= SNR_LEVELS["high"]
    assert snr.max() / snr.min() > 3
    n_pairs = np.array([p.n_pairs for p in draws])
    assert n_pairs.min() >= 5 and n_pairs.max() <= 46 and len(set(n_pairs)) > 10
    psf = np.array([p.psf_sigma_um for p in draws]) / np.array(SimulationParams().psf_sigma_um)
    assert psf.min() >= 0.7 and psf.max() <= 1.3 and psf.std() > 0.1
    vox = np.array([p.voxel_size_um for p in draws]) / np.array(SimulationParams().voxel_size_um)
    assert vox.min() >= 0.85 and vox.max() <= 1.15
    assert {p.render_style for p in draws} == {"gaussian", "moffat"}
    assert {p.noise_model for p in draws} == {"poisson_gaussian", "emccd"}
    assert {p.layout for p in draws} == {"random", "real"}
    assert {p.n_clutter > 0 for p in draws} == {True, False}
    assert len({p.haze_rel for p in draws}) == 40


def test_sample_params_deterministic_and_overrides():
    a = sample_params(np.random.default_rng(5))
    b = sample_params(np.random.default_rng(5))
    assert a == b
    c = sample_params(np.random.default_rng(5), n_frames=2, shape_zyx=(16, 64, 64), snr=4.0)
    assert (c.n_frames, c.shape_zyx, c.snr) == (2, (16, 64, 64), 4.0)
    # overrides do not change the other draws
    rest = {f.name for f in dataclasses.fields(a)} - {"n_frames", "shape_zyx", "snr"}
    assert all(getattr(a, k) == getattr(c, k) for k in rest)
    with pytest.raises(TypeError, match="no_such_field"):
        sample_params(np.random.default_rng(0), no_such_field=1)


def test_sampled_params_simulate():
    rng = np.random.default_rng(11)
    for i in range(3):
        p = sample_params(rng, n_frames=2, shape_zyx=(16, 64, 64))
        movie = simulate_movie(p, seed=i)
        assert movie.image.shape == (2, 2, 16, 64, 64)
        assert movie.image.dtype == np.uint16
        coords = movie.points[VOX].to_numpy()
        assert np.all((coords >= 0) & (coords <= np.array([15, 63, 63])))
        assert len(movie.points) > 0
