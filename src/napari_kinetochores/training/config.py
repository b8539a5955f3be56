"""Config sections shared by the UNet and StarDist training runs, and reading YAML configs.

A training config is a dataclass per section, built from the nested dicts of
a YAML file; unknown keys are an :class:`~napari_kinetochores.errors.InputError`
that names them (and, through :func:`read_yaml_config`, the file).

Examples
--------
>>> data = build_section(DataConfig, {"pool_size": 2}, "data")
>>> data.source, data.pool_size
('simulate', 2)
>>> build_section(DataConfig, {"pool": 2}, "data")
Traceback (most recent call last):
...
napari_kinetochores.errors.InputError: unknown option(s) ['pool'] in data
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from napari_kinetochores.errors import InputError

DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
VALIDATION_SOURCES = ("auto", "simulate", "held_out")

Section = TypeVar("Section")


@dataclass
class DataConfig:
    """Where training samples come from.

    ``source: simulate`` draws movies with
    :func:`napari_kinetochores.simulate.sample_params` (``simulation`` holds
    fixed overrides, e.g. ``shape_zyx``); ``source: files`` reads ``files``,
    a list of ``{movie: PATH, points: PATH, voxel_size_um: [z, y, x]}``
    (``voxel_size_um`` optional). ``pool_size`` simulated movies are kept in
    memory and ``refresh_per_epoch`` of them are replaced after every epoch;
    ``spot_bias`` is the share of UNet patches centred near a labelled spot.
    ``randomisation: wide`` draws simulated movies with
    :func:`napari_kinetochores.simulate.random_params` instead (sCMOS fixed
    pattern and hot pixels, depth aberration, prometaphase balls,
    preprocessed output, strong bleaching; ``simulation`` still overrides,
    e.g. the voxel size).
    """

    source: str = "simulate"
    files: list[dict] = field(default_factory=list)
    simulation: dict = field(default_factory=dict)
    randomisation: str = "standard"
    pool_size: int = 8
    refresh_per_epoch: int = 2
    spot_bias: float = 0.8


@dataclass
class ValidationConfig:
    """What every epoch is validated on, and how.

    Attributes
    ----------
    source : {"auto", "simulate", "held_out"}
        ``"held_out"``: frames of the user's own labels (``data.files`` or
        in-memory samples such as napari layers), every ``held_out_every``-th
        labelled frame (at least one), never trained on. ``"simulate"``:
        held-out simulated movies, one per entry of ``snr_levels`` ×
        ``repeats``. ``"auto"`` (default): held-out frames when training on
        user labels with at least two labelled frames, else simulated movies.
    held_out_every : int
        Every k-th labelled frame (in time order, over all movies) is held out.
    snr_levels, repeats, seed, simulation
        The simulated validation movies (fixed seeds, never trained on).
    thresholds : list of float
        Detection thresholds tried; the best-F1 one is kept with the model.
    cutoff_um : float
        Matching cutoff (µm) of the validation F1.
    """

    source: str = "auto"
    held_out_every: int = 5
    snr_levels: list[str] = field(default_factory=lambda: ["low", "moderate", "high"])
    repeats: int = 1
    seed: int = 100_000
    simulation: dict = field(default_factory=dict)
    thresholds: list[float] = field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    cutoff_um: float = 0.3


def build_section(cls: type[Section], values: dict, where: str) -> Section:
    """``cls(**values)``, refusing anything but a mapping of ``cls``'s fields."""
    if not isinstance(values, dict):
        raise InputError(f"{where} must be a mapping, got {type(values).__name__}")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - names
    if unknown:
        raise InputError(f"unknown option(s) {sorted(unknown)} in {where}")
    return cls(**values)


def check_data_config(data: DataConfig) -> None:
    """The data source is one we know and has what it needs."""
    if data.source not in ("simulate", "files"):
        raise InputError(f"data.source must be 'simulate' or 'files', got {data.source!r}")
    if data.source == "files" and not data.files:
        raise InputError("data.source is 'files' but data.files is empty")


def check_validation_config(validation: ValidationConfig) -> None:
    """The validation source is one we know; at least every second frame stays for training."""
    if validation.source not in VALIDATION_SOURCES:
        raise InputError(
            f"validation.source must be one of {VALIDATION_SOURCES}, got {validation.source!r}"
        )
    if int(validation.held_out_every) < 2:
        raise InputError(f"validation.held_out_every must be >= 2, got {validation.held_out_every}")


def read_yaml_config(path: str | Path, from_dict: Callable[[dict], Any]) -> Any:
    """Read a YAML training config and build it with ``from_dict``; errors name the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", path)
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InputError(f"not valid YAML: {error}", path) from None
    try:
        return from_dict(values or {})
    except (InputError, TypeError) as error:
        raise InputError(str(error), path) from None
