"""Detection backends and the registry that picks one by name.

The registry is the only place outside the widgets that branches on a
detection method's name, in the way pytorch-3dunet's ``get_model`` picks a
class: ``get_detector(options)`` returns a loaded :class:`~.base.Detector`.
Backends are imported when asked for, so ``import napari_kinetochores`` loads
neither torch nor TensorFlow.

==========  ==========================================  =====================
name        backend                                     needs
==========  ==========================================  =====================
unet        :class:`.unet.UNetDetector`                 torch, pytorch3dunet
classical   :class:`.classical.ClassicalDetector`       numpy, scipy
stardist    :class:`.stardist.StarDistDetector`         the ``[stardist]`` extra
==========  ==========================================  =====================
"""

from __future__ import annotations

import importlib

from napari_kinetochores.errors import InputError

_REGISTRY: dict[str, str] = {
    "unet": "napari_kinetochores.backends.unet:UNetDetector",
    "classical": "napari_kinetochores.backends.classical:ClassicalDetector",
    "stardist": "napari_kinetochores.backends.stardist:StarDistDetector",
}

METHODS: tuple[str, ...] = tuple(_REGISTRY)
"""Names of the detection methods, the default (``unet``) first."""


def check_method(method: str) -> None:
    """Fail with the list of methods when ``method`` is not one of them."""
    if method not in _REGISTRY:
        raise InputError(f"unknown method {method!r}; choose one of {METHODS}")


def detector_class(method: str) -> type:
    """The backend class registered under ``method`` (imported on first use)."""
    check_method(method)
    module_name, class_name = _REGISTRY[method].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_detector(options):
    """Load the detector that a :class:`~napari_kinetochores.detection.DetectionOptions` asks for.

    Examples
    --------
    >>> from napari_kinetochores.detection import DetectionOptions
    >>> get_detector(DetectionOptions(method="classical")).method
    'classical'
    """
    return detector_class(options.method).from_options(options)


__all__ = ["METHODS", "check_method", "detector_class", "get_detector"]
