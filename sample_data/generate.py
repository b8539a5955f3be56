"""Regenerate the bundled sample movie and its ground truth (deterministic).

Run from the repository root::

    .venv/bin/python sample_data/generate.py

It writes, next to this script:

- ``sample_movie.tif``: a 2-channel (EGFP, mCherry) ImageJ hyperstack,
  4 frames × 26 × 88 × 88 voxels (3.2 MB), uint16, voxel size (z, y, x) =
  (0.30, 0.13, 0.13) µm in the metadata;
- ``sample_movie_gt.csv``: the ground truth of both channels (``channel`` 0
  EGFP, 1 mCherry) with ``pair_id`` and ``track_id``, in the package's point
  CSV schema (``t, z, y, x`` in voxels, then ``z_um, y_um, x_um``).
"""

from __future__ import annotations

from pathlib import Path

from napari_kinetochores.io import write_points, write_tiff
from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams, simulate_movie

HERE = Path(__file__).resolve().parent
SEED = 20240611
PARAMS = SimulationParams(
    n_frames=4,
    shape_zyx=(26, 88, 88),
    voxel_size_um=(0.30, 0.13, 0.13),
    n_pairs=14,
    snr=SNR_LEVELS["moderate"],
    plate_tilt_deg=45.0,
    oscillation_amplitude_um=0.3,
    oscillation_period_frames=8.0,
    n_clutter=1,
)


def main(out_dir: Path = HERE) -> None:
    """Simulate the sample movie and write it with its ground truth to ``out_dir``."""
    movie = simulate_movie(PARAMS, seed=SEED)
    tif = write_tiff(
        out_dir / "sample_movie.tif",
        movie.image,
        PARAMS.voxel_size_um,
        channel_names=["EGFP", "mCherry"],
    )
    csv = write_points(out_dir / "sample_movie_gt.csv", movie.points, PARAMS.voxel_size_um)
    n_kt = int(((movie.points["channel"] == 0) & (movie.points["t"] == 0)).sum())
    print(f"wrote {tif} {movie.image.shape} {movie.image.dtype}")
    print(f"wrote {csv} ({len(movie.points)} rows, {n_kt} kinetochores per frame)")


if __name__ == "__main__":
    main()
