"""Kinetochore positions: the plate, the sister pairs in it, and their motion.

Layouts: ``"random"`` (a synthetic metaphase plate), ``"real"`` (the
annotated real kinetochores) and ``"ball"`` (prometaphase: pairs spread in a
ball, sister axes in random directions). All positions here are in µm (z, y, x) in the volume's frame (voxel centre
of index 0 at 0 µm). A layout places sister pairs relative to the plate
centre; :func:`move_kinetochores` turns it into per-frame positions of both
channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np
import pandas as pd

from napari_kinetochores.simulate.params import SimulationParams

__all__ = ["reference_layout_um"]


@dataclass
class PlateGeometry:
    """Where the plate sits: unit ``normal`` (3,), ``centre_um`` (3,) in frame 0, and the
    box ``[lo_um, hi_um]`` (each (3,)) that the kinetochore centres must stay in."""

    normal: np.ndarray
    centre_um: np.ndarray
    lo_um: np.ndarray
    hi_um: np.ndarray


@dataclass
class Layout:
    """Kinetochores relative to the plate centre in frame 0.

    ``pos_um`` (K, 3) positions; ``pair_index`` (K,) pair index 0..P-1
    (sisters share it); ``outward`` (K, 3) unit vectors from the pair centre
    towards this sister's pole (the mCherry offset direction).
    """

    pos_um: np.ndarray
    pair_index: np.ndarray
    outward: np.ndarray

    @property
    def n_pairs(self) -> int:
        """Number of pairs (units) in the layout."""
        return int(self.pair_index.max()) + 1 if len(self.pair_index) else 0


@dataclass
class Trajectories:
    """Per-frame positions in µm: ``plate_centre_um`` (T, 3), ``egfp_um`` and
    ``mcherry_um`` (T, K, 3)."""

    plate_centre_um: np.ndarray
    egfp_um: np.ndarray
    mcherry_um: np.ndarray


# --------------------------------------------------------------------------- plate


def _plate_normal(p: SimulationParams, rng: np.random.Generator) -> np.ndarray:
    """Unit plate normal: tilt from z (``plate_tilt_deg`` or uniform 0..90°), random azimuth."""
    tilt = math.radians(90.0 * rng.random() if p.plate_tilt_deg is None else p.plate_tilt_deg)
    azimuth = 2 * np.pi * rng.random()
    return np.array(
        [math.cos(tilt), math.sin(tilt) * math.sin(azimuth), math.sin(tilt) * math.cos(azimuth)]
    )


def _free_box(
    p: SimulationParams, normal: np.ndarray, extent_um: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Box (lo, hi) in µm that leaves room for the margin and the expected motion.

    An axis too short for the margins collapses to its middle.
    """
    walk_margin = min(3.0 * p.motion_sd_um * math.sqrt(max(p.n_frames - 1, 0)), 1.0)
    margin = (
        p.margin_um
        + p.oscillation_amplitude_um * np.abs(normal)
        + walk_margin
        + 3.0 * p.spot_jitter_sd_um
    )
    lo, hi = margin, extent_um - margin
    squeezed = lo > hi
    return np.where(squeezed, extent_um / 2, lo), np.where(squeezed, extent_um / 2, hi)


def place_plate(p: SimulationParams, rng: np.random.Generator) -> PlateGeometry:
    """Draw the plate normal and centre (jittered about the volume centre, kept in the box)."""
    extent = (np.asarray(p.shape_zyx) - 1) * np.asarray(p.voxel_size_um)  # µm span of centres
    normal = _plate_normal(p, rng)
    lo, hi = _free_box(p, normal, extent)
    centre = extent / 2 + p.plate_center_jitter_um * rng.standard_normal(3)
    return PlateGeometry(normal, np.clip(centre, lo, hi), lo, hi)


def _plate_basis(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two orthonormal in-plane vectors for a unit ``normal``."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(normal, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    return e1, e2


def _inside(points: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.all((points >= lo) & (points <= hi), axis=-1)


# --------------------------------------------------------------------------- reference layout


@lru_cache(maxsize=1)
def _reference_layout() -> np.ndarray:
    resource = files("napari_kinetochores") / "data" / "reference_layout.csv"
    with resource.open("r", encoding="utf-8") as fh:
        table = pd.read_csv(fh, comment="#")
    arr = table[["z_um", "y_um", "x_um"]].to_numpy(dtype=np.float64)
    arr.setflags(write=False)
    return arr


def reference_layout_um() -> np.ndarray:
    """Real annotated kinetochore centres, centred, in µm.

    The 79 centre-of-mass annotations of one time point of a real two-colour
    kinetochore movie (40 sister pairs, one kinetochore missing), converted
    from pixels with the voxel size (0.30, 0.13, 0.13) µm and centred on
    their mean. They are shipped as package data
    (``napari_kinetochores/data/reference_layout.csv``). Nearest-neighbour
    distances: min 0.31 µm, median 0.96 µm.

    Returns
    -------
    numpy.ndarray
        (79, 3) float64 (z, y, x) in µm, mean zero (a fresh copy).

    Examples
    --------
    >>> reference_layout_um().shape
    (79, 3)
    """
    return _reference_layout().copy()


@lru_cache(maxsize=1)
def _reference_geometry() -> tuple[np.ndarray, np.ndarray, tuple[tuple[int, ...], ...]]:
    """PCA basis (rows: in-plane 1, in-plane 2, normal) and sister units of the reference.

    Sisters are paired greedily by the smallest distance under a metric that
    counts in-plane offsets twice (sister axes lie along the plate normal),
    only up to 2 µm apart; the rest are singletons (units of one).
    """
    ref = _reference_layout()
    _, _, vt = np.linalg.svd(ref - ref.mean(axis=0), full_matrices=False)
    normal = vt[2]
    diff = ref[:, None, :] - ref[None, :, :]
    along = diff @ normal
    inplane2 = np.sum(diff**2, axis=-1) - along**2
    metric = np.sqrt(along**2 + 4.0 * inplane2)
    euclid = np.sqrt(np.sum(diff**2, axis=-1))
    n = len(ref)
    iu, ju = np.triu_indices(n, k=1)
    order = np.argsort(metric[iu, ju], kind="stable")
    used = np.zeros(n, dtype=bool)
    units: list[tuple[int, ...]] = []
    for k in order:
        i, j = int(iu[k]), int(ju[k])
        if used[i] or used[j] or euclid[i, j] > 2.0:
            continue
        used[i] = used[j] = True
        units.append((i, j))
    units.extend((int(i),) for i in np.flatnonzero(~used))
    return vt.copy(), normal.copy(), tuple(units)


def _oriented_reference(
    p: SimulationParams, rng: np.random.Generator, normal: np.ndarray
) -> np.ndarray:
    """Reference positions (K, 3) µm turned so their PCA normal is ``normal``, spun and jittered."""
    ref = _reference_layout()
    vt, _, _ = _reference_geometry()
    e1, e2 = _plate_basis(normal)
    psi = 2 * np.pi * rng.random()
    f1 = math.cos(psi) * e1 + math.sin(psi) * e2
    f2 = -math.sin(psi) * e1 + math.cos(psi) * e2
    coords = ref @ vt.T  # (K, 3) in the reference PCA frame
    pos = coords[:, :1] * f1 + coords[:, 1:2] * f2 + coords[:, 2:3] * normal
    return pos + p.real_layout_jitter_um * rng.standard_normal(pos.shape)


def _outward_vectors(
    pos: np.ndarray, units: tuple[tuple[int, ...], ...], normal: np.ndarray
) -> np.ndarray:
    """(K, 3) unit sister axes pointing away from the sister (singletons: ±normal, outwards)."""
    outward = np.zeros_like(pos)
    for unit in units:
        if len(unit) == 2:
            i, j = unit
            u = pos[i] - pos[j]
            u /= np.linalg.norm(u)
            outward[i], outward[j] = u, -u
        else:
            (i,) = unit
            outward[i] = normal if pos[i] @ normal >= 0 else -normal
    return outward


def _real_layout(p: SimulationParams, rng: np.random.Generator, plate: PlateGeometry) -> Layout:
    """The real annotated kinetochores: the ``n_pairs`` units nearest the plate axis that fit."""
    normal = plate.normal
    units = _reference_geometry()[2]
    pos = _oriented_reference(p, rng, normal)
    outward = _outward_vectors(pos, units, normal)
    off = p.mcherry_offset_nm / 1000.0
    fits = []
    for unit in units:
        members = np.asarray(unit)
        pts = np.concatenate([pos[members], pos[members] + off * outward[members]])
        if np.all(_inside(plate.centre_um + pts, plate.lo_um, plate.hi_um)):
            mid = pos[members].mean(axis=0)
            mid_inplane = mid - (mid @ normal) * normal
            fits.append((float(np.linalg.norm(mid_inplane)), unit))
    fits.sort(key=lambda item: item[0])
    chosen = [unit for _, unit in fits[: p.n_pairs]]
    index = [k for unit in chosen for k in unit]
    pair_index = [i for i, unit in enumerate(chosen) for _ in unit]
    return Layout(
        pos[index].reshape(-1, 3),
        np.asarray(pair_index, dtype=np.int64),
        outward[index].reshape(-1, 3),
    )


# --------------------------------------------------------------------------- synthetic layouts

_BATCH = 256  # candidate pairs drawn per try
_RELAXATIONS = 12  # tries per pair; spacing shrinks by 0.8 each time, the last accepts anything

# draw(n) -> (pair centres (n, 3), unit sister axes (n, 3), separations (n,)), relative to the
# plate centre; spacing_ok(candidate centres (n, 3), candidate kinetochores (n, 2, 3), placed
# centres (m, 3), placed kinetochores (k, 3), relax) -> (n,) bool
PairDraw = Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]]
SpacingCheck = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def _sister_separations(p: SimulationParams, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) sister separations in µm: normal, values outside the range redrawn uniformly in it."""
    smin, smax = p.sister_sep_range_um
    sep = p.sister_sep_mean_um + p.sister_sep_sd_um * rng.standard_normal(n)
    bad = (sep < smin) | (sep > smax)
    sep[bad] = rng.uniform(smin, smax, size=int(bad.sum()))
    return sep


def _pair_fits(
    plate: PlateGeometry, c: np.ndarray, half: np.ndarray, axis: np.ndarray, off_um: float
) -> np.ndarray:
    """(n,) True where both sisters and their mCherry spots lie in the plate's box."""
    ok = np.ones(len(c), dtype=bool)
    for sign in (1.0, -1.0):
        ok &= _inside(plate.centre_um + c + sign * half, plate.lo_um, plate.hi_um)
        ok &= _inside(plate.centre_um + c + sign * (half + off_um * axis), plate.lo_um, plate.hi_um)
    return ok


def _place_pairs(
    p: SimulationParams, plate: PlateGeometry, draw: PairDraw, spacing_ok: SpacingCheck
) -> Layout:
    """Place ``p.n_pairs`` pairs one by one: the first candidate that fits the box and is
    spaced from the pairs placed so far (the spacing relaxes with every try)."""
    off = p.mcherry_offset_nm / 1000.0
    centres: list[np.ndarray] = []
    pos, pair_index, outward = [], [], []
    for i in range(p.n_pairs):
        for relax in range(_RELAXATIONS):
            c, axis, sep = draw(_BATCH)
            half = (sep / 2)[:, None] * axis
            ok = np.ones(_BATCH, dtype=bool)
            if relax < _RELAXATIONS - 1:
                ok &= _pair_fits(plate, c, half, axis, off)
                if centres:
                    sisters = np.stack([c + half, c - half], axis=1)
                    ok &= spacing_ok(c, sisters, np.asarray(centres), np.asarray(pos), relax)
            hits = np.flatnonzero(ok)
            if len(hits):
                k = hits[0]
                centres.append(c[k])
                pos.extend([c[k] + half[k], c[k] - half[k]])
                outward.extend([axis[k], -axis[k]])
                pair_index.extend([i, i])
                break
    return Layout(
        np.asarray(pos, dtype=np.float64).reshape(-1, 3),
        np.asarray(pair_index, dtype=np.int64),
        np.asarray(outward, dtype=np.float64).reshape(-1, 3),
    )


def _plate_draw(p: SimulationParams, rng: np.random.Generator, normal: np.ndarray) -> PairDraw:
    """Candidate pairs in the plate disk, sister axes along the normal with a jitter."""
    e1, e2 = _plate_basis(normal)
    radius = p.plate_radius()
    jitter = math.radians(p.orientation_jitter_deg)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = radius * np.sqrt(rng.random(n))
        phi = 2 * np.pi * rng.random(n)
        h = p.plate_thickness_sd_um * rng.standard_normal(n)
        c = (r * np.cos(phi))[:, None] * e1 + (r * np.sin(phi))[:, None] * e2 + h[:, None] * normal
        g = jitter * rng.standard_normal((n, 2))
        axis = normal + g[:, :1] * e1 + g[:, 1:] * e2
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        return c, axis, _sister_separations(p, rng, n)

    return draw


def _random_layout(p: SimulationParams, rng: np.random.Generator, plate: PlateGeometry) -> Layout:
    """Synthetic metaphase plate: pair centres at least ``min_pair_distance_um`` apart."""

    def spacing_ok(c, sisters, centres, placed, relax):
        dist = np.sqrt(np.sum((c[:, None, :] - centres[None, :, :]) ** 2, axis=-1))
        return dist.min(axis=1) >= p.min_pair_distance_um * 0.8**relax

    return _place_pairs(p, plate, _plate_draw(p, rng, plate.normal), spacing_ok)


def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) directions uniform on the sphere."""
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _ball_draw(p: SimulationParams, rng: np.random.Generator) -> PairDraw:
    """Candidate pairs with centres uniform in the ball and isotropic sister axes."""
    radius = p.ball_radius()

    def draw(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = (radius * np.cbrt(rng.random(n)))[:, None] * _unit_vectors(rng, n)
        return c, _unit_vectors(rng, n), _sister_separations(p, rng, n)

    return draw


def _ball_layout(p: SimulationParams, rng: np.random.Generator, plate: PlateGeometry) -> Layout:
    """Prometaphase: pairs in a ball, sister axes in every direction, kinetochores of
    different pairs at least ``min_kinetochore_distance_um`` apart."""

    def spacing_ok(c, sisters, centres, placed, relax):
        diff = sisters[:, :, None, :] - placed[None, None, :, :]  # (n, 2, k, 3)
        dist = np.sqrt(np.sum(diff**2, axis=-1))
        return dist.min(axis=(1, 2)) >= p.min_kinetochore_distance_um * 0.8**relax

    return _place_pairs(p, plate, _ball_draw(p, rng), spacing_ok)


_LAYOUTS: dict[str, Callable[[SimulationParams, np.random.Generator, PlateGeometry], Layout]] = {
    "random": _random_layout,
    "real": _real_layout,
    "ball": _ball_layout,
}


def build_layout(p: SimulationParams, rng: np.random.Generator, plate: PlateGeometry) -> Layout:
    """The kinetochores of ``p.layout`` around ``plate`` (positions relative to its centre)."""
    return _LAYOUTS[p.layout](p, rng, plate)


# --------------------------------------------------------------------------- motion


def random_walk(rng: np.random.Generator, sd_um: float, n_frames: int, n: int) -> np.ndarray:
    """(T, n, 3) cumulative displacements in µm, zero in frame 0, step sd ``sd_um`` per axis."""
    steps = sd_um * rng.standard_normal((n_frames, n, 3))
    steps[0] = 0.0
    return np.cumsum(steps, axis=0)


def move_kinetochores(
    p: SimulationParams, rng: np.random.Generator, plate: PlateGeometry, layout: Layout
) -> Trajectories:
    """Plate oscillation along the normal + a random walk per pair + a jitter per kinetochore."""
    n_t, n_k = p.n_frames, len(layout.pos_um)
    phase = 2 * np.pi * rng.random()
    osc = p.oscillation_amplitude_um * np.sin(
        2 * np.pi * np.arange(n_t) / p.oscillation_period_frames + phase
    )
    plate_centre_t = plate.centre_um[None, :] + osc[:, None] * plate.normal[None, :]  # (T, 3)
    walk = random_walk(rng, p.motion_sd_um, n_t, layout.n_pairs)  # (T, P, 3)
    jitter = p.spot_jitter_sd_um * rng.standard_normal((n_t, n_k, 3))
    egfp_um = plate_centre_t[:, None, :] + layout.pos_um[None] + walk[:, layout.pair_index] + jitter
    mcherry_um = egfp_um + (p.mcherry_offset_nm / 1000.0) * layout.outward[None]
    tracks = Trajectories(plate_centre_t, egfp_um, mcherry_um)
    if p.focal_shift_scale != 1.0:
        _focal_shift(tracks, plate.centre_um[0], p.focal_shift_scale)
    return tracks


def _focal_shift(tracks: Trajectories, centre_z_um: float, scale: float) -> None:
    """Scale axial distances from ``centre_z_um`` by ``scale`` in place (apparent positions)."""
    for positions in (tracks.plate_centre_um, tracks.egfp_um, tracks.mcherry_um):
        positions[..., 0] = centre_z_um + scale * (positions[..., 0] - centre_z_um)
