"""Tests of napari_kinetochores.simulate.rendering: voxel-integrated PSFs and depth aberration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from napari_kinetochores.simulate import SimulationParams, render_spots, simulate_movie
from napari_kinetochores.simulate.rendering import psf_lobes


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


# --------------------------------------------------------------------------- depth aberration


def _z_profile(p: SimulationParams, z_vox: float) -> np.ndarray:
    """Noise-free z profile (summed over y, x) of one EGFP spot at plane ``z_vox``."""
    shape = (60, 15, 15)
    pos = np.array([[z_vox, 7.0, 7.0]])
    image = np.zeros(shape, np.float32)
    for lobe in psf_lobes(p, pos, np.array([1000.0]), p.psf_sigma_vox(0)):
        render_spots(shape, *lobe, out=image)
    return image.sum(axis=(1, 2)).astype(np.float64)


def _moments(profile: np.ndarray) -> tuple[float, float, float]:
    z = np.arange(len(profile))
    w = profile / profile.sum()
    mean = float(np.sum(w * z))
    sd = float(np.sqrt(np.sum(w * (z - mean) ** 2)))
    return mean, sd, float(np.sum(w * ((z - mean) / sd) ** 3))


def test_psf_lobes_off_returns_the_inputs():
    p = SimulationParams()
    pos, amp, sigma = np.zeros((2, 3)), np.ones(2), np.ones(3)
    ((a, b, c),) = psf_lobes(p, pos, amp, sigma)
    assert a is pos and b is amp and c is sigma


def test_axial_broadening_grows_with_depth():
    p = SimulationParams(voxel_size_um=(0.2, 0.1, 0.1), psf_z_broadening_per_um=0.1)
    _, shallow, _ = _moments(_z_profile(p, 10.0))  # 2 µm deep
    _, deep, _ = _moments(_z_profile(p, 40.0))  # 8 µm deep
    sigma_z = p.psf_sigma_um[0] / 0.2
    assert shallow == pytest.approx(np.hypot(sigma_z * 1.2, np.sqrt(1 / 12)), rel=0.02)
    assert deep == pytest.approx(np.hypot(sigma_z * 1.8, np.sqrt(1 / 12)), rel=0.02)
    flat = SimulationParams(voxel_size_um=(0.2, 0.1, 0.1))
    assert _moments(_z_profile(flat, 40.0))[1] == pytest.approx(_moments(_z_profile(flat, 10.0))[1])


@pytest.mark.parametrize("offset_um", [0.8, -0.8])
def test_side_lobe_makes_the_psf_axially_asymmetric(offset_um):
    p = SimulationParams(
        voxel_size_um=(0.2, 0.1, 0.1), side_lobe_rel_per_um=0.04, side_lobe_offset_um=offset_um
    )
    profile = _z_profile(p, 30.0)  # 6 µm deep: 24 % of the light in the lobe
    mean, _, skew = _moments(profile)
    assert np.argmax(profile) == 30  # the main lobe stays where the spot is
    assert np.sign(mean - 30.0) == np.sign(offset_um)  # light moved to one side only
    assert np.sign(skew) == np.sign(offset_um)
    assert profile.sum() == pytest.approx(1000.0, rel=1e-3)
    lobe = 30 + int(round(offset_um / 0.2))
    mirror = 30 - int(round(offset_um / 0.2))
    assert profile[lobe] > 3 * profile[mirror]


def test_aberrated_movie_keeps_ground_truth_positions(small):
    p = small(n_frames=1, n_pairs=10, psf_z_broadening_per_um=0.3, side_lobe_rel_per_um=0.05)
    plain = simulate_movie(small(n_frames=1, n_pairs=10), seed=2)
    movie = simulate_movie(p, seed=2)
    pd.testing.assert_frame_equal(
        movie.points.drop(columns="amplitude"), plain.points.drop(columns="amplitude")
    )
    assert not np.array_equal(movie.image, plain.image)
