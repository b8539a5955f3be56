"""Tests of napari_kinetochores.simulate.movies: simulate_movie and its ground truth."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from napari_kinetochores.simulate import (
    SimulatedMovie,
    SimulationParams,
    sample_params,
    simulate_movie,
)

UM = ["z_um", "y_um", "x_um"]
VOX = ["z", "y", "x"]


def test_shape_dtype_and_columns(small):
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


def test_determinism(small):
    p = small()
    a = simulate_movie(p, seed=7)
    b = simulate_movie(p, seed=7)
    c = simulate_movie(p, seed=8)
    np.testing.assert_array_equal(a.image, b.image)
    pd.testing.assert_frame_equal(a.points, b.points)
    assert not np.array_equal(a.image, c.image)
    assert not np.allclose(a.points[VOX].to_numpy()[:4], c.points[VOX].to_numpy()[:4])


def test_global_rng_untouched(small):
    state = np.random.get_state()[1].copy()  # noqa: NPY002 (the legacy global RNG)
    simulate_movie(small(n_frames=1), seed=0)
    sample_params(np.random.default_rng(0))
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_default_params_run():
    movie = simulate_movie(SimulationParams(n_frames=1))
    assert movie.image.shape == (1, 2, 32, 128, 128)
    assert (movie.points.channel == 0).sum() == 40


def test_ground_truth_inside_volume(small):
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
    assert len(pts) == 3 * 2 * 2 * small().n_pairs


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


def test_photobleaching_lowers_signal(small):
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


def test_long_bleaching_movie():
    rate = -math.log(0.88)  # 12 % per frame
    p = SimulationParams(n_frames=8, shape_zyx=(16, 64, 64), n_pairs=6, bleach_rate=rate)
    movie = simulate_movie(p, seed=1)
    amp = movie.points[movie.points.channel == 0].pivot(
        index="track_id", columns="t", values="amplitude"
    )
    np.testing.assert_allclose(amp[7] / amp[0], 0.88**7, rtol=1e-9)
    # the image fades the same way: spots and haze, above the unbleached uniform background
    mean = movie.image.astype(np.float64).mean(axis=(2, 3, 4))[:, 0]
    signal = mean - p.camera_offset_adu - p.gain_adu_per_e * p.background_e
    assert signal[7] / signal[0] == pytest.approx(0.88**7, rel=0.1)


def _spot_widths_um(movie: SimulatedMovie) -> np.ndarray:
    """Median (z, y, x) sd in µm of the EGFP spots of frame 0 (second moments, ±3 sigma)."""
    p = movie.params
    vox = np.array(p.voxel_size_um)
    img = (movie.image[0, 0] - p.camera_offset_adu) / p.gain_adu_per_e - p.background_e
    half = np.ceil(3 * np.array(p.psf_sigma_um) / vox).astype(int)
    widths = []
    for centre in movie.points.query("channel == 0 and t == 0")[VOX].to_numpy():
        lo = np.rint(centre).astype(int) - half
        hi = lo + 2 * half + 1
        if (lo < 0).any() or (hi > np.array(p.shape_zyx)).any():
            continue
        weight = np.clip(img[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], 0, None)
        grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij")
        var = [
            np.sum(weight * (g - c) ** 2) / weight.sum() for g, c in zip(grids, centre, strict=True)
        ]
        widths.append(np.sqrt(var) * vox)
    assert len(widths) >= 4
    return np.median(widths, axis=0)


@pytest.mark.parametrize(
    "voxel_size_um", [(0.5, 0.16, 0.16), (0.15, 0.06, 0.06), (0.6, 0.2, 0.2), (0.2, 0.1, 0.1)]
)
def test_spots_keep_their_physical_width_at_any_voxel_size(voxel_size_um):
    shape = tuple(math.ceil(f / v) for f, v in zip((9.6, 12.0, 12.0), voxel_size_um, strict=True))
    p = SimulationParams(
        n_frames=1,
        shape_zyx=shape,
        voxel_size_um=voxel_size_um,
        n_pairs=4,
        snr=1000.0,  # noise negligible
        background_e=1.0,
        read_noise_e=0.1,
        haze_rel=0.0,
        plate_radius_um=3.5,  # isolated spots
        min_pair_distance_um=3.0,
        sister_sep_mean_um=1.45,
        sister_sep_range_um=(1.4, 1.5),
        orientation_jitter_deg=0.0,
        brightness_cv=0.0,
    )
    measured = _spot_widths_um(simulate_movie(p, seed=0))
    # voxel-integrated gaussian: variance sigma^2 + voxel^2 / 12 (Sheppard)
    expected = np.sqrt(np.array(p.psf_sigma_um) ** 2 + np.array(voxel_size_um) ** 2 / 12)
    np.testing.assert_allclose(measured, expected, rtol=0.06)


def _fingerprint(movie: SimulatedMovie) -> str:
    digest = hashlib.sha256(movie.image.tobytes())
    digest.update(movie.points.to_numpy(dtype=np.float64).tobytes())
    digest.update(movie.clutter.to_numpy(dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def test_default_options_give_the_same_movies_as_before(small):
    """Training recipes and benchmarks rely on a seed giving the same movie.

    The fingerprints were taken with the simulator before it became a package
    and before the domain-randomisation options existed (all off by default).
    A failure here means default movies changed: keep them, or say so (and
    update these) where training and benchmark seeds are documented.
    """
    clutter = small(n_clutter=2)
    other = small(layout="real", render_style="moffat", noise_model="emccd")
    sampled = sample_params(np.random.default_rng(1), n_frames=2, shape_zyx=(16, 64, 64))
    assert _fingerprint(simulate_movie(clutter, seed=3)) == "637804155b74eea6"
    assert _fingerprint(simulate_movie(other, seed=3)) == "a9c17c0cfa0dfc8e"
    assert _fingerprint(simulate_movie(sampled, seed=4)) == "e338ee0a431364ee"


def test_random_voxel_sizes_keep_ground_truth_in_the_volume(small):
    for seed, vox in enumerate([(0.6, 0.2, 0.2), (0.15, 0.06, 0.06)]):
        p = small(voxel_size_um=vox, n_frames=3)
        pts = simulate_movie(p, seed=seed).points
        coords = pts[VOX].to_numpy()
        assert len(pts) > 0
        assert np.all((coords >= 0) & (coords <= np.array(p.shape_zyx) - 1))
        np.testing.assert_allclose(pts[UM].to_numpy(), coords * np.array(vox))
