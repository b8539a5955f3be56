"""Qt building blocks shared by the dock widgets: base class, layer pickers, messages.

Every widget is a :class:`KinetochoreWidget`: a ``QWidget`` holding a magicgui
form, a status line and optional extra Qt parts. Errors never escape to Qt:
they become napari notifications (:func:`report_error`), so bad input cannot
freeze the viewer or lose a layer.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_kinetochores.errors import InputError

__all__ = [
    "KinetochoreWidget",
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
        layout = QVBoxLayout()
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.form.native)
        layout.addWidget(self.status.native)
        self.setLayout(layout)
        events = self.viewer.layers.events
        for name in ("inserted", "removed", "reordered"):
            getattr(events, name).connect(self.reset_choices)

    # ------------------------------------------------------------------ layers

    def layer_combo(self, label: str, kind: str, nullable: bool = False, **kwargs: Any) -> ComboBox:
        """A combo box listing the viewer's layers of ``kind`` ("image" or "points")."""

        def choices(_widget: Any) -> list[tuple[str, Any]]:
            return [
                (layer.name, layer)
                for layer in self.viewer.layers
                if layer.__class__.__name__.lower() == kind
            ]

        return ComboBox(label=label, choices=choices, nullable=nullable, **kwargs)

    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer lists (called when layers are added, removed or moved)."""
        try:
            self.form.reset_choices()
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
