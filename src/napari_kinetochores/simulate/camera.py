"""The camera: photo-electron expectation -> digital image, and optional preprocessing.

Poisson shot noise (``noise_model="emccd"`` adds the EM-register excess noise,
a factor 2 on the shot-noise variance), saturation at the full well, gaussian
read noise, gain, offset, rounding and clipping to the ADC range. With an
sCMOS fixed pattern (:meth:`SimulationParams.has_fixed_pattern`) offset,
gain and read noise are per-pixel maps, drawn once per movie for each sensor
pixel (y, x) and shared by every plane and frame, with hot pixels (extra dark
signal), dead pixels (offset only) and hot columns (extra offset along y).
Afterwards :func:`preprocess` can subtract the background and convert to
8-bit or float, as users' preprocessed files are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_kinetochores.simulate.distributions import log_uniform, lognormal
from napari_kinetochores.simulate.params import SimulationParams

__all__ = ["Camera", "draw_camera", "preprocess"]


@dataclass
class Camera:
    """Read-out of one movie's sensor.

    ``offset_adu``, ``gain_adu_per_e`` and ``read_noise_e`` are float32
    scalars, or (Y, X) float32 maps broadcast over z; ``dark_e`` is a (Y, X)
    float32 map of extra e- per voxel (hot pixels) or ``None``.
    """

    offset_adu: np.floating | np.ndarray
    gain_adu_per_e: np.floating | np.ndarray
    read_noise_e: np.floating | np.ndarray
    dark_e: np.ndarray | None = None


def _hot_and_dead(
    p: SimulationParams, rng: np.random.Generator, shape_yx: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (Y, X) masks of hot and of dead pixels (disjoint)."""
    u = rng.random(shape_yx)
    hot = u < p.hot_pixel_fraction
    dead = ~hot & (u < p.hot_pixel_fraction + p.dead_pixel_fraction)
    return hot, dead


def _fixed_pattern(p: SimulationParams, rng: np.random.Generator) -> Camera:
    """Per-pixel maps: offset, gain, read noise, hot and dead pixels, hot columns."""
    shape_yx = tuple(p.shape_zyx[1:])
    offset = p.camera_offset_adu + p.pixel_offset_sd_adu * rng.standard_normal(shape_yx)
    gain = p.gain_adu_per_e * lognormal(rng, p.pixel_gain_cv, shape_yx)
    read = p.read_noise_e * np.exp(p.pixel_read_noise_log_sd * rng.standard_normal(shape_yx))
    hot, dead = _hot_and_dead(p, rng, shape_yx)
    dark = np.where(hot, log_uniform(rng, *p.hot_pixel_range_e, size=shape_yx), 0.0)
    columns = rng.choice(shape_yx[1], size=p.n_hot_columns, replace=False)
    offset[:, columns] += rng.uniform(*p.hot_column_range_adu, size=p.n_hot_columns)
    gain[dead] = 0.0
    read[dead] = 0.0
    as32 = [a.astype(np.float32) for a in (offset, gain, read, dark)]
    return Camera(*as32[:3], dark_e=as32[3] if hot.any() else None)


def draw_camera(p: SimulationParams, rng: np.random.Generator) -> Camera:
    """The movie's camera: uniform scalars, or per-pixel maps when a fixed pattern is on.

    Draws from ``rng`` only when :meth:`SimulationParams.has_fixed_pattern`.
    """
    if not p.has_fixed_pattern():
        return Camera(
            np.float32(p.camera_offset_adu),
            np.float32(p.gain_adu_per_e),
            np.float32(p.read_noise_e),
        )
    return _fixed_pattern(p, rng)


def to_adu(
    expected_e: np.ndarray, camera: Camera, p: SimulationParams, rng: np.random.Generator
) -> np.ndarray:
    """Camera model: photo-electron expectation (Z, Y, X) float32 -> uint16 ADU, same shape."""
    if camera.dark_e is not None:
        expected_e = expected_e + camera.dark_e
    counts = rng.poisson(np.maximum(expected_e, 0.0))
    if p.noise_model == "emccd":
        signal = rng.gamma(counts, 1.0).astype(np.float32)  # EM register: excess noise factor 2
    else:
        signal = counts.astype(np.float32)
    if p.full_well_e is not None:
        np.minimum(signal, np.float32(p.full_well_e), out=signal)
    signal += camera.read_noise_e * rng.standard_normal(signal.shape, dtype=np.float32)
    adu = camera.offset_adu + camera.gain_adu_per_e * signal
    return np.clip(np.rint(adu), 0, p.adc_max_adu).astype(np.uint16)


def preprocess(image: np.ndarray, p: SimulationParams) -> np.ndarray:
    """Background subtraction and output type of ``p`` applied to a (T, C, Z, Y, X) movie.

    Returns ``image`` itself when both are off (``background_percentile``
    None, ``output_dtype`` "uint16"); else a new array of ``p.output_dtype``.

    Examples
    --------
    >>> p = SimulationParams(background_percentile=50.0, output_dtype="uint8")
    >>> out = preprocess(np.arange(16, dtype=np.uint16).reshape(1, 1, 1, 4, 4), p)
    >>> out.dtype.name, int(out.min()), int(out.max()), int((out == 0).sum())
    ('uint8', 0, 255, 8)
    """
    if p.background_percentile is None and p.output_dtype == "uint16":
        return image
    data = image.astype(np.float32)
    if p.background_percentile is not None:
        level = np.percentile(data, p.background_percentile, axis=(2, 3, 4), keepdims=True)
        data = np.maximum(data - level.astype(np.float32), 0.0)
    if p.output_dtype == "uint16":
        return np.rint(data).astype(np.uint16)
    peak = data.max(axis=(0, 2, 3, 4), keepdims=True)
    scale = np.where(peak > 0, 1.0 / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)
    if p.output_dtype == "uint8":
        return np.rint(data * (255.0 * scale)).astype(np.uint8)
    return data * scale
