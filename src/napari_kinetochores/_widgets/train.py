"""Train / fine-tune: train the UNet (or a StarDist 3D model) on image and points layers, in a worker.

Fine-tuning a model (start from a bundled or trained UNet) calls
:func:`napari_kinetochores.training.finetune.finetune`, the function behind
``kinetochores finetune``: it trains for the form's minutes on the listed
frames (default: those with points), validates on the user's own labels (a
held-out frame, or a held-out block of a single frame), re-chooses the
threshold there and writes ``finetuned.pt`` into the output folder. The plot
shows that validation F1 per epoch beside the starting model's.

A new model is trained by :func:`napari_kinetochores.training.unet.train`
from a :class:`~napari_kinetochores.training.unet.TrainConfig` (an optional
YAML base config, then the form) with the layers as in-memory samples;
validation is on held-out frames of the user's own labels (every
``validation.held_out_every``-th labelled frame, at least one) when the
labels cover two frames or more, else on simulated movies; the status line
and the final notification say which.

Each epoch updates a progress bar and a live plot of the training loss and
the validation F1. Cancel stops at the next step; the best checkpoint so far
is kept. The new model becomes selectable in the Detect widget.

With the network "stardist" (extra ``[stardist]``) the widget builds a
:class:`~napari_kinetochores.training.stardist.StarDistConfig` the same way and
runs :func:`~napari_kinetochores.training.stardist.train_stardist` in a
separate process (:mod:`napari_kinetochores._napari.isolated`: TensorFlow cannot
share a process with Qt); Cancel ends that process, and the model folder
keeps the best weights written at the end of an epoch.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.qt.threading import thread_worker
from napari.utils import progress
from qtpy.QtCore import QObject, Signal

from napari_kinetochores._widgets._common import (
    KinetochoreWidget,
    PlotCanvas,
    show_warning,
)
from napari_kinetochores._widgets._layers import (
    check_same_scale,
    image_voxel_size,
    points_to_table,
    require_layer,
)
from napari_kinetochores._widgets._models import FROM_FILE, model_choices, registry
from napari_kinetochores.errors import InputError

NEW_MODEL = "new model"
VALIDATED_ON = {"held_out": "held-out frames of your labels", "simulated": "simulated movies"}
LOSSES = (("GaussianDice", "gaussian_dice"), ("distance", "distance"))


def training_networks() -> list[str]:
    """The UNet; StarDist too when its extra is installed."""
    import importlib.util

    networks = ["unet"]
    if importlib.util.find_spec("stardist") is not None:
        networks.append("stardist")
    return networks


class _EpochRelay(QObject):
    """Carries epoch rows from the training thread to the GUI thread."""

    epoch = Signal(object)


@thread_worker
def training_worker(config: Any, samples: list, cancel: threading.Event, relay: _EpochRelay):
    """Run :func:`~napari_kinetochores.training.unet.train`; return ``{"result": …}`` or ``{"error": …}``.

    The error is wrapped, not returned bare: the worker would re-raise it.
    """
    from napari_kinetochores.training.unet import train

    try:
        arrays = [(np.asarray(image), points, voxel) for image, points, voxel in samples]
        result = train(
            config,
            progress=False,
            cancelled=cancel.is_set,
            on_epoch=relay.epoch.emit,
            samples=arrays,
        )
        return {"result": result}
    except Exception as error:  # reported by the widget as a notification
        return {"error": error}


@thread_worker
def finetune_worker(request: dict, cancel: threading.Event, relay: _EpochRelay):
    """Run :func:`~napari_kinetochores.training.finetune.finetune` with ``request`` as its
    arguments; return ``{"result": …}`` or ``{"error": …}``."""
    from napari_kinetochores.training.finetune import finetune

    try:
        result = finetune(
            **request, progress=False, should_stop=cancel.is_set, on_epoch=relay.epoch.emit
        )
        return {"result": result}
    except Exception as error:  # reported by the widget as a notification
        return {"error": error}


@thread_worker
def stardist_training_worker(
    config: Any, samples: list, cancel: threading.Event, relay: _EpochRelay
):
    """Run StarDist training in its own process; return ``{"result": …}`` or ``{"error": …}``."""
    from napari_kinetochores._napari.isolated import iter_train_stardist_isolated

    try:
        arrays = [(np.asarray(image), points, voxel) for image, points, voxel in samples]
        result = None
        for kind, payload in iter_train_stardist_isolated(config, arrays, cancelled=cancel.is_set):
            if kind == "epoch":
                relay.epoch.emit(payload)
            elif kind == "result":
                result = payload
        return {"result": result}
    except Exception as error:  # reported by the widget as a notification
        return {"error": error}


@thread_worker
def bioimageio_export_worker(checkpoint: Path, package: Path):
    """Run :func:`~napari_kinetochores.nn.bioimageio.export_bioimageio`; ``{"result": …}`` or ``{"error": …}``."""
    from napari_kinetochores.nn.bioimageio import export_bioimageio

    try:
        return {"result": export_bioimageio(checkpoint, package)}
    except Exception as error:  # reported by the widget as a notification
        return {"error": error}


class TrainWidget(KinetochoreWidget):
    """Train or fine-tune the detector on an image layer and its corrected points.

    Parameters
    ----------
    napari_viewer
        The viewer holding the training layers.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.image = self.layer_combo("EGFP image", "image")
        self.second = self.layer_combo("mCherry image", "image", nullable=True)
        self.points = self.layer_combo("labels (points)", "points")
        self.network = ComboBox(
            label="network",
            choices=training_networks(),
            value="unet",
            tooltip="StarDist 3D needs the extra napari-kinetochores[stardist]",
        )
        self.start_model = ComboBox(
            label="start from",
            choices=lambda _w: [(NEW_MODEL, NEW_MODEL), *model_choices()],
            tooltip="fine-tune a bundled or trained model, or train a new one",
        )
        self.model_file = FileEdit(
            label="model file", mode="r", filter="*.pt", nullable=True, visible=False
        )
        self.loss = ComboBox(label="loss", choices=list(LOSSES), value="gaussian_dice")
        self.temporal_window = ComboBox(
            label="temporal window",
            choices=[1, 3, 5],
            value=1,
            tooltip="frames read per prediction (new models; a fine-tuned model keeps its own)",
        )
        self.epochs = SpinBox(label="epochs", value=10, min=1, max=10_000)
        self.steps = SpinBox(label="steps per epoch", value=50, min=1, max=100_000)
        self.minutes = FloatSpinBox(
            label="minutes",
            value=10.0,
            min=0.0,
            max=10_000.0,
            step=1.0,
            tooltip="fine-tuning time budget; the best model so far is kept",
        )
        self.frames = LineEdit(
            label="frames",
            value="",
            tooltip='frames you corrected: "3", "0:10" (end exclusive) or "1,4,7"; '
            "empty: the frames with points. Other frames are never used",
        )
        self.base_config = FileEdit(
            label="base config (optional)", mode="r", filter="*.yaml *.yml", nullable=True
        )
        self.output = FileEdit(
            label="output folder",
            mode="d",
            value=Path.home() / "napari-kinetochores" / "models" / time.strftime("run-%Y%m%d-%H%M"),
        )
        self.train_button = PushButton(text="Train")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.export_button = PushButton(
            text="Export to bioimage.io",
            tooltip="write the UNet just trained as a bioimage.io package (.zip) beside it",
        )
        buttons = Container(
            widgets=[self.train_button, self.cancel_button, self.export_button],
            layout="horizontal",
        )
        buttons.margins = (0, 0, 0, 0)
        self.form.extend(
            [
                self.image,
                self.second,
                self.points,
                self.network,
                self.start_model,
                self.model_file,
                self.loss,
                self.temporal_window,
                self.epochs,
                self.steps,
                self.minutes,
                self.frames,
                self.base_config,
                self.output,
                buttons,
            ]
        )
        self.plot = PlotCanvas()
        self.layout().addWidget(self.plot.canvas)
        self.worker: Any = None
        self.history: list[dict] = []
        self.result: Any = None
        self._cancel = threading.Event()
        self._relay = _EpochRelay()
        self._relay.epoch.connect(self._on_epoch)
        self._progress: Any = None
        self.start_model.changed.connect(self._model_changed)
        self.network.changed.connect(self._model_changed)
        self.train_button.changed.connect(self.guarded("Training", self.start))
        self.cancel_button.changed.connect(self.cancel)
        self.export_button.changed.connect(self.guarded("Export", self.export_bioimageio))
        registry.changed.connect(self._models_changed)
        self._model_changed()

    def _models_changed(self) -> None:
        try:
            self.start_model.reset_choices()
        except RuntimeError:  # widget closed
            registry.changed.disconnect(self._models_changed)

    def _model_changed(self, *_: Any) -> None:
        unet = self.network.value == "unet"
        new = self.start_model.value == NEW_MODEL
        self.start_model.visible = unet
        self.loss.visible = self.temporal_window.visible = unet and new
        self.epochs.visible = self.steps.visible = not self.fine_tuning
        self.minutes.visible = self.frames.visible = self.fine_tuning
        self.model_file.visible = unet and self.start_model.value == FROM_FILE
        self.temporal_window.enabled = new

    @property
    def fine_tuning(self) -> bool:
        """True when a UNet is fine-tuned (started from a model), by :func:`finetune`."""
        return self.network.value == "unet" and self.start_model.value != NEW_MODEL

    @property
    def running(self) -> bool:
        """True while a training worker runs."""
        return self.worker is not None

    # ------------------------------------------------------------------ config

    def _base_values(self) -> dict:
        import yaml

        if self.base_config.value is None or not str(self.base_config.value).strip():
            return {}
        path = Path(self.base_config.value)
        if not path.is_file():
            raise InputError("config file not found", path)
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise InputError("a training config must be a YAML mapping", path)
        declared = values.pop("backend", None)
        if declared is not None and declared != self.network.value:
            raise InputError(f"this is a {declared} config; choose the network {declared}", path)
        values.pop("data", None)  # the layers are the data
        return values

    def build_stardist_config(self) -> Any:
        """The StarDist training config from the base config (if any) and the form."""
        from napari_kinetochores.training.stardist import stardist_config_from_dict

        config = stardist_config_from_dict(self._base_values())
        config.epochs = int(self.epochs.value)
        config.steps_per_epoch = int(self.steps.value)
        config.output_dir = str(self.output.value)
        config.time_limit_min = None
        return config

    def build_config(self) -> Any:
        """The training config from the base config (if any) and the form."""
        from napari_kinetochores.training.unet import config_from_dict

        if self.network.value == "stardist":
            return self.build_stardist_config()
        config = config_from_dict(self._base_values())
        config.epochs = int(self.epochs.value)
        config.steps_per_epoch = int(self.steps.value)
        config.output_dir = str(self.output.value)
        config.loss = self.loss.value
        config.time_limit_min = None
        config.init_from = self.init_model()
        if config.init_from is None:
            config.model.target = "distance" if self.loss.value == "distance" else "gaussian"
            config.model.temporal_window = int(self.temporal_window.value)
            config.model.image_channels = [0, 1] if self.second.value is not None else [0]
            config.model.validate()
        return config

    def init_model(self) -> str | None:
        """The model to start from (bundled name or file), checked; None for a new model."""
        from napari_kinetochores.nn.checkpoint import bundled_model_path

        choice = self.start_model.value
        if choice == NEW_MODEL:
            return None
        if choice == FROM_FILE:
            if self.model_file.value is None:
                raise InputError("choose the model file (.pt) to start from")
            choice = str(self.model_file.value)
        bundled_model_path(choice)  # a clear error now for a missing model
        return choice

    def finetune_request(self, sample: tuple) -> dict:
        """The arguments of :func:`~napari_kinetochores.training.finetune.finetune` for a sample.

        A base config's training keys (``steps_per_epoch``, ``batch_size``,
        ``patch_shape``, ``lr``, ``validation``, …) override the recipe; what
        the starting model fixes (``model``, heatmap, tiles) is its own.
        """
        from napari_kinetochores.detection.options import parse_frames

        image, table, voxel = sample
        frames = self.frames.value.strip()
        fixed = ("model", "init_from", "output_dir", "epochs", "time_limit_min", "device")
        settings = {k: v for k, v in self._base_values().items() if k not in fixed}
        return {
            "movie": image,
            "points": table,
            "voxel_size_um": voxel,
            "output": Path(self.output.value) / "finetuned.pt",
            "frames": parse_frames(frames) if frames else None,
            "minutes": float(self.minutes.value),
            "init": self.init_model(),
            "settings": settings,
        }

    def samples(self) -> list[tuple[Any, Any, tuple[float, float, float]]]:
        """The training data from the layers: [(image TCZYX, points table, voxel size)]."""
        from napari_kinetochores._widgets._layers import layers_to_volume

        image = require_layer(self.image.value, "image", "training")
        points = require_layer(self.points.value, "points", "the training labels")
        voxel = image_voxel_size(image)
        check_same_scale(image, points)
        volume = layers_to_volume(image, self.second.value)
        table = points_to_table(points, voxel)
        if "status" in table.columns:
            table = table[table["status"].astype(str) != "deleted"]
        if len(table) == 0:
            raise InputError(f"the points layer {points.name!r} holds no labels to train on")
        return [(volume.data, table.reset_index(drop=True), voxel)]

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        """Check the inputs and start training in a worker."""
        if self.running:
            show_warning("Training is already running; cancel it first")
            return
        samples = self.samples()
        if self.fine_tuning:
            request = self.finetune_request(samples[0])
            total = max(int(math.ceil(60 * request["minutes"])), 1)
            self._progress = progress(total=total, desc="Fine-tuning (s)")
            worker = finetune_worker(request, self._cancel, self._relay)
            status = f"fine-tuning {request['init']} for {request['minutes']:g} min into {request['output']}…"
        else:
            config = self.build_config()
            config.voxel_size_um = list(samples[0][2])
            self._progress = progress(total=config.epochs, desc="Training")
            run = stardist_training_worker if self.network.value == "stardist" else training_worker
            worker = run(config, samples, self._cancel, self._relay)
            status = f"training for {config.epochs} epoch(s) into {config.output_dir}…"
        self.history, self.result = [], None
        self._cancel.clear()
        self.worker = worker
        self.worker.returned.connect(self._on_returned)
        self.worker.finished.connect(self._on_finished)
        self.train_button.enabled = False
        self.cancel_button.enabled = True
        self._draw()
        self.set_status(status)
        self.worker.start()

    def cancel(self, *_: Any) -> None:
        """Stop at the next step; the epoch is validated and the best checkpoint kept."""
        if self.worker is not None:
            self._cancel.set()
            self.set_status("cancelling: finishing the epoch and keeping the best checkpoint…")

    def export_bioimageio(self) -> None:
        """Write the UNet just trained as ``<checkpoint>.bioimageio.zip`` beside it, in a worker."""
        checkpoint = getattr(self.result, "best_checkpoint", None)
        if checkpoint is None:
            raise InputError("no UNet was trained here yet: train one, then export it")
        package = Path(checkpoint).with_suffix(".bioimageio.zip")
        self.export_button.enabled = False
        self.set_status(f"exporting {checkpoint} to {package}…")
        self.export_worker = bioimageio_export_worker(Path(checkpoint), package)
        self.export_worker.returned.connect(self._on_exported)
        self.export_worker.start()

    def _on_exported(self, outcome: dict) -> None:
        self.export_button.enabled = True
        if "error" in outcome:
            self.fail(outcome["error"], "Export")
            return
        label = registry.add(outcome["result"])
        self.announce(
            f"wrote the bioimage.io package {outcome['result']}: choose '{label}' in Detect "
            "kinetochores, or open it in ilastik or deepImageJ (docs/bioimageio.md)"
        )

    def _on_epoch(self, row: dict) -> None:
        self.history.append(dict(row))
        on = VALIDATED_ON.get(row.get("validated_on"), "")
        what = (
            "starting model"
            if row["epoch"] == 0
            else f"epoch {row['epoch']}: loss {row['loss']:.4f},"
        )
        self.set_status(f"{what} validation F1 {row['val_f1']:.3f}" + (f" on {on}" if on else ""))
        self._draw()
        if self._progress is not None:  # last: napari may process pending events here
            done = min(int(row.get("seconds", 0)), self._progress.total) - self._progress.n
            self._progress.update(max(done, 0) if self.fine_tuning else int(row["epoch"] > 0))

    def _draw(self) -> None:
        from matplotlib.ticker import MaxNLocator

        ax = self.plot.axes("training loss", "epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        epochs = [row["epoch"] for row in self.history]
        if epochs:
            ax.plot(epochs, [row["loss"] for row in self.history], "o-", color="#40a0ff")
        twin = ax.twinx()
        self.plot.style(twin, "validation F1")
        if epochs:
            twin.plot(epochs, [row["val_f1"] for row in self.history], "s-", color="#2ecc40")
        if epochs and epochs[0] == 0:  # fine-tuning: the starting model on the same frames
            twin.axhline(self.history[0]["val_f1"], color="#aaaaaa", ls="--", lw=1)
        twin.set_ylim(0, 1.05)
        self.plot.draw()

    def _on_returned(self, outcome: dict) -> None:
        self.result = outcome.get("error", outcome.get("result"))

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self.worker = None
        self.train_button.enabled = True
        self.cancel_button.enabled = False
        result = self.result
        if isinstance(result, BaseException):
            if self._cancel.is_set() and "before the first epoch" in str(result):
                message = "training cancelled before the first epoch ended; no model was saved"
                self.set_status(message)
                show_warning(message)
            else:
                self.fail(result, "Training")
            return
        if result is None:
            if self.network.value == "stardist" and self._cancel.is_set():
                self.announce(
                    f"training cancelled; the best weights so far are in {self.output.value}"
                )
            return
        how = "cancelled; kept" if self._cancel.is_set() else "done; saved"
        if hasattr(result, "model_dir"):  # StarDist
            message = (
                f"StarDist training {how} the model folder {result.model_dir} (validation F1 "
                f"{result.best_f1:.3f} on {result.validated_on}); choose it in Detect "
                "kinetochores (method stardist)"
            )
        else:
            label = registry.add(result.best_checkpoint)
            what, figures = "training", f"validation F1 {result.best_f1:.3f}"
            if hasattr(result, "initial_f1"):  # a FinetuneResult
                what = "fine-tuning"
                figures += (
                    f" at threshold {result.threshold:g}; starting model {result.initial_f1:.3f}"
                )
            message = (
                f"{what} {how} the best model {result.best_checkpoint} ({figures} on "
                f"{result.validated_on}); choose '{label}' in Detect kinetochores"
            )
        self.announce(message)
