"""Shared helpers for the napari plugin tests (not collected by pytest)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "sample_movie.tif"
SAMPLE_GT = ROOT / "sample_data" / "sample_movie_gt.csv"
VOXEL = (0.3, 0.13, 0.13)
SCALE = (1.0, *VOXEL)


def skip_without_display() -> None:
    """Skip a GUI test module when there is no display (run it under ``xvfb-run``)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        pytest.skip("needs a display: run under xvfb-run", allow_module_level=True)


def add_sample(viewer, reference: bool = True):
    """Open the sample movie (and its ground truth) through the plugin's reader."""
    layers = viewer.open(str(SAMPLE), plugin="napari-kinetochores")
    if reference:
        layers += viewer.open(str(SAMPLE_GT), plugin="napari-kinetochores")
    return layers


def messages(kind: str | None = None) -> list[str]:
    """Texts of the napari notifications so far (optionally of one severity)."""
    from napari.utils.notifications import notification_manager

    return [
        str(n.message)
        for n in notification_manager.records
        if kind is None or str(n.severity).lower() == kind
    ]


def random_checkpoint(path: Path) -> Path:
    """A small untrained UNet checkpoint (random weights), instantly made."""
    from napari_kinetochores.nn.checkpoint import ModelInfo, save_checkpoint
    from napari_kinetochores.nn.model import ModelConfig, build_model

    config = ModelConfig(f_maps=8, num_levels=2, num_groups=4, pool_kernels=[[1, 2, 2]])
    return save_checkpoint(
        path, build_model(config), config, ModelInfo(threshold=0.7, tile_shape=(16, 64, 64))
    )


def quick_config(folder: Path) -> Path:
    """``configs/tiny.yaml`` with a smaller validation movie: a training epoch in ~1 s."""
    import yaml

    values = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    values["validation"]["simulation"] = {"shape_zyx": [12, 40, 40], "n_pairs": 4}
    values["validation"]["thresholds"] = [0.5]
    values["tile_shape"] = [12, 40, 40]
    path = Path(folder) / "quick.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def world(layer, rows: np.ndarray) -> np.ndarray:
    """World coordinates (what the viewer shows) of data coordinates of a layer."""
    return np.array([layer.data_to_world(row) for row in np.atleast_2d(rows)])
