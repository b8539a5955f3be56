"""Random draws shared by the simulator's steps (all from a given generator)."""

from __future__ import annotations

import math

import numpy as np

__all__: list[str] = []


def lognormal(rng: np.random.Generator, cv: float, size: int | tuple[int, ...]) -> np.ndarray:
    """Log-normal samples with mean 1 and coefficient of variation ``cv``, shape ``size``."""
    s2 = math.log1p(cv**2)
    return np.exp(math.sqrt(s2) * rng.standard_normal(size) - s2 / 2)


def log_uniform(
    rng: np.random.Generator, lo: float, hi: float, size: int | tuple[int, ...] | None = None
) -> np.ndarray | float:
    """Samples whose log is uniform in [log lo, log hi] (a float when ``size`` is None)."""
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size=size))
