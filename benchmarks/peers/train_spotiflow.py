"""Train a Spotiflow 3D model on simulated training data, with Spotiflow's own training API.

The training volumes come from the project's simulator with domain
randomisation (:func:`napari_kinetochores.simulate.sample_params`, the same
distribution our UNet trains on), from seeds that the held-out benchmark
movies never use. Spotiflow gets the EGFP channel of one frame per volume and
the channel-0 ground truth in voxels (z, y, x). Training is bounded in wall
time (a lightning ``Timer`` callback); at the end Spotiflow optimises its own
probability threshold on the validation volumes (``optimize_threshold``).
The settings, the data seeds and the wall time go to ``benchmark_info.json``
in the model folder.

Usage (inside .venv-peers, see ``make bench-peers``)::

    python -m benchmarks.peers.train_spotiflow [--output runs/spotiflow] [--minutes 20]

(from the repository root).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
TRAIN_SEED = 300_000
"""Training volumes use seeds TRAIN_SEED + i; the held-out movies use 900_000 and up."""
VAL_SEED = 400_000
SHAPE_ZYX = (32, 128, 128)


def make_volumes(
    n: int, first_seed: int, cache: Path | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` simulated (Z, Y, X) float32 volumes and their (N, 3) spot centres in voxels.

    With ``cache`` (a folder), the volumes are kept in ``.npz`` files named by
    seed and shape, so that a second training skips the simulation.
    """
    from napari_kinetochores.simulate import sample_params, simulate_movie

    images, spots = [], []
    for i in range(n):
        seed = first_seed + i
        path = None if cache is None else cache / f"sim_{seed}_{'x'.join(map(str, SHAPE_ZYX))}.npz"
        if path is not None and path.is_file():
            stored = np.load(path)
            images.append(stored["image"])
            spots.append(stored["spots"])
            continue
        params = sample_params(np.random.default_rng(seed), n_frames=1, shape_zyx=SHAPE_ZYX)
        movie = simulate_movie(params, seed=seed)
        truth = movie.points[(movie.points["t"] == 0) & (movie.points["channel"] == 0)]
        images.append(movie.image[0, 0].astype(np.float32))
        spots.append(truth[["z", "y", "x"]].to_numpy(np.float32))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, image=images[-1], spots=spots[-1])
    return images, spots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "runs" / "spotiflow")
    parser.add_argument(
        "--minutes", type=float, default=20.0, help="wall-time limit of the training"
    )
    parser.add_argument("--n-train", type=int, default=96)
    parser.add_argument("--n-val", type=int, default=12)
    parser.add_argument(
        "--epochs", type=int, default=200, help="upper bound; the time limit usually ends it"
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--crop", type=int, nargs=2, default=(32, 64), metavar=("DEPTH", "XY"))
    parser.add_argument("--initial-fmaps", type=int, default=32)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--grid", type=int, default=2)
    parser.add_argument(
        "--cache",
        type=Path,
        default=REPO / "runs" / "spotiflow_data",
        help="folder that keeps the simulated volumes between runs",
    )
    parser.add_argument(
        "--samples-per-epoch",
        type=int,
        default=None,
        help="Spotiflow num_train_samples (default: one pass over the volumes)",
    )
    args = parser.parse_args()

    import lightning.pytorch as pl
    import torch
    from spotiflow.model import Spotiflow, SpotiflowModelConfig

    pl.seed_everything(0, workers=True)
    started = time.perf_counter()
    train_x, train_y = make_volumes(args.n_train, TRAIN_SEED, args.cache)
    val_x, val_y = make_volumes(args.n_val, VAL_SEED, args.cache)
    data_seconds = time.perf_counter() - started
    print(f"simulated {len(train_x)} + {len(val_x)} volumes in {data_seconds:.0f} s", flush=True)

    config = SpotiflowModelConfig(
        is_3d=True,
        in_channels=1,
        grid=(args.grid,) * 3,
        levels=args.levels,
        initial_fmaps=args.initial_fmaps,
        sigma=1.0,
    )
    train_config = {
        "num_epochs": args.epochs,
        "crop_size": args.crop[1],
        "crop_size_depth": args.crop[0],
        "smart_crop": True,
        "batch_size": args.batch_size,
        "optimize_threshold": True,
        "num_train_samples": args.samples_per_epoch,
    }
    model = Spotiflow(config)
    args.output.mkdir(parents=True, exist_ok=True)
    limit = time.strftime("%H:%M:%S", time.gmtime(args.minutes * 60))
    timer = pl.callbacks.Timer(duration=f"00:{limit}", interval="step")
    progress: dict = {}

    class Progress(pl.callbacks.Callback):
        def on_train_end(self, trainer, pl_module):
            progress.update(steps=int(trainer.global_step), epochs=int(trainer.current_epoch))

    fit_started = time.perf_counter()
    model.fit(
        train_x,
        train_y,
        val_x,
        val_y,
        save_dir=str(args.output),
        train_config=train_config,
        device="cpu",
        logger="tensorboard",
        deterministic=False,
        callbacks=[timer, Progress()],
    )
    fit_seconds = time.perf_counter() - fit_started
    info = {
        "spotiflow_config": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(config).items()
        },
        "train_config": train_config,
        "time_limit_min": args.minutes,
        "fit_seconds": fit_seconds,
        "data_seconds": data_seconds,
        "steps_done": progress.get("steps"),
        "epochs_done": progress.get("epochs"),
        "n_train_volumes": len(train_x),
        "n_val_volumes": len(val_x),
        "train_seeds": [TRAIN_SEED, TRAIN_SEED + len(train_x) - 1],
        "val_seeds": [VAL_SEED, VAL_SEED + len(val_x) - 1],
        "volume_shape_zyx": list(SHAPE_ZYX),
        "data": "napari_kinetochores.simulate.sample_params (domain randomised), EGFP channel, frame 0",
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    loaded = Spotiflow.from_folder(str(args.output), map_location="cpu")
    info["prob_thresh"] = [float(v) for v in loaded._prob_thresh]
    (args.output / "benchmark_info.json").write_text(json.dumps(info, indent=2, default=str))
    print(json.dumps(info, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
