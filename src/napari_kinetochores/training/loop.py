"""The one training loop of the learned backends (UNet and StarDist).

:class:`Trainer` runs the skeleton both share, one short method per phase,
in the manner of pytorch-3dunet's ``UNetTrainer``: train an epoch, validate,
keep the best-F1 weights, log a row (CSV, a printed line, a callback), stop on
time or cancel, refresh the simulated sample pool. What differs between
backends (the network, its optimiser step, its validation metric and its
model files) is a small object following :class:`TrainingBackend`.

The UNet trains epoch by epoch through :meth:`Trainer.run`; StarDist's Keras
``fit`` owns its epochs and calls :meth:`Trainer.end_epoch` from a callback.

Examples
--------
A backend that "trains" by counting (no network), stopped by its cancel flag:

>>> class Counting:
...     threshold_name = "threshold"
...     def train_epoch(self, epoch, trainer):
...         return {"loss": 1.0 / (epoch + 1)}
...     def validate(self):
...         return {"f1": 0.5, "threshold": 0.3, "median_error_nm": 40.0, "f1_by_level": {}}
...     def save(self, trainer, epoch, metrics, improved):
...         pass
...     def refresh_pool(self):
...         pass
>>> import tempfile
>>> calls = []
>>> trainer = Trainer(Counting(), epochs=5, output_dir=tempfile.mkdtemp(), progress=False,
...                   cancelled=lambda: len(calls) >= 2, on_epoch=calls.append)
>>> trainer.run()
>>> trainer.epochs_run, trainer.best_f1, [row["loss"] for row in trainer.history]
(2, 0.5, [1.0, 0.5])
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class TrainingBackend(Protocol):
    """What a learned backend hands the :class:`Trainer`."""

    threshold_name: str  # what the threshold is, in the printed line ("threshold", "prob")

    def train_epoch(self, epoch: int, trainer: Trainer) -> dict:
        """Train one epoch (polling ``trainer.is_cancelled()``); figures for the log, ``loss`` first.

        Needed by :meth:`Trainer.run` only: a backend whose library owns the
        epoch loop (StarDist's Keras ``fit``) calls :meth:`Trainer.end_epoch`.
        """

    def validate(self) -> dict:
        """Metrics on the validation frames (``f1``, ``threshold``, ``median_error_nm``, ``f1_by_level``)."""

    def save(self, trainer: Trainer, epoch: int, metrics: dict, improved: bool) -> None:
        """Write the model files after an epoch (the best ones when ``improved``)."""

    def refresh_pool(self) -> None:
        """Replace some simulated training samples by fresh ones."""


@dataclass
class TrainingState:
    """Where a run starts: 0 and nothing yet, or a resumed run's epoch, best F1 and history."""

    start_epoch: int = 0
    best_f1: float = -1.0
    best_threshold: float = 0.5
    history: list[dict] = field(default_factory=list)


class Trainer:
    """Epochs, validation, best checkpoint, CSV log, time limit and cancel for one backend.

    Parameters
    ----------
    backend : TrainingBackend
    epochs : int
        Last epoch (counted from the start of the run, resumed runs included).
    output_dir : path
        Holds ``log.csv`` (one row per epoch, appended).
    time_limit_min : float or None
        Stop after the first epoch that ends past this many minutes.
    progress : bool
        Print a line per epoch.
    cancelled : callable or None
        Polled every step; once it returns True the epoch is validated, saved
        and the run stops.
    on_epoch : callable or None
        Called with every epoch's log row.
    state : TrainingState or None
        A resumed run's state.
    validated_on : str
        What validation runs on (``"held_out"``, ``"simulated"``); a column of the log.
    started : float or None
        ``time.monotonic()`` the run's clock (``seconds``, time limit) starts
        from; None: now.
    """

    def __init__(
        self,
        backend: TrainingBackend,
        epochs: int,
        output_dir: str | Path,
        time_limit_min: float | None = None,
        progress: bool = True,
        cancelled: Callable[[], bool] | None = None,
        on_epoch: Callable[[dict], None] | None = None,
        state: TrainingState | None = None,
        validated_on: str = "simulated",
        started: float | None = None,
    ) -> None:
        state = state or TrainingState()
        self.backend = backend
        self.epochs = int(epochs)
        self.log_path = Path(output_dir) / "log.csv"
        self.time_limit_min = time_limit_min
        self.progress = progress
        self.cancelled = cancelled
        self.on_epoch = on_epoch
        self.start_epoch = state.start_epoch
        self.best_f1, self.best_threshold = state.best_f1, state.best_threshold
        self.history = list(state.history)
        self.validated_on = validated_on
        self.epochs_run = state.start_epoch
        self.stop_requested = False
        #: A later epoch with the same validation F1 replaces the best one (fine-tuning's rule).
        self.keep_later_ties = False
        self.started = time.monotonic() if started is None else started

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def run(self) -> None:
        """The epoch loop, for a backend that trains one epoch per :meth:`train_epoch` call."""
        for epoch in range(self.start_epoch, self.epochs):
            figures = self.backend.train_epoch(epoch, self)
            if self.end_epoch(epoch, figures):
                break

    def is_cancelled(self) -> bool:
        """True once ``cancelled()`` has returned True (polled every step)."""
        if not self.stop_requested and self.cancelled is not None and self.cancelled():
            self.stop_requested = True
        return self.stop_requested

    def end_epoch(self, epoch: int, figures: dict) -> bool:
        """Validate, keep the best, save, log and report an epoch; True when the run stops early."""
        metrics = self.backend.validate()
        row = self.log_row(epoch, figures, metrics)
        improved = self.keep_best(metrics)
        self.backend.save(self, epoch, metrics, improved)
        self.report(row)
        if self.should_stop():
            return True
        if epoch + 1 < self.epochs:  # fresh samples only for an epoch to come
            self.backend.refresh_pool()
        return False

    def log_row(self, epoch: int, figures: dict, metrics: dict) -> dict:
        """The epoch's row, added to the history and ``log.csv``."""
        extra = {k: v for k, v in figures.items() if k != "loss"}
        row = {
            "epoch": epoch + 1,
            "loss": figures.get("loss", float("nan")),
            "val_f1": metrics["f1"],
            "threshold": metrics["threshold"],
            "median_error_nm": metrics["median_error_nm"],
            **extra,
            "seconds": round(self.elapsed, 1),
            **{f"f1_{k}": v for k, v in metrics["f1_by_level"].items()},
            "validated_on": self.validated_on,
        }
        self.history.append(row)
        self.epochs_run = epoch + 1
        append_log(self.log_path, row)
        return row

    def keep_best(self, metrics: dict) -> bool:
        """Remember the best validation F1 and its threshold; True when this epoch improved it.

        With :attr:`keep_later_ties`, an equal F1 counts as an improvement too.
        """
        tie = metrics["f1"] == self.best_f1
        if metrics["f1"] < self.best_f1 or (tie and not self.keep_later_ties):
            return False
        self.best_f1, self.best_threshold = metrics["f1"], metrics["threshold"]
        return True

    def report(self, row: dict) -> None:
        """A printed line (with ``progress``) and the ``on_epoch`` callback."""
        if self.progress:
            print(
                f"epoch {row['epoch']}: loss {row['loss']:.4f}  val F1 {row['val_f1']:.4f} at "
                f"{self.backend.threshold_name} {row['threshold']:g}  median error "
                f"{row['median_error_nm']:.0f} nm  ({row['seconds']:.0f} s)",
                flush=True,
            )
        if self.on_epoch is not None:
            self.on_epoch(row)

    def should_stop(self) -> bool:
        """Cancelled, or past the time limit."""
        over_time = bool(self.time_limit_min) and self.elapsed > 60 * self.time_limit_min
        return self.is_cancelled() or over_time


def append_log(path: Path, row: dict) -> None:
    """Append a row to a CSV log, writing the header first for a new file.

    A log written before a column existed keeps its header; the new column is
    left out of its rows.
    """
    header = None
    if path.exists():
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), None)
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header or list(row), extrasaction="ignore")
        if header is None:
            writer.writeheader()
        writer.writerow(row)


def plain_types(value: Any) -> Any:
    """Dataclasses, dicts, tuples and numpy scalars as plain JSON-safe types; NaN and inf as None.

    >>> plain_types({"a": (1, np.float64(2.5)), "b": float("nan")})
    {'a': [1, 2.5], 'b': None}
    """
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): plain_types(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_types(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
