"""The camera: photo-electron expectation -> noisy digital image.

Poisson shot noise (``noise_model="emccd"`` adds the EM-register excess noise,
a factor 2 on the shot-noise variance), gaussian read noise, gain, offset,
rounding and clipping to uint16.
"""

from __future__ import annotations

import numpy as np

from napari_kinetochores.simulate.params import SimulationParams

__all__: list[str] = []

_UINT16_MAX = 65535


def to_adu(expected_e: np.ndarray, p: SimulationParams, rng: np.random.Generator) -> np.ndarray:
    """Camera model: photo-electron expectation (float, any shape) -> uint16 ADU, same shape."""
    counts = rng.poisson(np.maximum(expected_e, 0.0))
    if p.noise_model == "emccd":
        signal = rng.gamma(counts, 1.0).astype(np.float32)  # EM register: excess noise factor 2
    else:
        signal = counts.astype(np.float32)
    signal += np.float32(p.read_noise_e) * rng.standard_normal(signal.shape, dtype=np.float32)
    adu = np.float32(p.camera_offset_adu) + np.float32(p.gain_adu_per_e) * signal
    return np.clip(np.rint(adu), 0, _UINT16_MAX).astype(np.uint16)
