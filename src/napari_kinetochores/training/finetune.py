"""Fine-tuning a UNet on a user's corrected frames: ``kinetochores finetune`` and :func:`finetune`.

One implementation for the command line and the Train widget. It starts from
a bundled model (``default``) or any checkpoint, trains on the frames the
user corrected, validates on the user's own labels and keeps the best
checkpoint by validation F1, written atomically to one file whenever it
improves (an interrupted run keeps the best model so far).

Rules
-----
- **Frames**: the listed frames (default: the frames that have points).
  Rows with ``status`` ``deleted`` are not spots. A listed frame without
  points is an empty frame (a negative); frames not listed are never used.
- **Validation on the user's data**: with two or more listed frames that have
  points, the last of them is held out; with one, a spatial block of it is
  held out (the side of the frame beyond a cut along y or x that leaves about
  a quarter of the spots out; the training crops end at the cut). The result
  and the checkpoint say which (:attr:`FinetuneResult.validation`).
- **Threshold**: re-chosen on that validation every epoch (the grid of
  :data:`RECIPE`); the starting model is validated first, so the file written
  is never worse on the validation than the model it started from.
- **Best checkpoint**: the highest validation F1; a later epoch with the same
  F1 replaces it. A user's validation is small (a block of about 20 spots
  moves F1 in steps of about 0.025), so ties are common, and the later model
  has trained longer without losing a validation spot (the first of equal
  epochs could end a run early: docs/benchmarks.md, fine-tuning).
- **Recipe** (:data:`RECIPE`): the GaussianDice loss with the annealed kernel,
  learning rate, patch shape, batch size and spot bias of
  ``configs/default_gaussian_dice.yaml``, with the training pipeline's
  augmentation (:class:`~napari_kinetochores.nn.data.Augmenter`). The
  bundled ``default`` itself was last trained with BCE + Dice
  (``configs/default_stage3.yaml``); GaussianDice is chosen because it
  rewards a peak near each spot rather than a voxel-exact heatmap, which is
  what a user's clicked positions are; the threshold is re-chosen, so the
  change of output scale costs nothing. A distance-map model is fine-tuned
  with its own distance loss. Epochs are short (``steps_per_epoch`` 10), so
  the kernel anneals after 60 steps, and the learning rate is constant (a
  cosine over :data:`MAX_EPOCHS`): the run ends on time, not on an epoch
  count.

Examples
--------
>>> from napari_kinetochores.simulate import SimulationParams, simulate_movie
>>> movie = simulate_movie(SimulationParams(n_frames=2, shape_zyx=(8, 48, 48), n_pairs=6), seed=1)
>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "mine.pt"
>>> tiny = {"steps_per_epoch": 1, "batch_size": 1, "patch_shape": [8, 32, 32]}
>>> result = finetune(movie.image, movie.points, (0.3, 0.13, 0.13), out, frames=[0],
...                   minutes=0.01, progress=False, settings=tiny)
>>> result.validation, result.best_checkpoint == out, out.is_file()
('blocks', True, True)
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.training.unet import UNetTraining

if TYPE_CHECKING:
    import pandas as pd

    from napari_kinetochores.training.unet import Sample, TrainConfig
    from napari_kinetochores.training.validation import ValidationPlan

MAX_EPOCHS = 10_000
"""Upper bound on epochs; a fine-tuning run ends on ``minutes`` (or a stop)."""

RECIPE: dict[str, Any] = {
    # configs/default_gaussian_dice.yaml, less its simulated data and epoch counts
    "loss": "gaussian_dice",
    "kernel_schedule": [[0, 5, 1.0], [6, 3, 0.7]],
    "patch_shape": [16, 64, 64],
    "batch_size": 4,
    "lr": 0.0005,
    "weight_decay": 0.0001,
    "scheduler": "cosine",
    "epochs": MAX_EPOCHS,
    "steps_per_epoch": 10,
    "data": {"spot_bias": 0.6},
    "validation": {
        "thresholds": [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8],
        "cutoff_um": 0.3,
    },
}
"""The fine-tuning recipe; ``settings`` of :func:`finetune` override its keys."""

BLOCK_SHARE = (0.65, 0.85)
"""With one frame, the cut between training and validation blocks lies in the widest gap
between spots ranked in this share range along the cut axis (about a quarter held out)."""


@dataclass
class FinetuneResult:
    """Outcome of :func:`finetune`.

    Attributes
    ----------
    best_checkpoint : Path
        The best model (by validation F1); ``detect --model`` reads it.
    best_f1, threshold : float
        Its validation F1 (at 0.3 µm) and the threshold re-chosen on the validation.
    initial_f1, initial_threshold : float
        The starting model on the same validation (its threshold re-chosen too).
    validation : {"frame", "blocks"}
        A held-out frame, or held-out spatial blocks of the one frame.
    validated_on : str
        The same in words (which frame, which block, how many spots).
    train_frames : list of int
    log_path : Path
        One CSV row per epoch.
    epochs_run : int
    seconds : float
        Wall-clock time of the run.
    history : list of dict
        The log rows (``val_f1``, ``threshold``, ``seconds``, …).
    """

    best_checkpoint: Path
    best_f1: float
    threshold: float
    initial_f1: float
    initial_threshold: float
    validation: str
    validated_on: str
    train_frames: list[int]
    log_path: Path
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def finetune(
    movie: Any,
    points: pd.DataFrame,
    voxel_size_um: Sequence[float],
    output: str | Path,
    *,
    frames: Sequence[int] | None = None,
    minutes: float = 10.0,
    init: str = "default",
    channel: int = 0,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    settings: dict | None = None,
    source: str | Path | None = None,
) -> FinetuneResult:
    """Fine-tune a UNet on the corrected frames of one movie; write the best checkpoint to ``output``.

    Parameters
    ----------
    movie : (T, C, Z, Y, X) array (numpy or dask)
    points : DataFrame
        ``t, z, y, x`` in voxels; optional ``channel`` (rows of other
        channels are ignored), ``status`` (``deleted`` rows are ignored) and
        ``z_um, y_um, x_um`` (checked against ``voxel_size_um``).
    voxel_size_um : (z, y, x)
        Of the movie; recorded in the checkpoint (other voxel sizes are
        resampled to it at detection).
    output : path
        The checkpoint written (``.pt``); its log goes beside it (``.log.csv``).
    frames : list of int or None
        Frames to train and validate on; None: those with points.
    minutes : float
        Wall-clock budget; the epoch under way stops at it and is validated.
    init : str
        Bundled model name or checkpoint path to start from.
    channel : int
        The kinetochore channel of ``movie`` (and of ``points``).
    progress : bool
        Print a line per epoch and a step bar (tqdm).
    should_stop : callable or None
        Polled every step; True ends the run like the time limit.
    on_epoch : callable or None
        Called with every epoch's log row, first with the starting model's
        (``epoch`` 0, ``loss`` NaN; also the first row of the log and history).
    settings : dict or None
        Overrides of :data:`RECIPE` keys (tests use tiny patches), and
        ``num_threads``, ``seed``, ``device``.
    source : path or None
        What ``points`` came from, for error messages.

    Returns
    -------
    FinetuneResult

    Raises
    ------
    InputError
        No points in the listed frames, points or frames outside the movie,
        ``z_um, y_um, x_um`` that disagree with ``voxel_size_um``, a movie
        without ``channel``, an unknown starting model, negative minutes.

    Notes
    -----
    The movie's channels are read into memory (``np.asarray``); the network
    inputs of the listed frames are built once.
    """
    import torch

    from napari_kinetochores.io.volumes import validate_voxel_size
    from napari_kinetochores.nn.checkpoint import bundled_model_path, load_checkpoint
    from napari_kinetochores.nn.inference import choose_device
    from napari_kinetochores.training.loop import Trainer

    started = time.monotonic()
    if not float(minutes) >= 0:
        raise InputError(f"minutes must be a number >= 0, got {minutes}")
    voxel = validate_voxel_size(voxel_size_um, source)
    image = channel_first(movie, channel, source)
    spots = usable_spots(points, image.shape, voxel, channel, source)
    listed = chosen_frames(spots, frames, image.shape[0], source)
    loaded = load_checkpoint(bundled_model_path(init))
    config = finetune_config(loaded, voxel, output, settings or {})
    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = choose_device(config.device)
    plan, samples, train_frames, validation = split_for_validation(
        image, spots, voxel, config, listed
    )
    about = {
        "init": str(init),
        "loss": config.loss,
        "train_frames": train_frames,
        "validation": validation,
    }
    run = FinetuneRun(config, loaded.model.to(device), device, rng, plan, samples, output, about)
    stop = _stopper(started, minutes, should_stop)
    trainer = Trainer(
        run, MAX_EPOCHS, config.output_dir, None, progress, stop, on_epoch, None, plan.kind, started
    )
    trainer.log_path = Path(output).with_suffix(".log.csv")
    trainer.log_path.unlink(missing_ok=True)
    trainer.keep_later_ties = True
    initial = run.validate()
    trainer.keep_best(initial)
    run.initial = initial
    run.save(trainer, -1, initial, True)
    row = trainer.log_row(-1, {"loss": math.nan, "lr": config.lr}, initial)  # epoch 0
    if on_epoch is not None:
        on_epoch(row)
    if progress:
        print(
            f"validating on {plan.description}; {init}: F1 {initial['f1']:.3f} at threshold "
            f"{initial['threshold']:g}",
            flush=True,
        )
    trainer.run()
    return FinetuneResult(
        Path(output),
        trainer.best_f1,
        trainer.best_threshold,
        initial["f1"],
        initial["threshold"],
        run.validation,
        plan.description,
        train_frames,
        trainer.log_path,
        trainer.epochs_run,
        trainer.elapsed,
        trainer.history,
    )


def _stopper(started: float, minutes: float, should_stop: Callable[[], bool] | None):
    def stop() -> bool:
        over = time.monotonic() - started > 60.0 * float(minutes)
        return over or (should_stop is not None and bool(should_stop()))

    return stop


def channel_first(movie: Any, channel: int, source: str | Path | None = None) -> np.ndarray:
    """The movie (T, C, Z, Y, X) as numpy with ``channel`` moved first (the model's channel 0)."""
    shape = tuple(int(s) for s in movie.shape)
    if len(shape) != 5:
        raise InputError(f"the movie must be (T, C, Z, Y, X), got shape {shape}", source)
    if not 0 <= channel < shape[1]:
        raise InputError(f"the movie has {shape[1]} channel(s); there is no channel {channel}")
    order = [channel, *[c for c in range(shape[1]) if c != channel]]
    return np.asarray(movie[:, order])


def usable_spots(
    points: pd.DataFrame,
    shape_tczyx: Sequence[int],
    voxel_size_um: Sequence[float],
    channel: int = 0,
    source: str | Path | None = None,
) -> pd.DataFrame:
    """The spots to learn from: not ``deleted``, of ``channel``, inside the movie; ``channel`` 0.

    Raises :class:`InputError` for points outside the movie (naming the
    first) and for ``z_um, y_um, x_um`` columns that disagree with
    ``voxel_size_um`` by more than 1 %.

    >>> import pandas as pd
    >>> table = pd.DataFrame({"t": [0, 0], "z": [1.0, 2.0], "y": 3.0, "x": 4.0,
    ...                       "status": ["auto", "deleted"]})
    >>> len(usable_spots(table, (1, 1, 4, 8, 8), (0.3, 0.1, 0.1)))
    1
    >>> usable_spots(table.assign(x=9.0), (1, 1, 4, 8, 8), (0.3, 0.1, 0.1))
    Traceback (most recent call last):
    ...
    napari_kinetochores.errors.InputError: 1 point(s) lie outside the movie ...
    """
    table = points
    if "status" in table.columns:
        table = table[table["status"].astype(str) != "deleted"]
    if "channel" in table.columns:
        table = table[table["channel"] == channel]
    table = table.reset_index(drop=True).copy()
    _check_voxel_size(table, voxel_size_um, source)
    coords = table[["t", "z", "y", "x"]].to_numpy(float)
    limits = np.asarray([shape_tczyx[0], *shape_tczyx[2:]], float)
    outside = ~np.all(np.isfinite(coords) & (coords >= -0.5) & (coords < limits - 0.5), axis=1)
    if outside.any():
        t, z, y, x = coords[np.argmax(outside)]
        raise InputError(
            f"{int(outside.sum())} point(s) lie outside the movie (T, Z, Y, X = "
            f"{tuple(int(v) for v in limits)}), e.g. t={t:g}, z={z:g}, y={y:g}, x={x:g}: "
            "are they from another movie, or in µm instead of voxels?",
            source,
        )
    table["channel"] = 0
    return table


def _check_voxel_size(table, voxel_size_um, source) -> None:
    """``z_um, y_um, x_um`` (when present) must be the voxel coordinates times the voxel size."""
    um = ["z_um", "y_um", "x_um"]
    if not set(um) <= set(table.columns) or len(table) == 0:
        return
    voxels = table[["z", "y", "x"]].to_numpy(float)
    microns = table[um].to_numpy(float)
    usable = np.abs(voxels) > 1.0
    implied = [
        float(np.median(microns[usable[:, a], a] / voxels[usable[:, a], a]))
        if usable[:, a].any()
        else v
        for a, v in enumerate(voxel_size_um)
    ]
    if not np.allclose(implied, voxel_size_um, rtol=0.01):
        raise InputError(
            "the points' z_um, y_um, x_um columns imply a voxel size of "
            f"({', '.join(f'{v:.4g}' for v in implied)}) µm but the movie's is "
            f"({', '.join(f'{v:g}' for v in voxel_size_um)}) µm; give the right one "
            "(--voxel-size Z Y X)",
            source,
        )


def chosen_frames(
    spots: pd.DataFrame,
    frames: Sequence[int] | None,
    n_frames: int,
    source: str | Path | None = None,
) -> list[int]:
    """The frames to use: ``frames`` (checked) or those with spots; sorted, at least one with spots."""
    with_spots = sorted({int(t) for t in np.round(spots["t"].to_numpy())})
    if frames is None:
        listed = with_spots
    else:
        listed = sorted({int(t) for t in frames})
        wrong = [t for t in listed if not 0 <= t < n_frames]
        if wrong:
            raise InputError(f"frames {wrong} are not in the movie (frames 0 to {n_frames - 1})")
    if not set(listed) & set(with_spots):
        which = "the listed frames" if frames is not None else "the table"
        raise InputError(f"no points to learn from in {which} (deleted rows do not count)", source)
    return listed


def finetune_config(loaded, voxel_size_um, output: str | Path, settings: dict) -> TrainConfig:
    """:data:`RECIPE` with ``settings`` and what the starting model (``loaded``) fixes."""
    from napari_kinetochores.training.unet import config_from_dict

    values = {**RECIPE, **settings}
    for section in ("data", "validation"):
        values[section] = {**RECIPE[section], **settings.get(section, {})}
    if loaded.config.target == "distance":
        values["loss"] = "distance"
    config = config_from_dict(values)
    config.model = loaded.config
    config.voxel_size_um = list(voxel_size_um)
    info = loaded.info
    config.heatmap_sigma_um = list(np.broadcast_to(info.heatmap_sigma_um, (3,)))
    config.distance_clip_um = info.distance_clip_um
    config.min_distance_um = info.min_distance_um
    config.tile_shape = list(info.tile_shape)
    config.init_from = str(loaded.path)
    config.output_dir = str(Path(output).parent)
    return config


def split_for_validation(
    image: np.ndarray,
    spots: pd.DataFrame,
    voxel_size_um: tuple[float, float, float],
    config: TrainConfig,
    listed: list[int],
) -> tuple[ValidationPlan, list[Sample], list[int], str]:
    """Hold out the last listed frame with spots (two or more), else a block of the one frame.

    Returns the validation plan, the training samples, the training frames and
    which validation it is (``"frame"`` or ``"blocks"``).
    """
    from napari_kinetochores.training.unet import prepare_sample
    from napari_kinetochores.training.validation import HELD_OUT, ValidationFrame, ValidationPlan

    with_spots = set(np.round(spots["t"]).astype(int))
    labelled = [t for t in listed if t in with_spots]
    if len(labelled) >= 2:
        held = labelled[-1]
        train_frames = [t for t in listed if t != held]
        truth = _frame_spots(spots, held)
        frame = ValidationFrame(HELD_OUT, image, held, truth, voxel_size_um)
        words = f"held-out frame t={held} of your labels ({len(truth)} spots)"
        sample = prepare_sample(image, spots, voxel_size_um, config, "", train_frames)
        plan = ValidationPlan(HELD_OUT, words, [frame], [(0, held)])
        return plan, [sample], train_frames, "frame"
    t = labelled[0]
    truth = _frame_spots(spots, t)
    axis, cut = block_cut(truth, image.shape[2:])
    name = "zyx"[axis]
    crop = [slice(None)] * 5
    crop[2 + axis] = slice(cut, None)
    held_points = truth[truth[:, axis] >= cut] - np.eye(3)[axis] * cut
    frame = ValidationFrame(HELD_OUT, image[tuple(crop)], t, held_points, voxel_size_um)
    words = (
        f"held-out block {name} >= {cut} of frame t={t} of your labels "
        f"({len(held_points)} of {len(truth)} spots; training crops end at the cut)"
    )
    whole = prepare_sample(image, spots, voxel_size_um, config, "", listed)
    samples = [_crop_sample(whole, listed.index(t), axis, cut)]
    others = [k for k, u in enumerate(listed) if u != t]
    if others:
        samples.append(_pick_frames(whole, others))
    return ValidationPlan(HELD_OUT, words, [frame], [(0, t)]), samples, listed, "blocks"


def _frame_spots(spots: pd.DataFrame, t: int) -> np.ndarray:
    from napari_kinetochores.training.samples import frame_points

    return frame_points(spots, t, 0)


def block_cut(points_zyx: np.ndarray, shape_zyx: Sequence[int]) -> tuple[int, int]:
    """Axis (1: y, 2: x) and position of the cut that holds out about a quarter of the spots.

    The axis is the one the spots spread most along; the cut lies in the
    widest gap between spots ranked in :data:`BLOCK_SHARE` along it, so no
    spot is split between the blocks.

    >>> points = np.array([[0, 10, y] for y in (5, 10, 15, 20, 25, 30, 50, 55)], float)
    >>> block_cut(points, (4, 64, 64))
    (2, 40)
    """
    if len(points_zyx) < 4:
        raise InputError(
            f"one corrected frame with {len(points_zyx)} spot(s) is too few to hold out a block "
            "for validation; correct at least 4 spots, or a second frame"
        )
    axis = 1 + int(np.argmax(np.std(points_zyx[:, 1:], axis=0)))
    ranked = np.sort(points_zyx[:, axis])
    n = len(ranked)
    first = min(max(int(BLOCK_SHARE[0] * n), 1), n - 1)
    last = max(min(int(math.ceil(BLOCK_SHARE[1] * n)), n - 1), first)
    gaps = ranked[first : last + 1] - ranked[first - 1 : last]
    k = first - 1 + int(np.argmax(gaps))
    cut = int(math.ceil((ranked[k] + ranked[k + 1]) / 2))
    return axis, min(max(cut, 1), int(shape_zyx[axis]) - 1)


def _crop_sample(sample: Sample, index: int, axis: int, cut: int) -> Sample:
    """Frame ``index`` of ``sample`` up to ``cut`` along ``axis`` (0 z, 1 y, 2 x)."""
    from napari_kinetochores.training.unet import Sample

    crop = [slice(None)] * 4
    crop[1 + axis] = slice(0, cut)
    points = sample.points[index]
    return Sample(
        [np.ascontiguousarray(sample.inputs[index][tuple(crop)])],
        [np.ascontiguousarray(sample.targets[index][tuple(crop)])],
        [points[points[:, axis] < cut]],
        sample.voxel_size_um,
    )


def _pick_frames(sample: Sample, indices: Sequence[int]) -> Sample:
    from napari_kinetochores.training.unet import Sample

    return Sample(
        [sample.inputs[k] for k in indices],
        [sample.targets[k] for k in indices],
        [sample.points[k] for k in indices],
        sample.voxel_size_um,
    )


class FinetuneRun(UNetTraining):
    """:class:`~napari_kinetochores.training.unet.UNetTraining` on the user's frames, saving one file.

    Only the best model is written (atomically, to ``output``), with the
    fine-tuning facts in its ``info.training["finetune"]``.
    """

    def __init__(self, config, model, device, rng, plan, samples, output, about: dict) -> None:
        from napari_kinetochores.training.samples import SamplePool

        pool = SamplePool(samples, None, 0, 0, rng)
        super().__init__(config, model, device, rng, plan=plan, pool=pool)
        self.output_path = Path(output)
        self.validation = about["validation"]
        self.about = {**about, "validated_on": plan.description}
        self.initial: dict = {}

    def save(self, trainer, epoch: int, metrics: dict, improved: bool) -> None:
        """Write ``output`` when the validation F1 improved (epoch -1: the starting model)."""
        from napari_kinetochores.nn.checkpoint import save_checkpoint
        from napari_kinetochores.training.loop import plain_types

        if not improved:
            return
        config = self.config
        about = {
            **self.about,
            "epoch": epoch + 1,
            "seconds": round(trainer.elapsed, 1),
            "initial_f1": self.initial.get("f1"),
            "initial_threshold": self.initial.get("threshold"),
        }
        info = self.model_info(trainer, validation=metrics, finetune=plain_types(about))
        save_checkpoint(self.output_path, self.model, config.model, info)


def read_finetune_inputs(
    movie_path: str | Path,
    points_path: str | Path,
    voxel_size_um: Sequence[float] | None = None,
) -> tuple[Any, pd.DataFrame]:
    """Read a movie and its corrected points for :func:`finetune` (what the CLI does).

    The points' own ``z_um, y_um, x_um`` columns are kept (and later
    checked against the movie's voxel size); a table without them is read
    in voxels as it is.
    """
    from napari_kinetochores.io import read_points, read_volume

    volume = read_volume(movie_path, voxel_size_um=voxel_size_um)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # µm columns computed with a default
        points = read_points(points_path)
    if "voxel_size_um" in points.attrs:  # the µm columns were computed, not the file's
        points = points.drop(columns=["z_um", "y_um", "x_um"])
    return volume, points
