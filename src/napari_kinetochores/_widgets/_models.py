"""The models a user can pick in the Detect and Train widgets.

Bundled models (``models/*.pt`` in the package, ``default`` first even before
it is installed, so that choosing it gives the library's clear error), the
models trained in this session by the Train widget, and a file chosen by the
user. :data:`registry` tells open widgets when a new model was trained.
"""

from __future__ import annotations

from pathlib import Path

from psygnal import Signal

FROM_FILE = "model file…"
MODEL_FILE_FILTER = "*.pt *.zip"
"""UNet model files: checkpoints and bioimage.io packages (:mod:`napari_kinetochores.nn.bioimageio`)."""


class ModelRegistry:
    """Checkpoints trained (and packages exported) in this napari session (newest last)."""

    changed = Signal()

    def __init__(self) -> None:
        self.trained: list[Path] = []

    def add(self, path: str | Path) -> str:
        """Register a trained checkpoint; returns its label in the model lists."""
        path = Path(path).resolve()
        if path not in self.trained:
            self.trained.append(path)
        self.changed.emit()
        return label_of(path)


registry = ModelRegistry()


def label_of(path: Path) -> str:
    """How a trained model is listed: ``trained: <folder>/<file>`` (``bioimage.io: …`` for a package)."""
    kind = "bioimage.io" if path.suffix == ".zip" else "trained"
    return f"{kind}: {path.parent.name}/{path.name}"


def bundled_names() -> list[str]:
    """Names of the bundled models, ``default`` first (listed even when not installed)."""
    from napari_kinetochores.nn.checkpoint import BUNDLED_DIR, DEFAULT_MODEL_NAME

    names = sorted(p.stem for p in BUNDLED_DIR.glob("*.pt"))
    return [DEFAULT_MODEL_NAME] + [n for n in names if n != DEFAULT_MODEL_NAME]


def model_choices(include_file: bool = True) -> list[tuple[str, str]]:
    """(label, value) pairs: bundled names, trained checkpoints, then "model file…"."""
    choices = [(name, name) for name in bundled_names()]
    choices += [(label_of(p), str(p)) for p in reversed(registry.trained)]
    if include_file:
        choices.append((FROM_FILE, FROM_FILE))
    return choices
