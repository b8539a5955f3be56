"""Simulated movies: :func:`simulate_movie` and its ground-truth tables.

The steps, in the order they draw from the one generator: plate and layout
(:mod:`.layouts`), motion, spot brightness calibrated to the SNR definition
(package doc), clutter, then frame by frame the expected photo-electrons
(:mod:`.rendering`) and the camera (:mod:`.camera`). Keep that order: the
same params and seed must give the same movie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from napari_kinetochores.simulate.camera import draw_camera, preprocess, to_adu
from napari_kinetochores.simulate.distributions import lognormal
from napari_kinetochores.simulate.layouts import (
    Layout,
    PlateGeometry,
    Trajectories,
    build_layout,
    move_kinetochores,
    place_plate,
    random_walk,
)
from napari_kinetochores.simulate.params import SimulationParams
from napari_kinetochores.simulate.rendering import (
    gaussian_blob,
    main_peak_fraction,
    psf_lobes,
    render_spots,
)

__all__ = ["SimulatedMovie", "simulate_movie"]

_POINT_COLUMNS = [
    "t",
    "z",
    "y",
    "x",
    "z_um",
    "y_um",
    "x_um",
    "channel",
    "pair_id",
    "track_id",
    "amplitude",
]
_CLUTTER_COLUMNS = [
    "t",
    "z",
    "y",
    "x",
    "z_um",
    "y_um",
    "x_um",
    "channel",
    "clutter_id",
    "amplitude",
]


@dataclass
class SimulatedMovie:
    """A simulated movie and its ground truth.

    Attributes
    ----------
    image
        (T, C, Z, Y, X), C = 2: channel 0 EGFP, channel 1 mCherry. uint16 in
        ADU, unless ``params`` asks for preprocessed output
        (``background_percentile``, ``output_dtype``: uint8 or float32).
    points
        Ground truth, one row per kinetochore per frame per channel, sorted by
        t, channel, track_id. Columns: ``t`` (int), ``z, y, x`` (float voxel
        coordinates, voxel centre at the integer index), ``z_um, y_um, x_um``
        (= voxel × voxel size), ``channel`` (0 EGFP, 1 mCherry), ``pair_id``
        (sisters share it), ``track_id`` (one kinetochore over time; the
        EGFP and mCherry rows of a kinetochore share it), ``amplitude``
        (integrated photo-electrons of the spot in that frame). Only spots
        whose centre lies inside [0, size - 1] on every axis are listed.
    params
        The parameters used.
    clutter
        Centres of the clutter blobs (not kinetochores), same coordinate
        columns plus ``channel, clutter_id, amplitude``; empty if none.
    """

    image: np.ndarray
    points: pd.DataFrame
    params: SimulationParams
    clutter: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_CLUTTER_COLUMNS))

    @property
    def voxel_size_um(self) -> tuple[float, float, float]:
        """Voxel size (z, y, x) in µm."""
        return self.params.voxel_size_um


@dataclass
class _Spots:
    """Kinetochore spots per channel (index 0 EGFP, 1 mCherry).

    ``pos_vox`` (T, K, 3) voxel positions, ``amp_e`` (K,) integrated e- in
    frame 0, ``sigma_vox`` (3,) PSF sigma, ``peak_e`` mean spot peak in e-
    (frame 0); ``haze_sigma_vox`` (3,) is shared by both channels.
    """

    pos_vox: list[np.ndarray]
    amp_e: list[np.ndarray]
    sigma_vox: list[np.ndarray]
    peak_e: list[float]
    haze_sigma_vox: np.ndarray


@dataclass
class _Clutter:
    """Clutter blobs: ``pos_vox`` (T, N, 3), per channel ``amp_e`` (N,) (0: absent from the
    channel) and ``sigma_vox`` (N, 3)."""

    pos_vox: np.ndarray
    amp_e: list[np.ndarray]
    sigma_vox: list[np.ndarray]


# --------------------------------------------------------------------------- brightness


def _haze_sigma_vox(p: SimulationParams) -> np.ndarray:
    """(3,) sigma of the haze blob in voxels (z sigma 1.5 × the xy sigma)."""
    xy = p.haze_sigma_um if p.haze_sigma_um is not None else 0.7 * p.plate_radius() + 2.0
    return np.array([1.5 * xy, xy, xy]) / np.asarray(p.voxel_size_um)


def _haze_at_spots(spots_vox: np.ndarray, centre_vox: np.ndarray, sigma_vox: np.ndarray) -> float:
    """Mean relative haze (peak 1) at the spots (K, 3) of frame 0; 0 without spots."""
    if not len(spots_vox):
        return 0.0
    d = (spots_vox - centre_vox) / sigma_vox
    return float(np.mean(np.exp(-0.5 * np.sum(d**2, axis=1))))


def _kinetochore_spots(
    p: SimulationParams, rng: np.random.Generator, tracks: Trajectories
) -> _Spots:
    """Per-channel positions and amplitudes, scaled so frame 0 of EGFP has SNR ``p.snr``."""
    voxel = np.asarray(p.voxel_size_um)
    pos_vox = [tracks.egfp_um / voxel, tracks.mcherry_um / voxel]
    n_k = pos_vox[0].shape[1]
    sigma_vox = [p.psf_sigma_vox(0), p.psf_sigma_vox(1)]
    b_egfp = lognormal(rng, p.brightness_cv, n_k)
    b_mch = b_egfp * lognormal(rng, p.brightness_cv / 2, n_k)
    haze_sigma_vox = _haze_sigma_vox(p)
    haze = _haze_at_spots(pos_vox[0][0], tracks.plate_centre_um[0] / voxel, haze_sigma_vox)
    peak_e = p.mean_spot_peak_e(haze)
    peak_ch = [peak_e, peak_e * p.mcherry_rel_brightness]
    amps = []
    for ch, b in enumerate((b_egfp, b_mch)):
        if n_k:
            pf = main_peak_fraction(p, pos_vox[ch][0], sigma_vox[ch])
            amps.append(b * peak_ch[ch] / float(np.mean(b * pf)))
        else:
            amps.append(np.zeros(0))
    return _Spots(pos_vox, amps, sigma_vox, peak_ch, haze_sigma_vox)


# --------------------------------------------------------------------------- clutter


def _clutter_starts_um(
    p: SimulationParams, rng: np.random.Generator, plate: PlateGeometry, spots_um: np.ndarray
) -> np.ndarray:
    """(N, 3) clutter centres in frame 0: random in the box, ≥ 1 µm from every kinetochore
    when one of 64 candidates is."""
    lo, hi = plate.lo_um, plate.hi_um
    starts = np.zeros((p.n_clutter, 3))
    for i in range(p.n_clutter):
        cand = lo + (hi - lo) * rng.random((64, 3))
        if len(spots_um):
            dist = np.sqrt(np.sum((cand[:, None] - spots_um[None]) ** 2, axis=-1)).min(axis=1)
            good = np.flatnonzero(dist >= 1.0)
            starts[i] = cand[good[0]] if len(good) else cand[0]
        else:
            starts[i] = cand[0]
    return starts


def _place_clutter(
    p: SimulationParams,
    rng: np.random.Generator,
    plate: PlateGeometry,
    tracks: Trajectories,
    spots: _Spots,
) -> _Clutter:
    """Big, dim-per-voxel blobs that are not kinetochores (half of them also in mCherry)."""
    starts = _clutter_starts_um(p, rng, plate, tracks.egfp_um[0])
    n_c = p.n_clutter
    scale = rng.uniform(*p.clutter_size_range, size=n_c)
    peak = p.clutter_rel * lognormal(rng, 0.3, n_c)
    in_ch1 = rng.random(n_c) < 0.5
    clutter_um = starts[None] + random_walk(rng, p.motion_sd_um, p.n_frames, n_c)  # (T, N, 3)
    pos_vox = clutter_um / np.asarray(p.voxel_size_um)
    amps, sigmas = [], []
    for ch in range(2):
        sig = scale[:, None] * spots.sigma_vox[ch][None, :]
        pf = main_peak_fraction(p, pos_vox[0], sig)
        amp = peak * spots.peak_e[ch] / np.maximum(pf, 1e-12)
        if ch == 1:
            amp = np.where(in_ch1, amp, 0.0)
        amps.append(amp)
        sigmas.append(sig)
    return _Clutter(pos_vox, amps, sigmas)


# --------------------------------------------------------------------------- frames


def _expected_e(
    p: SimulationParams,
    t: int,
    ch: int,
    spots: _Spots,
    clutter: _Clutter,
    haze: np.ndarray | None,
) -> np.ndarray:
    """Expected photo-electrons (Z, Y, X) float32 of channel ``ch`` in frame ``t``."""
    fade = math.exp(-p.bleach_rate * t)
    style = {"style": p.render_style, "moffat_z_scale": p.moffat_z_scale}
    expected = np.zeros(p.shape_zyx, dtype=np.float32)
    sources = [(spots.pos_vox[ch][t], spots.amp_e[ch], spots.sigma_vox[ch])]
    if p.n_clutter:
        sources.append((clutter.pos_vox[t], clutter.amp_e[ch], clutter.sigma_vox[ch]))
    for pos, amp, sigma in sources:
        for lobe in psf_lobes(p, pos, amp * fade, sigma):
            render_spots(p.shape_zyx, *lobe, **style, out=expected)
    expected += np.float32(p.background_e)
    if haze is not None:
        expected += np.float32(p.haze_rel * spots.peak_e[ch] * fade) * haze
    return expected


def _frame_table(
    t: int,
    channel: int,
    pos_vox: np.ndarray,
    voxel: np.ndarray,
    ids: dict[str, np.ndarray],
    amplitude: np.ndarray,
) -> pd.DataFrame:
    """Point rows of one frame and channel: coordinates, ``ids`` columns, amplitude."""
    um = pos_vox * voxel
    table = {
        "t": np.full(len(pos_vox), t, dtype=np.int64),
        "z": pos_vox[:, 0],
        "y": pos_vox[:, 1],
        "x": pos_vox[:, 2],
        "z_um": um[:, 0],
        "y_um": um[:, 1],
        "x_um": um[:, 2],
        "channel": np.full(len(pos_vox), channel, dtype=np.int64),
    }
    table.update(ids)
    table["amplitude"] = amplitude
    return pd.DataFrame(table)


def _truth_rows(
    p: SimulationParams, t: int, ch: int, spots: _Spots, layout: Layout
) -> pd.DataFrame:
    """Ground truth of frame ``t``, channel ``ch``: the spots whose centre is in the volume."""
    pos = spots.pos_vox[ch][t]
    upper = np.asarray(p.shape_zyx) - 1
    keep = np.all((pos >= 0) & (pos <= upper), axis=1)
    track_id = np.arange(len(pos), dtype=np.int64)
    ids = {"pair_id": layout.pair_index[keep], "track_id": track_id[keep]}
    fade = math.exp(-p.bleach_rate * t)
    voxel = np.asarray(p.voxel_size_um)
    return _frame_table(t, ch, pos[keep], voxel, ids, spots.amp_e[ch][keep] * fade)


def _clutter_rows(p: SimulationParams, t: int, ch: int, clutter: _Clutter) -> pd.DataFrame:
    """Clutter centres of frame ``t`` present in channel ``ch``."""
    present = clutter.amp_e[ch] > 0
    ids = {"clutter_id": np.flatnonzero(present).astype(np.int64)}
    fade = math.exp(-p.bleach_rate * t)
    amp = clutter.amp_e[ch][present] * fade
    voxel = np.asarray(p.voxel_size_um)
    return _frame_table(t, ch, clutter.pos_vox[t][present], voxel, ids, amp)


def _haze(p: SimulationParams, t: int, tracks: Trajectories, spots: _Spots) -> np.ndarray | None:
    """Relative haze (peak 1) around the plate centre of frame ``t``; ``None`` without haze."""
    if p.haze_rel <= 0:
        return None
    centre_vox = tracks.plate_centre_um[t] / np.asarray(p.voxel_size_um)
    return gaussian_blob(p.shape_zyx, centre_vox, spots.haze_sigma_vox)


def _collect(tables: list[pd.DataFrame], columns: list[str], sort: bool) -> pd.DataFrame:
    if not tables:
        return pd.DataFrame(columns=columns)
    table = pd.concat(tables, ignore_index=True)[columns]
    if sort:
        table = table.sort_values(["t", "channel", "track_id"], kind="stable")
        table = table.reset_index(drop=True)
    return table


def simulate_movie(params: SimulationParams | None = None, seed: int = 0) -> SimulatedMovie:
    """Simulate a two-colour 3D kinetochore movie with ground truth.

    Deterministic: the same ``params`` and ``seed`` give the same movie. See
    the package docstring for the model and the definition of SNR.

    Parameters
    ----------
    params
        Simulation parameters; ``None`` for the defaults.
    seed
        Seed of the ``numpy.random.Generator`` used for everything.

    Returns
    -------
    SimulatedMovie
        ``image`` (T, 2, Z, Y, X) uint16 (or ``params.output_dtype``), ``points`` (ground truth of both
        channels, voxel and µm coordinates), ``params``, ``clutter``.

    Examples
    --------
    >>> movie = simulate_movie(SimulationParams(n_frames=1, shape_zyx=(16, 48, 48), n_pairs=3), seed=0)
    >>> movie.image.shape
    (1, 2, 16, 48, 48)
    >>> int((movie.points["channel"] == 0).sum())
    6
    """
    p = SimulationParams() if params is None else params
    rng = np.random.default_rng(seed)
    plate = place_plate(p, rng)
    layout = build_layout(p, rng, plate)
    tracks = move_kinetochores(p, rng, plate, layout)
    spots = _kinetochore_spots(p, rng, tracks)
    clutter = _place_clutter(p, rng, plate, tracks, spots)
    camera = draw_camera(p, rng)
    image = np.empty((p.n_frames, 2) + p.shape_zyx, dtype=np.uint16)
    truth, clutter_truth = [], []
    for t in range(p.n_frames):
        haze = _haze(p, t, tracks, spots)
        for ch in range(2):
            expected = _expected_e(p, t, ch, spots, clutter, haze)
            image[t, ch] = to_adu(expected, camera, p, rng)
            truth.append(_truth_rows(p, t, ch, spots, layout))
            if p.n_clutter:
                clutter_truth.append(_clutter_rows(p, t, ch, clutter))
    points = _collect(truth, _POINT_COLUMNS, sort=True)
    clutter_points = _collect(clutter_truth, _CLUTTER_COLUMNS, sort=False)
    return SimulatedMovie(preprocess(image, p), points, p, clutter_points)
