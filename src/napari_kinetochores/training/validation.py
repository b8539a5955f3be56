"""What a training run validates on, and the summary of its validation scores.

Validation frames are either held-out frames of the user's own labels
(never trained on) or held-out simulated movies with fixed seeds; a
:class:`ValidationPlan` holds them and says in words which they are, so the
training result, the log, the CLI and the Train widget can tell the user.

Examples
--------
>>> import numpy as np
>>> scores = np.array([[0.5, 0.75], [0.75, 0.25]])  # 2 frames × 2 thresholds
>>> summary = summarise_scores(scores, [0.2, 0.5], ["low", "high"], [[30.0], [20.0, 40.0]])
>>> summary["f1"], summary["threshold"], summary["f1_by_level"], summary["median_error_nm"]
(0.625, 0.2, {'low': 0.5, 'high': 0.75}, 30.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.training.config import ValidationConfig
from napari_kinetochores.training.samples import LabelledMovie, frame_points, held_out_frames

HELD_OUT = "held_out"
SIMULATED = "simulated"


@dataclass
class ValidationFrame:
    """One frame to validate on.

    Attributes
    ----------
    label : str
        Group of the frame in the log (an SNR level, or ``"held_out"``).
    image : (T, C, Z, Y, X) array
        The whole movie (a temporal model reads the neighbouring frames).
    t : int
        The frame.
    points_zyx : (N, 3) float array
        The labels of frame ``t`` (voxels).
    voxel_size_um : (z, y, x)
    """

    label: str
    image: np.ndarray
    t: int
    points_zyx: np.ndarray
    voxel_size_um: tuple[float, float, float]


@dataclass
class ValidationPlan:
    """The frames a run validates on and what they are.

    Attributes
    ----------
    kind : {"held_out", "simulated"}
    description : str
        In words, for the user (``"1 held-out frame of your labels (t=3)"``).
    frames : list of ValidationFrame
    held_out : list of (movie index, t)
        Frames of the user's movies kept out of training.
    """

    kind: str
    description: str
    frames: list[ValidationFrame]
    held_out: list[tuple[int, int]] = field(default_factory=list)


def simulated_validation_movies(validation: ValidationConfig, n_frames: int) -> list[tuple]:
    """Held-out simulated movies (fixed seeds, never used for training): [(SNR level, movie)]."""
    from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams, simulate_movie

    movies = []
    for index, level in enumerate(validation.snr_levels):
        for repeat in range(validation.repeats):
            params = SimulationParams(n_frames=n_frames, snr=SNR_LEVELS[level])
            for key, value in validation.simulation.items():
                setattr(params, key, tuple(value) if isinstance(value, list) else value)
            seed = validation.seed + 100 * index + repeat
            movies.append((level, simulate_movie(params, seed=seed)))
    return movies


def plan_validation(
    validation: ValidationConfig,
    movies: Sequence[LabelledMovie] | None,
    channel: int,
    n_frames: int = 1,
) -> ValidationPlan:
    """Validate on held-out frames of the user's labels when there are any, else on simulated movies.

    Parameters
    ----------
    validation : ValidationConfig
        ``source`` and ``held_out_every`` choose (see there).
    movies : list of LabelledMovie or None
        The user's labelled movies; None when training on simulated data.
    channel : int
        The channel whose labels are matched.
    n_frames : int
        Frames of each simulated validation movie (the temporal window); the
        middle one is validated.
    """
    wanted = validation.source
    held = [] if movies is None or wanted == "simulate" else _held_out(validation, movies, channel)
    if held:
        frames = [
            ValidationFrame(
                HELD_OUT,
                movies[m].image,
                t,
                frame_points(movies[m].points, t, channel),
                movies[m].voxel_size_um,
            )
            for m, t in held
        ]
        return ValidationPlan(HELD_OUT, _held_out_words(movies, held), frames, held)
    if movies is None:
        why = "no labels of yours to hold out"
    elif wanted == "simulate":
        why = "validation.source: simulate"
    else:
        why = "only one labelled frame of yours, none to spare"
    return _simulated_plan(validation, channel, n_frames, why)


def _held_out(validation: ValidationConfig, movies, channel: int) -> list[tuple[int, int]]:
    held = held_out_frames(movies, int(validation.held_out_every), channel)
    if not held and validation.source == HELD_OUT:
        raise InputError(
            "validation.source is 'held_out' but the labels cover fewer than two frames"
        )
    return held


def _held_out_words(movies: Sequence[LabelledMovie], held: list[tuple[int, int]]) -> str:
    by_movie: dict[int, list[int]] = {}
    for m, t in held:
        by_movie.setdefault(m, []).append(t)
    where = "; ".join(
        ("" if len(movies) == 1 else f"{movies[m].source}: ")
        + "t="
        + ", ".join(str(t) for t in frames)
        for m, frames in by_movie.items()
    )
    n = len(held)
    return f"{n} held-out frame{'s' if n != 1 else ''} of your labels ({where})"


def _simulated_plan(
    validation: ValidationConfig, channel: int, n_frames: int, why: str
) -> ValidationPlan:
    frames = []
    for level, movie in simulated_validation_movies(validation, n_frames):
        t = movie.image.shape[0] // 2
        gt = movie.points
        gt = gt[(np.round(gt["t"]) == t) & (gt["channel"] == channel)]
        frames.append(
            ValidationFrame(
                level,
                movie.image,
                t,
                gt[["z", "y", "x"]].to_numpy(),
                tuple(movie.params.voxel_size_um),
            )
        )
    n = len(frames)
    levels = ", ".join(dict.fromkeys(validation.snr_levels))
    words = f"{n} simulated movie{'s' if n != 1 else ''} (SNR {levels}; {why})"
    return ValidationPlan(SIMULATED, words, frames)


def summarise_scores(
    scores: np.ndarray,
    thresholds: Sequence[float],
    labels: Sequence[str],
    errors_nm: Sequence[Sequence[float]],
    error_threshold: int | None = None,
) -> dict:
    """The validation metrics of a run from per-frame F1 scores.

    Parameters
    ----------
    scores : (n_frames, n_thresholds) array
        F1 of every validation frame at every threshold.
    thresholds : sequence of float
    labels : sequence of str
        Group of every frame (``f1_by_level``).
    errors_nm : per threshold, a sequence of matched distances (nm)
    error_threshold : int or None
        Index of the threshold whose errors give ``median_error_nm``; None:
        the best one.

    Returns
    -------
    dict with ``f1`` (mean F1 at the best threshold), ``threshold``,
    ``f1_by_threshold``, ``f1_by_level`` and ``median_error_nm``.
    """
    mean = scores.mean(axis=0)
    best = int(np.argmax(mean))
    per_level: dict[str, list[float]] = {}
    for m, label in enumerate(labels):
        per_level.setdefault(label, []).append(scores[m, best])
    errors = errors_nm[best if error_threshold is None else error_threshold]
    return {
        "f1": float(mean[best]),
        "threshold": float(thresholds[best]),
        "f1_by_threshold": {f"{t:g}": float(v) for t, v in zip(thresholds, mean, strict=True)},
        "f1_by_level": {k: float(np.mean(v)) for k, v in per_level.items()},
        "median_error_nm": float(np.median(errors)) if len(errors) else float("nan"),
    }
