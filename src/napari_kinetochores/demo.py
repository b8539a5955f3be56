"""``make demo``: detect kinetochores in the sample movie and show them in napari.

With a display, napari opens on the sample movie with the detections, on a 2D
z slice through the metaphase plate, with the Detect widget in front. With
``--headless`` the same pipeline runs and writes the detections, the metrics
against the sample's ground truth, and a screenshot of the viewer.

Usage::

    python -m napari_kinetochores.demo [--headless] [--output DIR] [--method unet|classical]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: The plugin's docks the demo opens, as tabs; the last (Detect) is shown in front.
DOCKS = ("Correct labels", "Evaluate / match", "Export", "Detect kinetochores")


def default_method() -> str:
    """The UNet when a bundled model is installed, else the classical detector."""
    from napari_kinetochores.nn.checkpoint import bundled_model_path

    return "unet" if bundled_model_path(None, must_exist=False) is not None else "classical"


def run_pipeline(output: Path, method: str | None = None):
    """Detect and evaluate on the sample movie; write CSV and metrics into ``output``."""
    from napari_kinetochores._napari.io import sample_files
    from napari_kinetochores.analysis.matching import evaluate_points
    from napari_kinetochores.detection import DetectionOptions, detect_movie
    from napari_kinetochores.errors import InputError
    from napari_kinetochores.io import read_points, read_volume, write_points

    files = sample_files()
    if files is None:
        raise InputError("the sample movie is not installed (sample_data/ of a source checkout)")
    movie, truth = files
    method = method or default_method()
    output.mkdir(parents=True, exist_ok=True)
    volume = read_volume(movie)
    points = detect_movie(volume, DetectionOptions(method=method))
    write_points(output / "detections.csv", points, volume.voxel_size_um)
    reference = read_points(truth, voxel_size_um=volume.voxel_size_um)
    evaluation = evaluate_points(points, reference, volume.voxel_size_um)
    (output / "metrics.json").write_text(json.dumps(evaluation.to_dict(), indent=2, default=float))
    o = evaluation.overall
    print(
        f"{method}: {len(points)} detections in {volume.n_frames} frames; "
        f"F1@0.3µm {o['f1@0.3']:.3f}, F1@0.15µm {o['f1@0.15']:.3f}, median error {o['median_nm']:.0f} nm"
    )
    return volume, points, reference, method


def show(volume, points, reference, method: str, headless: bool, output: Path) -> None:
    """Open napari on a z slice of the movie with the detections, the reference and the docks."""
    import napari

    # Headless runs happen under Xvfb: a real (virtual) window renders, a hidden one gives black frames.
    viewer = napari.Viewer(title="napari-kinetochores demo", show=True)
    fill_viewer(viewer, volume, points, reference, method)
    if headless:
        path = output / "screenshot.png"
        viewer.window._qt_window.resize(1400, 900)
        viewer.screenshot(str(path), canvas_only=False)
        print(f"wrote {path}")
        viewer.close()
    else:
        napari.run()


def fill_viewer(viewer, volume, points, reference, method: str) -> None:
    """The movie, the reference (kinetochores) and the detections, the docks, a plate slice."""
    from napari.layers import Layer

    from napari_kinetochores._napari.io import points_layer, volume_layers

    for item in volume_layers(volume):
        viewer.add_layer(Layer.create(*item))
    kinetochores = reference[reference["channel"] == 0] if "channel" in reference else reference
    for table, name, is_reference in (
        (kinetochores, "ground truth", True),
        (points, f"detections ({method})", False),
    ):
        viewer.add_layer(
            Layer.create(*points_layer(table, volume.voxel_size_um, name, is_reference))
        )
    try:
        for name in DOCKS:
            viewer.window.add_plugin_dock_widget("napari-kinetochores", name, tabify=True)
    except Exception as error:  # the demo still works without the widgets
        print(f"(plugin widgets not shown: {error})")
    show_plate_slice(viewer, points, volume.voxel_size_um)


def show_plate_slice(viewer, points, voxel_size_um) -> int:
    """Show frame 0 in 2D at the z plane holding most of its points; returns that plane."""
    import numpy as np

    viewer.dims.ndisplay = 2
    first = points[np.round(points["t"]) == 0]
    plane = int(np.bincount(np.round(first["z"]).astype(int)).argmax()) if len(first) else 0
    viewer.dims.set_point(0, 0)
    viewer.dims.set_point(1, plane * float(voxel_size_um[0]))
    viewer.reset_view()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari 0.9
    camera.zoom *= 1.25  # the spots, not the empty margin
    return plane


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--headless", action="store_true", help="no window; write outputs and a screenshot"
    )
    parser.add_argument("--output", type=Path, default=Path("demo_out"))
    parser.add_argument("--method", choices=("unet", "classical"))
    args = parser.parse_args(argv)
    volume, points, reference, method = run_pipeline(args.output, args.method)
    print(f"wrote {args.output / 'detections.csv'} and {args.output / 'metrics.json'}")
    show(volume, points, reference, method, args.headless, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
