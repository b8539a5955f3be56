"""Qt building blocks shared by the dock widgets: base class, layer pickers, messages.

Every widget is a :class:`KinetochoreWidget`: a ``QWidget`` holding a magicgui
form, a status line and optional extra Qt parts. Errors never escape to Qt:
they become napari notifications (:func:`report_error`), so bad input cannot
freeze the viewer or lose a layer.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any

from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from napari_kinetochores._napari.io import OUT_OF_SLICE_UM, legend_text
from napari_kinetochores._widgets._layers import default_layer, layer_kind
from napari_kinetochores.errors import InputError

__all__ = [
    "KinetochoreWidget",
    "describe_viewer",
    "report_error",
    "show_info",
    "show_warning",
    "voxel_size_spinboxes",
]


def report_error(error: BaseException, action: str) -> str:
    """Show an error as a napari notification and return the message shown.

    :class:`InputError` (bad input) is shown as its plain message; anything
    else also names the exception type, and its traceback is printed for
    bug reports.
    """
    if isinstance(error, InputError):
        message = f"{action}: {error}"
    else:
        message = f"{action} failed: {type(error).__name__}: {error}"
        traceback.print_exception(type(error), error, error.__traceback__)
    show_error(message)
    return message


def describe_viewer(viewer: Any) -> None:
    """Label the axes t, z, y, x, show points near the z slice, and the markers' legend.

    Axis labels are set only while napari's numeric defaults are shown (a
    user's own labels stay). Where napari has thick slices (0.9), a z slice
    without margins gets :data:`~napari_kinetochores._napari.io.OUT_OF_SLICE_UM`
    on each side, so the points layers (projection mode ``rescale_linear``)
    show the spots just above and below, smaller. The legend
    (:func:`~napari_kinetochores._napari.io.legend_text`) is the canvas's text
    overlay, bottom left, hidden when no plugin layer is shown.
    """
    dims = viewer.dims
    labels = [str(label) for label in dims.axis_labels]
    if dims.ndim in (3, 4) and all(label.lstrip("-").isdigit() for label in labels):
        dims.axis_labels = ("t", "z", "y", "x")[4 - dims.ndim :]
    canvas = getattr(viewer, "canvas", None)
    if canvas is not None and dims.ndim >= 3:  # napari >= 0.9: thick slices
        z = dims.ndim - 3
        if dims.margin_left[z] == 0 and dims.margin_right[z] == 0:
            dims.margin_left = tuple(
                OUT_OF_SLICE_UM if i == z else m for i, m in enumerate(dims.margin_left)
            )
            dims.margin_right = tuple(
                OUT_OF_SLICE_UM if i == z else m for i, m in enumerate(dims.margin_right)
            )
    text = legend_text(list(viewer.layers))
    overlay = canvas.overlays.text if canvas is not None else viewer.text_overlay
    overlay.text = text
    overlay.position = "bottom_left"
    overlay.font_size = 9
    overlay.color = "white"
    overlay.visible = bool(text)


def voxel_size_spinboxes(label: str = "voxel size (µm)") -> list[FloatSpinBox]:
    """Three spin boxes for a voxel size (z, y, x) in µm."""
    return [
        FloatSpinBox(
            label=f"{label} {axis}" if axis == "z" else axis,
            value=value,
            min=0.0001,
            max=1000.0,
            step=0.01,
            tooltip=f"voxel size along {axis} in µm",
        )
        for axis, value in zip("zyx", (0.30, 0.13, 0.13), strict=True)
    ]


class KinetochoreWidget(QWidget):
    """Base of the plugin's dock widgets.

    Parameters
    ----------
    napari_viewer
        The viewer (napari passes it when it opens the widget).
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.form = Container(labels=True)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        # A word-wrapped QLabel asks for a narrow width; let it take the dock's.
        self.status.native.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        layout = QVBoxLayout()
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.form.native)
        layout.addWidget(self.status.native)
        self.setLayout(layout)
        self._roles: dict[int, tuple[ComboBox, str, str, bool]] = {}
        self._explicit: dict[int, Any] = {}
        self._choosing = False
        events = self.viewer.layers.events
        for name in ("inserted", "removed", "reordered"):
            getattr(events, name).connect(self.reset_choices)
        for name in ("inserted", "removed"):
            getattr(events, name).connect(self._describe_viewer)
        self._describe_viewer()

    # ------------------------------------------------------------------ layers

    def layer_combo(
        self,
        label: str,
        kind: str,
        nullable: bool = False,
        role: str | None = None,
        **kwargs: Any,
    ) -> ComboBox:
        """A combo box listing the viewer's layers of ``kind`` ("image" or "points").

        Points combos follow the user (:func:`~._layers.default_layer`) until
        the user picks a layer: "prediction" is the newest detections layer,
        "reference" the reference layer, never the layer a "prediction" combo
        of the same widget shows. ``role`` None: "reference" when the label
        says so, "prediction" for other required points combos, none (keep
        empty) for optional ones.
        """

        def choices(_widget: Any) -> list[tuple[str, Any]]:
            return [
                (layer.name, layer) for layer in self.viewer.layers if layer_kind(layer) == kind
            ]

        combo = ComboBox(label=label, choices=choices, nullable=nullable, **kwargs)
        if role is None and kind == "points":
            role = (
                "reference" if "reference" in label.lower() else None if nullable else "prediction"
            )
        if role is not None:
            self._roles[id(combo)] = (combo, kind, role, nullable)
            combo.changed.connect(functools.partial(self._picked, id(combo)))
            self._choose_defaults()
        return combo

    def _picked(self, key: int, value: Any) -> None:
        if not self._choosing:
            self._explicit[key] = value

    def _choose_defaults(self) -> None:
        """Give every role combo the user has not set its default layer."""
        self._choosing = True
        try:
            chosen = {}
            for key, (combo, kind, role, nullable) in sorted(
                self._roles.items(), key=lambda item: item[1][2] != "prediction"
            ):
                explicit = self._explicit.get(key)
                if explicit is not None and any(explicit is c for c in combo.choices):
                    chosen[role] = explicit
                    continue
                self._explicit.pop(key, None)
                layer = default_layer(self.viewer.layers, kind, role, chosen.get("prediction"))
                if layer is not None or nullable:
                    combo.value = layer
                chosen[role] = combo.value
        finally:
            self._choosing = False

    def _describe_viewer(self, *_: Any) -> None:
        try:
            describe_viewer(self.viewer)
            for layer in self.viewer.layers:  # the legend follows what is shown
                layer.events.visible.connect(self._describe_viewer)  # (connected once)
        except RuntimeError:  # the viewer is closing
            pass

    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer lists (called when layers are added, removed or moved)."""
        try:
            self._choosing = True
            try:
                self.form.reset_choices()
            finally:
                self._choosing = False
            self._choose_defaults()
        except RuntimeError:  # the Qt widget is gone (closed dock)
            pass

    def layer_named(self, name: str) -> Any:
        """The viewer's layer called ``name``, or None."""
        return next((layer for layer in self.viewer.layers if layer.name == name), None)

    # ------------------------------------------------------------------ messages

    def set_status(self, text: str) -> None:
        """Show a one-line status in the widget."""
        self.status.value = text

    def announce(self, message: str) -> None:
        """Show a result in the status line and as a notification."""
        self.set_status(message)
        show_info(message)

    def fail(self, error: BaseException, action: str) -> None:
        """Report an error as a notification and in the status line."""
        self.set_status(report_error(error, action))

    def guarded(self, action: str, function: Callable[[], Any]) -> Callable[[], Any]:
        """Wrap a button callback so that any error becomes a notification."""

        def run(*_: Any) -> Any:
            try:
                return function()
            except Exception as error:  # every failure becomes a notification
                self.fail(error, action)
                return None

        return run


class PlotCanvas:
    """A small matplotlib figure for a dock widget, in napari's dark colours.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
    canvas : FigureCanvasQTAgg (a QWidget)
    """

    BACKGROUND = "#262930"
    FOREGROUND = "#d1d2d4"

    def __init__(self, height: float = 2.6) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.0, height), facecolor=self.BACKGROUND, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(int(height * 70))

    def axes(self, ylabel: str, xlabel: str) -> Any:
        """Clear the figure and return fresh axes styled for the dark theme."""
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        self.style(ax, ylabel, xlabel)
        return ax

    def style(self, ax: Any, ylabel: str, xlabel: str | None = None) -> None:
        """Dark-theme colours for an axes."""
        ax.set_facecolor(self.BACKGROUND)
        ax.tick_params(colors=self.FOREGROUND, labelsize=8)
        for spine in ax.spines.values():
            spine.set_color(self.FOREGROUND)
        ax.set_ylabel(ylabel, color=self.FOREGROUND, fontsize=9)
        if xlabel is not None:
            ax.set_xlabel(xlabel, color=self.FOREGROUND, fontsize=9)

    def draw(self) -> None:
        """Redraw now."""
        self.canvas.draw_idle()
