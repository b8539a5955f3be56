"""Labelled movies for training: simulated, read from files or handed in memory, and the
frames of the user's labels held out for validation.

Both learned backends turn these movies into their own training items (UNet
input/target stacks, StarDist normalised frames and instance labels); the
movies, the pool refresh and the held-out split are shared.

Examples
--------
>>> import numpy as np, pandas as pd
>>> points = pd.DataFrame({"t": [0, 1, 2, 3], "z": 1.0, "y": 2.0, "x": 3.0})
>>> movie = LabelledMovie(np.zeros((4, 1, 4, 8, 8)), points, (0.3, 0.13, 0.13), "sample 0")
>>> labelled_frames(movie, channel=0)
[0, 1, 2, 3]
>>> held_out_frames([movie], every=3, channel=0)
[(0, 2)]
>>> held_out_frames([movie], every=5, channel=0)  # at least one
[(0, 3)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from napari_kinetochores.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from napari_kinetochores.training.config import DataConfig

Item = TypeVar("Item")


@dataclass
class LabelledMovie:
    """A movie and its point labels.

    Attributes
    ----------
    image : (T, C, Z, Y, X) array
    points : DataFrame
        ``t, z, y, x`` in voxels (optionally ``channel``).
    voxel_size_um : (z, y, x)
    source : str
        What it is, for messages (a file, ``"sample 0"``, ``"simulation 7"``).
    """

    image: np.ndarray
    points: pd.DataFrame
    voxel_size_um: tuple[float, float, float]
    source: str


RANDOMISATIONS = ("standard", "wide")


def simulated_movie(
    rng: np.random.Generator,
    simulation: dict,
    seed: int,
    channel: int = 0,
    randomisation: str = "standard",
) -> LabelledMovie:
    """A domain-randomised simulated movie.

    ``randomisation`` "standard" draws with
    :func:`~napari_kinetochores.simulate.sample_params`, "wide" with
    :func:`~napari_kinetochores.simulate.random_params` (cameras, optics,
    cells and preprocessing of real files). A random layout can miss a small
    volume entirely: up to 10 draws are made until ``channel`` has a spot,
    rather than train on nothing.
    """
    from napari_kinetochores.simulate import random_params, sample_params, simulate_movie

    if randomisation not in RANDOMISATIONS:
        raise InputError(
            f"data.randomisation must be one of {RANDOMISATIONS}, got {randomisation!r}"
        )
    draw = sample_params if randomisation == "standard" else random_params
    for _ in range(10):
        params = draw(rng, **simulation)
        movie = simulate_movie(params, seed=seed)
        if (movie.points["channel"] == channel).any():
            break
    return LabelledMovie(
        movie.image, movie.points, tuple(params.voxel_size_um), f"simulation {seed}"
    )


def user_movies(
    data: DataConfig,
    samples: Sequence[tuple[Any, pd.DataFrame, Sequence[float]]] | None = None,
) -> list[LabelledMovie] | None:
    """The user's labelled movies: ``samples`` if given, else ``data.files``; None for simulated data.

    ``samples`` is a list of ``(image (T, C, Z, Y, X), points table, voxel
    size (z, y, x) µm)``; giving them sets ``data.source`` to ``"memory"``.
    """
    from napari_kinetochores.io.volumes import validate_voxel_size

    if samples is not None:
        if not samples:
            raise InputError("no training samples given")
        data.source = "memory"
        return [
            LabelledMovie(np.asarray(image), points, validate_voxel_size(voxel), f"sample {i}")
            for i, (image, points, voxel) in enumerate(samples)
        ]
    if data.source == "files":
        return [_file_movie(entry) for entry in data.files]
    return None


def _file_movie(entry: dict) -> LabelledMovie:
    from napari_kinetochores.io import read_points, read_volume

    if "movie" not in entry or "points" not in entry:
        raise InputError(f"each data.files entry needs 'movie' and 'points', got {entry}")
    volume = read_volume(entry["movie"], voxel_size_um=entry.get("voxel_size_um"))
    points = read_points(entry["points"], voxel_size_um=volume.voxel_size_um)
    return LabelledMovie(
        np.asarray(volume.data), points, tuple(volume.voxel_size_um), str(entry["points"])
    )


def frame_points(points: pd.DataFrame, t: int, channel: int) -> np.ndarray:
    """(N, 3) ``z, y, x`` of the labels of frame ``t`` (of ``channel`` when the table has one)."""
    rows = points[np.round(points["t"].to_numpy()).astype(int) == t]
    if "channel" in rows.columns:
        rows = rows[rows["channel"] == channel]
    return rows[["z", "y", "x"]].to_numpy(float)


def labelled_frames(movie: LabelledMovie, channel: int) -> list[int]:
    """The frames of ``movie`` with at least one label (of ``channel``), in time order."""
    rows = movie.points
    if "channel" in rows.columns:
        rows = rows[rows["channel"] == channel]
    frames = np.unique(np.round(rows["t"].to_numpy()).astype(int))
    return [int(t) for t in frames if 0 <= t < movie.image.shape[0]]


def held_out_frames(
    movies: Sequence[LabelledMovie], every: int, channel: int
) -> list[tuple[int, int]]:
    """Every ``every``-th labelled frame, as (movie index, t); at least one; none if fewer than two.

    Frames are counted in time order over all movies; with fewer than
    ``every`` labelled frames the last one is held out. A single labelled
    frame is not held out (nothing would be left to train on).
    """
    labelled = [(m, t) for m, movie in enumerate(movies) for t in labelled_frames(movie, channel)]
    if len(labelled) < 2:
        return []
    return labelled[every - 1 :: every] or [labelled[-1]]


class SamplePool(Generic[Item]):
    """Training items; simulated ones are replaced after every epoch (domain randomisation).

    Parameters
    ----------
    items : list
        The backend's training items (one per movie or one per frame).
    simulate : callable or None
        ``simulate(seed) -> list of items`` for a fresh simulated movie; None
        for user data (never refreshed).
    refresh_per_epoch : int
        Items replaced by :meth:`refresh`.
    next_seed : int
        Seed of the next fresh simulated movie.
    rng : numpy Generator
        Picks the items replaced.
    """

    def __init__(
        self,
        items: list[Item],
        simulate: Callable[[int], list[Item]] | None,
        refresh_per_epoch: int,
        next_seed: int,
        rng: np.random.Generator,
    ) -> None:
        if not items:
            raise InputError("no training frames left (all labelled frames are held out)")
        self.items = items
        self.simulate = simulate
        self.refresh_per_epoch = int(refresh_per_epoch) if simulate is not None else 0
        self.next_seed = int(next_seed)
        self.rng = rng

    def __len__(self) -> int:
        return len(self.items)

    def refresh(self) -> list[int]:
        """Replace ``refresh_per_epoch`` random items by fresh simulated ones; their indices."""
        replaced = []
        for _ in range(self.refresh_per_epoch):
            fresh = self.simulate(self.next_seed)[0]  # type: ignore[misc]
            self.next_seed += 1
            k = int(self.rng.integers(len(self.items)))
            self.items[k] = fresh
            replaced.append(k)
        return replaced


def flatten(groups: Iterable[list[Item]]) -> list[Item]:
    """One list of the items of several movies."""
    return [item for group in groups for item in group]
