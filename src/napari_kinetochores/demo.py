"""``make demo``: detect kinetochores in the sample movie and show them in napari.

With a display, napari opens on the sample movie with the detections. With
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

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"
SAMPLE_MOVIE = SAMPLE_DIR / "sample_movie.tif"
SAMPLE_GT = SAMPLE_DIR / "sample_movie_gt.csv"


def default_method() -> str:
    """The UNet when a bundled model is installed, else the classical detector."""
    from napari_kinetochores.nn.checkpoint import bundled_model_path

    return "unet" if bundled_model_path(None, must_exist=False) is not None else "classical"


def run_pipeline(output: Path, method: str | None = None):
    """Detect and evaluate on the sample movie; write CSV and metrics into ``output``."""
    from napari_kinetochores.analysis.matching import evaluate_points
    from napari_kinetochores.detection import DetectionOptions, detect_movie
    from napari_kinetochores.io import read_points, read_volume, write_points

    method = method or default_method()
    output.mkdir(parents=True, exist_ok=True)
    volume = read_volume(SAMPLE_MOVIE)
    points = detect_movie(volume, DetectionOptions(method=method))
    write_points(output / "detections.csv", points, volume.voxel_size_um)
    reference = read_points(SAMPLE_GT, voxel_size_um=volume.voxel_size_um)
    evaluation = evaluate_points(points, reference, volume.voxel_size_um)
    (output / "metrics.json").write_text(json.dumps(evaluation.to_dict(), indent=2, default=float))
    o = evaluation.overall
    print(
        f"{method}: {len(points)} detections in {volume.n_frames} frames; "
        f"F1@0.3µm {o['f1@0.3']:.3f}, F1@0.15µm {o['f1@0.15']:.3f}, median error {o['median_nm']:.0f} nm"
    )
    return volume, points, reference, method


def show(volume, points, reference, method: str, headless: bool, output: Path) -> None:
    """Open napari with the movie, the detections and the reference points."""
    import napari
    import numpy as np

    # Headless runs happen under Xvfb: a real (virtual) window renders, a hidden one gives black frames.
    viewer = napari.Viewer(title="napari-kinetochores demo", show=True)
    scale = (1.0, *volume.voxel_size_um)
    colours = ["green", "magenta"]
    for c in range(volume.n_channels):
        data = np.asarray(volume.data[:, c])
        viewer.add_image(
            data,
            name=volume.channel_names[c],
            scale=scale,
            colormap=colours[c % 2],
            blending="additive",
            contrast_limits=(float(np.percentile(data, 1)), float(data.max())),
        )
    kt_ref = reference[reference.get("channel", 0) == 0] if "channel" in reference else reference
    viewer.add_points(
        kt_ref[["t", "z", "y", "x"]].to_numpy(),
        name="ground truth",
        scale=scale,
        size=3,
        face_color="transparent",
        border_color="white",
        symbol="ring",
        out_of_slice_display=True,
    )
    viewer.add_points(
        points[["t", "z", "y", "x"]].to_numpy(),
        name=f"detections ({method})",
        scale=scale,
        size=2,
        face_color="yellow",
        features={"score": points["score"].to_numpy()},
        out_of_slice_display=True,
    )
    try:
        for widget in ("Detect kinetochores", "Correct labels", "Evaluate / match", "Export"):
            viewer.window.add_plugin_dock_widget("napari-kinetochores", widget, tabify=True)
    except Exception as error:  # the demo still works without the widgets
        print(f"(plugin widgets not shown: {error})")
    viewer.dims.ndisplay = 3
    viewer.camera.angles = (0, 0, 90)
    viewer.reset_view()
    if headless:
        path = output / "screenshot.png"
        viewer.window._qt_window.resize(1400, 900)
        viewer.screenshot(str(path), canvas_only=False)
        print(f"wrote {path}")
        viewer.close()
    else:
        napari.run()


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
