"""Detect kinetochores: the library's frame-by-frame detection in a napari worker.

StarDist (extra ``[stardist]``) runs in a separate process
(:mod:`napari_kinetochores._napari.isolated`), because TensorFlow and Qt crash when
they share one; its frames arrive one by one all the same.

The widget builds a :class:`~napari_kinetochores.detection.DetectionOptions`
and runs :func:`~napari_kinetochores.detection.iter_detections`, the same
pipeline as ``kinetochores detect``, in a thread worker. Each finished frame
replaces that frame's points in the output Points layer (never stacking
duplicates), which has the image's scale so the points sit on the spots.
Cancel stops after the current frame and keeps the frames already done.

The output layer is one this widget made; a layer of that name that it did
not make (the reference, a loaded CSV) is never overwritten: the points go to
``<name> [2]`` instead. Warnings raised in the worker (e.g. "using the bundled
'single_frame' model instead") are shown as napari notifications.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
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

from napari_kinetochores._napari.io import (
    DETECTION_CHANNEL_COLOURS,
    META_KEY,
    channel_colours,
    marker_style,
)
from napari_kinetochores._widgets._common import (
    KinetochoreWidget,
    show_warning,
    voxel_size_spinboxes,
)
from napari_kinetochores._widgets._layers import (
    check_same_scale,
    image_voxel_size,
    layer_kind,
    layers_to_volume,
    n_frames,
    points_to_table,
    require_layer,
    set_points,
)
from napari_kinetochores._widgets._models import (
    FROM_FILE,
    MODEL_FILE_FILTER,
    model_choices,
    registry,
)
from napari_kinetochores.detection import DetectionOptions, iter_detections
from napari_kinetochores.errors import InputError

FRAME_CHOICES = ("current", "range", "all")
#: Marks the points layers this widget made (the only ones it writes into).
MADE_BY = "Detect kinetochores"


def detection_methods() -> list[str]:
    """UNet and classical; StarDist too when its extra is installed (it runs in its own process)."""
    import importlib.util

    methods = ["unet", "classical"]
    if importlib.util.find_spec("stardist") is not None:
        methods.append("stardist")
    return methods


@thread_worker
def detection_worker(
    volume: Any,
    options: DetectionOptions,
    frames: list[int],
    cancel: threading.Event,
    with_probability: bool,
) -> Iterator[tuple[int, pd.DataFrame, np.ndarray | None, list[str]]]:
    """Yield (t, detections, probability or None, new warnings) per frame.

    Returns ``{"error": exception or None, "warnings": [...]}``. Errors are
    returned (wrapped: a returned exception would be re-raised by the
    worker), not raised, so the widget shows one clear notification and keeps
    every frame already done. Warnings are recorded here and handed to the
    GUI thread, which shows them as notifications.
    """
    predictions: dict[int, np.ndarray] = {}

    def keep(t: int, prediction: np.ndarray) -> None:
        predictions[t] = prediction[0]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # each run shows them; the widget drops repeats
        sent = 0
        try:
            if options.method == "stardist":  # TensorFlow cannot share a process with Qt
                from napari_kinetochores._napari.isolated import iter_detections_isolated

                frames_done = iter_detections_isolated(
                    volume, options, frames, cancelled=cancel.is_set
                )
            else:
                frames_done = iter_detections(
                    volume,
                    options,
                    frames,
                    cancelled=cancel.is_set,
                    on_prediction=keep if with_probability else None,
                )
            for t, table in frames_done:
                new = [str(w.message) for w in caught[sent:]]
                sent = len(caught)
                yield t, table, predictions.pop(t, None), new
        except Exception as error:  # reported by the widget as a notification
            return {"error": error, "warnings": [str(w.message) for w in caught[sent:]]}
        return {"error": None, "warnings": [str(w.message) for w in caught[sent:]]}


class DetectWidget(KinetochoreWidget):
    """Detect kinetochores in an image layer, frame by frame, with progress and Cancel.

    Parameters
    ----------
    napari_viewer
        The viewer holding the image layers.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.image = self.layer_combo("EGFP image", "image")
        self.second = self.layer_combo("mCherry image", "image", nullable=True)
        self.voxel = voxel_size_spinboxes()
        self.method = ComboBox(label="method", choices=detection_methods(), value="unet")
        self.model = ComboBox(label="model", choices=lambda _w: model_choices())
        self.model_file = FileEdit(
            label="model file", mode="r", filter=MODEL_FILE_FILTER, nullable=True, visible=False
        )
        self.stardist_folder = FileEdit(
            label="StarDist model folder",
            mode="d",
            nullable=True,
            visible=False,
            tooltip="empty: the bundled StarDist model",
        )
        self.threshold = FloatSpinBox(
            label="threshold (0: default)",
            value=0.0,
            min=0.0,
            max=1000.0,
            step=0.05,
            tooltip="UNet, StarDist: probability; classical: noise sigmas. 0 takes the model's default",
        )
        self.min_distance = FloatSpinBox(
            label="min. distance µm (0: default)", value=0.0, min=0.0, max=10.0, step=0.05
        )
        self.frames = ComboBox(label="frames", choices=list(FRAME_CHOICES), value="all")
        self.first = SpinBox(label="first frame", min=0, max=0, visible=False)
        self.last = SpinBox(label="last frame", min=0, max=0, visible=False)
        self.all_channels = CheckBox(text="also report the mCherry spots", value=False)
        self.test_time_flips = CheckBox(
            text="average over y/x flips (UNet; 4 passes)",
            value=DetectionOptions().test_time_flips,
            tooltip="the network's output averaged over the four flips in y and x, at four "
            "times the network time; no gain with the bundled default (docs/models.md)",
        )
        self.probability = CheckBox(text="show the probability map (UNet)", value=False)
        self.output = LineEdit(label="points layer", value="detections")
        self.run_button = PushButton(text="Detect")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal")
        buttons.margins = (0, 0, 0, 0)
        self.form.extend(
            [
                self.image,
                self.second,
                *self.voxel,
                self.method,
                self.model,
                self.model_file,
                self.stardist_folder,
                self.threshold,
                self.min_distance,
                self.frames,
                self.first,
                self.last,
                self.all_channels,
                self.test_time_flips,
                self.probability,
                self.output,
                buttons,
            ]
        )
        self.worker: Any = None
        self._cancel = threading.Event()
        self._progress: Any = None
        self._done: list[int] = []
        self._total = 0
        self._points: Any = None
        self._probability: dict[int, np.ndarray] = {}
        self._probability_layer: Any = None
        self._error: BaseException | None = None
        self._warned: set[str] = set()
        self._image_name = ""

        self.image.changed.connect(self._image_changed)
        self.method.changed.connect(self._method_changed)
        self.model.changed.connect(self._method_changed)
        self.frames.changed.connect(self._frames_changed)
        self.run_button.changed.connect(self.guarded("Detection", self.start))
        self.cancel_button.changed.connect(self.cancel)
        registry.changed.connect(self._models_changed)
        self._image_changed()
        self._method_changed()

    # ------------------------------------------------------------------ form

    def _models_changed(self) -> None:
        try:
            self.model.reset_choices()
        except RuntimeError:  # widget closed
            registry.changed.disconnect(self._models_changed)

    def _image_changed(self, *_: Any) -> None:
        layer = self.image.value
        if layer is None:
            return
        try:
            voxel = image_voxel_size(layer)
        except InputError as error:
            self.set_status(str(error))
            return
        for box, value in zip(self.voxel, voxel, strict=True):
            box.value = value
        last = n_frames(layer) - 1
        self.first.max = self.last.max = last
        self.last.value = last
        self.set_status("")

    def _method_changed(self, *_: Any) -> None:
        unet = self.method.value == "unet"
        self.model.visible = unet
        self.model_file.visible = unet and self.model.value == FROM_FILE
        self.stardist_folder.visible = self.method.value == "stardist"
        self.probability.visible = unet
        self.test_time_flips.visible = unet

    def _frames_changed(self, *_: Any) -> None:
        ranged = self.frames.value == "range"
        self.first.visible = self.last.visible = ranged

    def selected_frames(self, count: int) -> list[int]:
        """The frames to process, from the "frames" choice."""
        if self.frames.value == "all":
            return list(range(count))
        if self.frames.value == "current":
            step = self.viewer.dims.current_step[0] if count > 1 else 0
            return [int(min(max(step, 0), count - 1))]
        first, last = int(self.first.value), int(self.last.value)
        if last < first:
            raise InputError(f"the last frame ({last}) comes before the first ({first})")
        return list(range(first, min(last, count - 1) + 1))

    def options(self) -> DetectionOptions:
        """The detection options chosen in the form (checks the model file exists)."""
        model = None
        if self.method.value == "unet":
            from napari_kinetochores.nn.checkpoint import bundled_model_path

            model = self.model.value
            if model == FROM_FILE:
                if self.model_file.value is None:
                    raise InputError("choose a model file (.pt)")
                model = str(self.model_file.value)
            bundled_model_path(model)  # a clear error now for a missing model
        elif self.method.value == "stardist":
            from napari_kinetochores.backends.stardist import stardist_model_path

            folder = self.stardist_folder.value
            model = (
                str(folder) if folder is not None and str(folder).strip() not in ("", ".") else None
            )
            stardist_model_path(model)  # a clear error now for a missing model
        return DetectionOptions(
            method=self.method.value,
            channel=0,
            threshold=float(self.threshold.value) or None,
            min_distance_um=float(self.min_distance.value) or None,
            model=model,
            all_channels=bool(self.all_channels.value),
            test_time_flips=bool(self.test_time_flips.value),
        )

    # ------------------------------------------------------------------ running

    @property
    def running(self) -> bool:
        """True while a detection worker runs."""
        return self.worker is not None

    def start(self) -> None:
        """Check the inputs and start detecting in a worker."""
        if self.running:
            show_warning("Detection is already running; cancel it first")
            return
        image = require_layer(self.image.value, "image", "detection")
        voxel = tuple(box.value for box in self.voxel)
        if not np.allclose(voxel, image_voxel_size(image), rtol=1e-4):
            show_warning(
                f"the voxel size {voxel} µm differs from the scale of {image.name!r}; "
                "detection uses the voxel size, the points use the layer's scale"
            )
        second = self.second.value
        if second is not None and second is image:
            raise InputError("choose two different layers for EGFP and mCherry")
        volume = layers_to_volume(image, second, voxel)
        options = self.options()
        frames = self.selected_frames(volume.n_frames)
        self._points = self._output_layer(image)
        self._image_name = image.name
        self._prepare_probability(image, options)
        self._cancel.clear()
        self._done, self._total, self._error = [], len(frames), None
        self._warned = set()
        self._progress = progress(total=len(frames), desc="Detecting kinetochores")
        self.worker = detection_worker(
            volume, options, frames, self._cancel, bool(self._probability_layer is not None)
        )
        self.worker.yielded.connect(self._on_frame)
        self.worker.returned.connect(self._on_returned)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.set_status(f"detecting in {len(frames)} frame(s)…")
        self.worker.start()

    def cancel(self, *_: Any) -> None:
        """Stop after the current frame; the frames already done are kept."""
        if self.worker is not None:
            self._cancel.set()
            self.worker.quit()
            self.set_status("cancelling after the current frame…")

    def _output_layer(self, image: Any) -> Any:
        """The points layer to write into: one this widget made, else a new one.

        A layer of the chosen name that this widget did not make (or that no
        longer fits the image) is left alone: the points go to ``<name> [2]``.
        """
        name = self.output.value.strip() or "detections"
        layer = self.layer_named(name)
        if layer is not None and self._reusable(layer, image):
            return layer
        if layer is not None:
            free = next(
                f"{name} [{k}]"
                for k in range(2, len(self.viewer.layers) + 3)
                if self._reusable_or_free(f"{name} [{k}]", image)
            )
            show_warning(
                f"layer {name!r} was not made by Detect for this image; "
                f"the detections go to {free!r} (it is left as it is)"
            )
            self.output.value = free
            if (existing := self.layer_named(free)) is not None:
                return existing
            name = free
        return self.viewer.add_points(
            np.zeros((0, image.ndim)),
            ndim=image.ndim,
            name=name,
            scale=image.scale,
            translate=image.translate,
            **marker_style(False, image.scale),
            features=pd.DataFrame(
                {
                    "channel": pd.Series(dtype=int),
                    "score": pd.Series(dtype=float),
                    "status": pd.Series(dtype=object),
                }
            ),
            metadata={META_KEY: {"kind": "detections", "made_by": MADE_BY}},
        )

    @staticmethod
    def _reusable(layer: Any, image: Any) -> bool:
        """A points layer this widget made, with the image's dimensions and scale."""
        meta = (layer.metadata or {}).get(META_KEY, {})
        if layer_kind(layer) != "points" or not isinstance(meta, dict):
            return False
        if meta.get("made_by") != MADE_BY or layer.ndim != image.ndim:
            return False
        try:
            check_same_scale(layer, image)
        except InputError:
            return False
        return True

    def _reusable_or_free(self, name: str, image: Any) -> bool:
        layer = self.layer_named(name)
        return layer is None or self._reusable(layer, image)

    def _prepare_probability(self, image: Any, options: DetectionOptions) -> None:
        self._probability = {}
        self._probability_layer = None
        if options.method != "unet" or not self.probability.value:
            return
        name = f"{self.output.value.strip() or 'detections'} probability"
        layer = self.layer_named(name)
        if layer_kind(layer) == "image":
            self._probability_layer = layer
        else:
            import dask.array as da

            self._probability_layer = self.viewer.add_image(
                da.zeros(
                    image.data.shape,
                    dtype=np.float32,
                    chunks=(1,) * (image.ndim - 3) + tuple(image.data.shape[-3:]),
                ),
                name=name,
                scale=image.scale,
                translate=image.translate,
                colormap="inferno",
                blending="additive",
                contrast_limits=(0.0, 1.0),
                opacity=0.6,
            )
        self._image_shape = tuple(image.data.shape)

    def _show_warnings(self, messages: list[str]) -> None:
        """Show the worker's warnings as notifications (each once per run).

        The library starts a message with the movie's file; a movie made of
        layers has none, so the image layer is named instead.
        """
        for message in messages:
            message = f"layer {self._image_name!r}: {message}"
            if message not in self._warned:
                self._warned.add(message)
                show_warning(message)

    def _on_frame(self, item: tuple[int, pd.DataFrame, np.ndarray | None, list[str]]) -> None:
        t, table, prediction, caught = item
        self._show_warnings(caught)
        layer = self._points
        current = points_to_table(layer)
        keep = np.round(current["t"].to_numpy(float)).astype(int) != t
        merged = pd.concat([current[keep], table], ignore_index=True)
        merged = merged.sort_values("t", kind="stable").reset_index(drop=True)
        set_points(layer, merged)
        if "channel" in merged and merged["channel"].nunique() > 1:
            layer.border_color = channel_colours(merged["channel"], DETECTION_CHANNEL_COLOURS)
        if prediction is not None and self._probability_layer is not None:
            self._probability[t] = prediction
            self._update_probability()
        self._done.append(t)
        self.set_status(f"frame {t}: {len(table)} detections ({len(self._done)}/{self._total})")
        if self._progress is not None:  # last: napari may process pending events here
            self._progress.update(1)

    def _update_probability(self) -> None:
        import dask.array as da

        shape = self._image_shape
        if len(shape) == 3:
            self._probability_layer.data = next(iter(self._probability.values()))
            return
        frames = [
            da.from_array(self._probability[t])
            if t in self._probability
            else da.zeros(shape[1:], dtype=np.float32)
            for t in range(shape[0])
        ]
        self._probability_layer.data = da.stack(frames)

    def _on_returned(self, outcome: dict) -> None:
        self._error = outcome.get("error")
        self._show_warnings(outcome.get("warnings", []))

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self.worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        n_points = len(self._points.data) if self._points is not None else 0
        if self._error is not None:
            self.fail(self._error, "Detection")
            return
        if self._cancel.is_set() and len(self._done) < self._total:
            message = (
                f"detection cancelled after {len(self._done)} of {self._total} frame(s); "
                "the frames done are kept"
            )
        else:
            message = f"detection done: {n_points} points in layer {self._points.name!r}"
        self.announce(message)
