"""Benchmark of ``kinetochores batch``: throughput against workers, and memory on one large frame.

Usage::

    .venv/bin/python -m benchmarks.bench_batch [--workers 1 2] [--large-yx 2000] [--quick]

(from the repository root).

1. Throughput: a few simulated two-colour movies (TIFF) are detected with the
   classical method (and the bundled UNet, when ``models/default.pt`` exists)
   on a LocalCluster of 1 and 2 worker processes (one thread each). Reported:
   frames per minute over the whole batch (cluster start excluded), and the
   mean time per frame inside the workers.
2. Large frame: one zarr frame of 61 × Y × X uint16 (default 61 × 2000 × 2000,
   0.49 GB; above ``--max-frame-voxels``) is detected in tiles with halos by
   one worker (a fresh cluster), whose own high-water resident memory (VmHWM,
   ``benchmarks.common.peak_rss_mb``) is read in the worker afterwards.
   Target: peak RSS per worker < 2 GB.

Results go to ``benchmarks/results/batch.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import VOXEL_UM, peak_rss_mb, rss_mb

RESULTS = Path(__file__).resolve().parent / "results" / "batch.json"


def write_movies(
    folder: Path, n_movies: int, n_frames: int, shape_zyx: tuple[int, int, int]
) -> list[Path]:
    """Simulated two-colour movies written as ImageJ TIFFs."""
    from napari_kinetochores.io import write_tiff
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    paths = []
    for i in range(n_movies):
        params = SimulationParams(n_frames=n_frames, shape_zyx=shape_zyx, n_pairs=40)
        movie = simulate_movie(params, seed=i)
        path = folder / f"movie{i}.tif"
        write_tiff(path, movie.image, VOXEL_UM)
        paths.append(path)
    return paths


def make_large_frame(
    path: Path, shape_zyx: tuple[int, int, int], n_spots: int = 3000, seed: int = 0
) -> Path:
    """One frame (T=1, C=1) of noisy background with gaussian spots, as OME-Zarr, written in slabs."""
    import zarr

    from napari_kinetochores.io import write_zarr

    rng = np.random.default_rng(seed)
    z, y, x = shape_zyx
    chunks = (1, 1, z, 256, 256)
    write_zarr(path, np.zeros((1, 1, 1, 1, 1), np.uint16), VOXEL_UM, chunks=chunks)
    array = zarr.open_array(str(path / "0"), mode="r+")
    array.resize((1, 1, z, y, x))
    spots = rng.uniform((2, 4, 4), (z - 2, y - 4, x - 4), size=(n_spots, 3))
    sigma = np.array([0.25, 0.10, 0.10]) / np.array(VOXEL_UM)
    grid = np.stack(np.meshgrid(*[np.arange(-4, 5)] * 3, indexing="ij"), -1)
    slab = 256
    for y0 in range(0, y, slab):
        block = rng.normal(200, 10, (z, min(slab, y - y0), x)).astype(np.float32)
        inside = spots[(spots[:, 1] >= y0 - 5) & (spots[:, 1] < y0 + slab + 5)]
        for centre in inside:
            base = np.round(centre).astype(int)
            offsets = grid + base - np.array([0, y0, 0])
            ok = np.all((offsets >= 0) & (offsets < block.shape), axis=-1)
            d = (grid + base - centre) / sigma
            values = 400 * np.exp(-0.5 * np.sum(d**2, axis=-1))
            idx = offsets[ok]
            np.add.at(block, (idx[:, 0], idx[:, 1], idx[:, 2]), values[ok].astype(np.float32))
        array[0, 0, :, y0 : y0 + block.shape[1], :] = np.clip(block, 0, 65535).astype(np.uint16)
    return path


def start_cluster(n_workers: int):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    return cluster, Client(cluster)


def throughput(
    movies: list[Path], out: Path, method: str, n_workers: int, model: str | None = None
) -> dict:
    """Frames per minute of one batch run on a fresh LocalCluster of ``n_workers``."""
    from napari_kinetochores.batch import run_batch
    from napari_kinetochores.detection import DetectionOptions

    cluster, client = start_cluster(n_workers)
    try:
        # Warm up every worker (imports, model load) on one frame per worker, untimed.
        run_batch(
            movies[:1],
            out.with_name(out.name + "_warmup"),
            DetectionOptions(method=method, model=model),
            client=client,
            frames=list(range(n_workers)),
            progress=False,
            echo=lambda m: None,
        )
        cpu_before = client.run(_cpu_seconds)
        started = time.perf_counter()
        result = run_batch(
            movies,
            out,
            DetectionOptions(method=method, model=model),
            client=client,
            progress=False,
            echo=lambda m: None,
        )
        elapsed = time.perf_counter() - started
        cpu_after = client.run(_cpu_seconds)
    finally:
        client.close()
        cluster.close()
    frames = result.task_results
    assert result.ok, result.failed
    return {
        "method": method,
        "model": model,
        "workers": n_workers,
        "frames": len(frames),
        "wall_s": round(elapsed, 2),
        "frames_per_minute": round(60 * len(frames) / elapsed, 2),
        "mean_frame_s_in_worker": round(float(np.mean([r["seconds"] for r in frames])), 3),
        # CPU time of the workers per frame: what a frame costs, whatever else ran on the machine.
        "cpu_s_per_frame": round(
            sum(cpu_after[w] - cpu_before[w] for w in cpu_after) / len(frames), 3
        ),
    }


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its threads (seconds)."""
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system


def large_frame(path: Path, out: Path, max_frame_voxels: int, core_yx: int) -> dict:
    """Peak worker RSS (its own VmHWM) and time for one large frame processed in tiles by one worker."""
    from napari_kinetochores.batch import run_batch
    from napari_kinetochores.detection import DetectionOptions

    cluster, client = start_cluster(1)
    try:
        idle = client.run(rss_mb)
        cpu_before = client.run(_cpu_seconds)
        started = time.perf_counter()
        result = run_batch(
            [path],
            out,
            DetectionOptions(method="classical"),
            client=client,
            progress=False,
            max_frame_voxels=max_frame_voxels,
            core_yx=core_yx,
            echo=lambda m: None,
        )
        elapsed = time.perf_counter() - started
        cpu_after = client.run(_cpu_seconds)
        peak = client.run(peak_rss_mb)
    finally:
        client.close()
        cluster.close()
    assert result.ok, result.failed
    (task,) = result.task_results
    return {
        "frame_shape_zyx": list(read_shape(path)),
        "frame_gb_uint16": round(float(np.prod(read_shape(path))) * 2 / 1e9, 3),
        "max_frame_voxels": max_frame_voxels,
        "tile_core_yx": core_yx,
        "tiled": task["tiled"],
        "detections": task["n_detections"],
        "frame_s_in_worker": round(task["seconds"], 2),
        "worker_cpu_s": round(sum(cpu_after[w] - cpu_before[w] for w in cpu_after), 2),
        "wall_s": round(elapsed, 2),
        "worker_rss_idle_gb": round(max(idle.values()) * 2**20 / 1e9, 3),
        "worker_rss_peak_gb": round(max(peak.values()) * 2**20 / 1e9, 3),
        "memory": "VmHWM of the worker process",
        "target_peak_gb": 2.0,
    }


def read_shape(path: Path) -> tuple[int, int, int]:
    from napari_kinetochores.io import read_volume

    return read_volume(path).shape[2:]


def _load_text(machine: dict) -> str:
    """What the stored run says about the machine's load (older runs carry a note instead)."""
    if "load_average_at_start" not in machine:
        return machine.get("note", "load not recorded")
    start = ", ".join(f"{v:.1f}" for v in machine["load_average_at_start"])
    end = ", ".join(f"{v:.1f}" for v in machine.get("load_average_at_end", []))
    return f"load average {start} at the start, {end} at the end; above 2 means shared"


def render_markdown(results: dict) -> str:
    """The docs/benchmarks.md section (``<!-- batch:begin -->`` … ``<!-- batch:end -->``)."""
    from benchmarks.common import num, table

    movies = results.get("throughput_movies") or {}
    shape = movies.get("frame_shape_zyx", [])
    rows = []
    for row in results["throughput"]:
        method = "classical" if row["method"] == "classical" else f"UNet (`{row['model']}`)"
        rows.append(
            [
                method,
                str(row["workers"]),
                num(row["frames_per_minute"], 1),
                num(row["mean_frame_s_in_worker"], 2),
                num(row["cpu_s_per_frame"], 2),
            ]
        )
    out = [
        "## Batch and scale-out",
        "",
        f"Generated from `benchmarks/results/batch.json` (`python -m benchmarks.bench_batch`), "
        f"{results['date']}, {results['machine']['cpu_count']} cores "
        f"({_load_text(results['machine'])}). `kinetochores batch` on a `LocalCluster` of "
        "worker processes with one thread each (torch: 2 threads with one worker, 1 each with "
        "two); one task per (movie, frame); cluster start-up and a warm-up frame per worker "
        "are not timed. CPU s / frame: the workers' CPU time per frame.",
        "",
        f"Throughput: {movies.get('n_movies')} movies × {movies.get('frames_per_movie')} frames, "
        f"{movies.get('channels')} channels, {' × '.join(map(str, shape))} voxels per frame, "
        f"{movies.get('format')}.",
        "",
        table(
            ["method", "workers", "frames / minute", "wall s / frame in a worker", "CPU s / frame"],
            rows,
        ),
        "",
    ]
    large = results.get("large_frame")
    if large:
        how = large.get("memory", "sampled every 0.1 s with psutil (before VmHWM)")
        out += [
            f"Large frame: one zarr frame of {' × '.join(map(str, large['frame_shape_zyx']))} "
            f"uint16 ({large['frame_gb_uint16']} GB), above `--max-frame-voxels` "
            f"({large['max_frame_voxels']:,}), so read and detected in tiles (core "
            f"{large['tile_core_yx']} × {large['tile_core_yx']}, z whole) by one worker with "
            f"the classical detector; worker memory: {how}.",
            "",
            table(
                ["", "value"],
                [
                    [
                        "peak RSS of the worker",
                        f"{large['worker_rss_peak_gb']} GB (target < {large['target_peak_gb']} "
                        f"GB: {'met' if large['worker_rss_peak_gb'] < large['target_peak_gb'] else 'NOT met'}); "
                        f"{large['worker_rss_idle_gb']} GB idle",
                    ],
                    [
                        "time for the frame",
                        f"{num(large['frame_s_in_worker'], 1)} s ({num(large['worker_cpu_s'], 1)} CPU s)",
                    ],
                    ["detections", str(large["detections"])],
                ],
            ),
            "",
        ]
    return "\n".join(out)


CORE_HOUR_USD = {"academic SLURM": (0.01, 0.02), "cloud": (0.04, 0.04)}
"""Assumed prices of a CPU core-hour (docs/scaling.md states where they come from)."""
TYPICAL_FRAME_ZYX = (61, 1000, 1000)


def render_cost_markdown(results: dict) -> str:
    """The cost-per-frame section (``<!-- batch_cost:begin -->``): batch.json's CPU seconds scaled by voxels."""
    from benchmarks.common import num, table

    movies = results.get("throughput_movies") or {}
    voxels = float(np.prod(movies["frame_shape_zyx"]))
    scale = float(np.prod(TYPICAL_FRAME_ZYX)) / voxels
    typical = " × ".join(map(str, TYPICAL_FRAME_ZYX))
    rows = []
    for row in results["throughput"]:
        if row["workers"] != 1:
            continue
        cpu_s = row["cpu_s_per_frame"] * scale
        core_h = cpu_s / 3600
        method = "classical" if row["method"] == "classical" else f"UNet (`{row['model']}`)"
        rows.append(
            [
                f"{method}, 1 CPU core",
                f"{num(row['cpu_s_per_frame'], 2)} CPU s",
                f"≈ {num(cpu_s, 0)} CPU s",
                f"{core_h:.4f}",
                *[
                    f"${core_h * low:.5f}" + ("" if low == high else f"–{core_h * high:.5f}")
                    for low, high in CORE_HOUR_USD.values()
                ],
            ]
        )
    return "\n".join(
        [
            "## Cost per frame (estimate)",
            "",
            f"Generated from `benchmarks/results/batch.json` ({results['date']}; the bundled "
            f"models of that date): the workers' CPU seconds per {' × '.join(map(str, movies['frame_shape_zyx']))} "
            f"frame with one worker, scaled by the voxel ratio (× {scale:.1f}) to a typical "
            f"{typical} frame, at the core-hour prices of docs/scaling.md "
            + ", ".join(
                f"{name} ${low:g}" + ("" if low == high else f"–{high:g}")
                for name, (low, high) in CORE_HOUR_USD.items()
            )
            + ". The UNet row is a field full of cells (no tile skipped); a frame with one cell "
            "in an empty field costs less (the detection section's speed table).",
            "",
            table(
                [
                    "method, hardware",
                    "measured per benchmark frame",
                    f"per {typical} frame",
                    "core-hours per frame",
                    *[f"cost per frame, {name}" for name in CORE_HOUR_USD],
                ],
                rows,
            ),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--movies", type=int, default=2)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument(
        "--shape", nargs=3, type=int, default=(40, 512, 512), metavar=("Z", "Y", "X")
    )
    parser.add_argument("--large-z", type=int, default=61)
    parser.add_argument("--large-yx", type=int, default=2000)
    parser.add_argument("--max-frame-voxels", type=int, default=64_000_000)
    parser.add_argument("--tile-core", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    parser.add_argument(
        "--unet-model",
        help="also measure the UNet with this checkpoint (default: the bundled "
        "default model, when it exists)",
    )
    parser.add_argument("--skip-large", action="store_true", help="throughput only")
    parser.add_argument("--large-only", action="store_true", help="the large frame only")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.shape, args.frames, args.large_yx, args.max_frame_voxels = (
            (16, 96, 96),
            2,
            300,
            1_000_000,
        )

    from napari_kinetochores.nn.checkpoint import bundled_model_path

    methods = [("classical", None)]
    unet_model = args.unet_model
    if unet_model is None and bundled_model_path(None, must_exist=False) is not None:
        unet_model = "default"
    if unet_model is not None:
        methods.append(("unet", unet_model))
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": list(os.getloadavg()),
        },
        "throughput": [],
        "large_frame": None,
    }
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        tmp = Path(tmp)
        if args.large_only:
            methods = []
            earlier = json.loads(args.output.read_text()) if args.output.exists() else {}
            report["throughput"] = earlier.get("throughput", [])
            report["throughput_movies"] = earlier.get("throughput_movies")
        else:
            movies = write_movies(tmp, args.movies, args.frames, tuple(args.shape))
            report["throughput_movies"] = {
                "n_movies": args.movies,
                "frames_per_movie": args.frames,
                "channels": 2,
                "frame_shape_zyx": list(args.shape),
                "format": "ImageJ TIFF uint16",
            }
        for method, model in methods:
            for n in args.workers:
                row = throughput(movies, tmp / f"out_{method}_{n}", method, n, model)
                print(json.dumps(row))
                report["throughput"].append(row)
        if not args.skip_large:
            large = make_large_frame(
                tmp / "large.ome.zarr", (args.large_z, args.large_yx, args.large_yx)
            )
            report["large_frame"] = large_frame(
                large, tmp / "out_large", args.max_frame_voxels, args.tile_core
            )
            print(json.dumps(report["large_frame"]))
    if args.skip_large and args.output.exists():  # keep the large-frame result of an earlier run
        report["large_frame"] = json.loads(args.output.read_text()).get("large_frame")
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
