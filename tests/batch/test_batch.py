"""Batch detection on Dask distributed (napari_kinetochores.batch).

The cluster tests start a two-process LocalCluster on loopback and close it at
the end of the test. Outputs are compared byte for byte with the CSVs that
``kinetochores detect`` writes for the same movies and options.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_kinetochores.cli import main
from napari_kinetochores.detection import DetectionOptions, iter_detections
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import read_volume, write_tiff, write_zarr
from napari_kinetochores.simulate import SimulationParams, simulate_movie

VOXEL = (0.3, 0.13, 0.13)
MOVIES = ("cell_a.tif", "cell_b.ome.tif", "cell_c.zarr")


def _write_movie(path: Path, seed: int) -> None:
    movie = simulate_movie(
        SimulationParams(n_frames=3, shape_zyx=(16, 64, 64), n_pairs=6), seed=seed
    )
    if path.name.endswith(".zarr"):
        write_zarr(path, movie.image, VOXEL, chunks=(1, 1, 8, 32, 32))
    else:
        write_tiff(path, movie.image, VOXEL, ome=path.name.endswith(".ome.tif"))


@pytest.fixture(scope="module")
def movies(tmp_path_factory):
    """Three small two-colour movies (3 frames, 16 × 64 × 64; one zarr) and a corrupt one."""
    folder = tmp_path_factory.mktemp("movies")
    for seed, name in enumerate(MOVIES):
        _write_movie(folder / name, seed)
    (folder / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 20)  # a truncated TIFF
    return folder


@pytest.fixture(scope="module")
def reference(movies, tmp_path_factory):
    """``kinetochores detect --method classical`` output of each movie: stem -> CSV path."""
    folder = tmp_path_factory.mktemp("reference")
    out = {}
    for name in MOVIES:
        stem = name.split(".")[0]
        out[stem] = folder / f"{stem}.csv"
        assert (
            main(
                [
                    "detect",
                    str(movies / name),
                    "-o",
                    str(out[stem]),
                    "--method",
                    "classical",
                    "--quiet",
                ]
            )
            == 0
        )
    return out


@pytest.fixture
def cluster_factory():
    """Start LocalClusters (2 worker processes on loopback); all are closed when the test ends."""
    from distributed import LocalCluster

    started = []

    def start():
        cluster = LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        started.append(cluster)
        return cluster

    try:
        yield start
    finally:
        for cluster in started:
            cluster.close()
        assert all(c.status.name == "closed" for c in started)


def _assert_same_csvs(output_dir: Path, reference: dict[str, Path]) -> None:
    for stem, ref in reference.items():
        produced = output_dir / f"{stem}.csv"
        assert produced.read_bytes() == ref.read_bytes(), stem
        pd.testing.assert_frame_equal(pd.read_csv(produced), pd.read_csv(ref), check_exact=True)


def _classical_map(path: Path, t: int) -> np.ndarray:
    """The classical score map (DoG / noise) of frame t, channel 0, computed in process."""
    from napari_kinetochores.detection.tiling import detect_classical_tiled

    volume = read_volume(path)
    shape = volume.shape[2:]
    out = np.zeros((1, *shape), np.float32)

    def keep(region, block):
        out[(slice(None), *region)] = block

    detect_classical_tiled(volume, t, 0, core_shape=(None, None, None), map_writer=keep)
    return out


def _tiny_checkpoint(path: Path) -> Path:
    """A small UNet with random weights, saved as a checkpoint (no training needed)."""
    import torch

    from napari_kinetochores.nn.checkpoint import ModelInfo, save_checkpoint
    from napari_kinetochores.nn.model import ModelConfig, build_model

    torch.manual_seed(0)
    config = ModelConfig(f_maps=8, num_levels=2, num_groups=4, pool_kernels=[[1, 2, 2]])
    info = ModelInfo(voxel_size_um=VOXEL, threshold=0.5, tile_shape=(16, 48, 48))
    return save_checkpoint(path, build_model(config), config, info)


# --------------------------------------------------------------------------- cluster


def test_batch_equals_detect_on_a_cluster(movies, reference, cluster_factory, tmp_path, capsys):
    from distributed import Client

    from napari_kinetochores.batch import detect_on_cluster, run_batch

    cluster = cluster_factory()
    address = cluster.scheduler_address
    out = tmp_path / "out"
    inputs = [str(movies / "cell_a.tif"), str(movies / "*.ome.tif"), str(movies / "cell_c.zarr")]
    code = main(
        [
            "batch",
            *inputs,
            str(movies / "broken.tif"),
            "-o",
            str(out),
            "--scheduler",
            address,
            "--method",
            "classical",
            "--save-probabilities",
            "--quiet",
        ]
    )
    assert code == 1  # the broken movie is reported...
    _assert_same_csvs(out, reference)  # ...and the others complete, equal to `detect`
    assert "Dask dashboard: http" in capsys.readouterr().out

    manifest = json.loads((out / "manifest.json").read_text())
    status = {Path(m["input"]).name: m for m in manifest["movies"]}
    assert (
        status["broken.tif"]["status"] == "failed" and "broken.tif" in status["broken.tif"]["error"]
    )
    for name in MOVIES:
        entry = status[name]
        assert entry["status"] == "done" and entry["shape_tczyx"] == [3, 2, 16, 64, 64]
        assert [f["status"] for f in entry["frames"]] == ["done"] * 3
        assert entry["n_detections"] == len(pd.read_csv(reference[entry["stem"]]))
    assert manifest["parameters"]["options"]["method"] == "classical"
    assert manifest["model"] is None and manifest["versions"]["distributed"]

    # Score maps: OME-Zarr, chunked per frame, equal to an in-process computation.
    maps = read_volume(out / "cell_c.probabilities.ome.zarr")
    assert maps.shape == (3, 1, 16, 64, 64) and maps.data.chunksize[0] == 1
    np.testing.assert_array_equal(maps.frame(2), _classical_map(movies / "cell_c.zarr", 2))

    with Client(cluster) as client:
        # Large-frame path: every frame above the limit, cut in 24 × 24 tiles -> same rows.
        tiled = run_batch(
            [movies / n for n in MOVIES],
            tmp_path / "tiled",
            DetectionOptions(method="classical"),
            client=client,
            max_frame_voxels=10_000,
            core_yx=24,
            progress=False,
            echo=lambda m: None,
        )
        assert tiled.ok and all(r["tiled"] for r in tiled.task_results)
        _assert_same_csvs(tmp_path / "tiled", reference)

        # The UNet path: the model is loaded once per worker, and rows equal `detect`'s.
        model = _tiny_checkpoint(tmp_path / "tiny.pt")
        unet_ref = tmp_path / "unet_ref.csv"
        args = ["--method", "unet", "--model", str(model), "--threshold", "0.5"]
        assert (
            main(["detect", str(movies / "cell_a.tif"), "-o", str(unet_ref), *args, "--quiet"]) == 0
        )
        unet = run_batch(
            [movies / "cell_a.tif", movies / "cell_b.ome.tif"],
            tmp_path / "unet",
            DetectionOptions(method="unet", model=str(model), threshold=0.5),
            client=client,
            save_probabilities=True,
            progress=False,
            echo=lambda m: None,
        )
        assert unet.ok and len(unet.task_results) == 6
        assert {r["model_loads"] for r in unet.task_results} == {1}  # once per worker, not per task
        assert (tmp_path / "unet" / "cell_a.csv").read_bytes() == unet_ref.read_bytes()
        assert (
            unet.manifest["model"]["sha256"]
            == __import__("hashlib").sha256(model.read_bytes()).hexdigest()
        )
        probabilities = read_volume(tmp_path / "unet" / "cell_a.probabilities.ome.zarr")
        assert probabilities.shape == (3, 1, 16, 64, 64)
        assert 0 <= float(probabilities.data.min()) and float(probabilities.data.max()) <= 1

    # napari's "all frames on a cluster": the table detect_movie gives.
    seen = []
    table = detect_on_cluster(
        movies / "cell_b.ome.tif",
        DetectionOptions(method="classical"),
        address,
        progress_callback=lambda done, total: seen.append((done, total)),
    )
    expected = pd.concat(
        [
            t
            for _, t in iter_detections(
                read_volume(movies / "cell_b.ome.tif"), DetectionOptions(method="classical")
            )
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(table, expected, check_exact=True)
    assert seen[-1] == (3, 3)


def test_killed_worker_then_resume_gives_complete_outputs(
    movies, reference, cluster_factory, tmp_path
):
    import cloudpickle
    import dask
    from distributed import Client

    import _batch_helpers
    from napari_kinetochores.batch import run_batch

    # The first frame task kills its worker process mid-commit (leaving a torn
    # temporary file). With no retries allowed, the frames that worker held
    # fail in this run; the others complete.
    cloudpickle.register_pickle_by_value(_batch_helpers)
    out = tmp_path / "out"
    inputs = [movies / n for n in MOVIES]
    options = DetectionOptions(method="classical")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = cluster_factory()
    with Client(cluster) as client:
        client.register_plugin(_batch_helpers.KillOnFirstCommit(tmp_path / "killed-once"))
        first = run_batch(
            inputs,
            out,
            options,
            client=client,
            save_probabilities=True,
            progress=False,
            echo=lambda m: None,
        )
        assert (tmp_path / "killed-once").exists()
        assert not first.ok
        manifest = json.loads((out / "manifest.json").read_text())
        broken = [m for m in manifest["movies"] if m["status"] == "incomplete"]
        assert len(broken) == len(first.failed) >= 1
        failed = [(m["stem"], f) for m in broken for f in m["frames"] if f["status"] == "failed"]
        assert 1 <= len(failed) < 9 and all("KilledWorker" in f["error"] for _, f in failed)
        for movie in broken:
            assert not (out / f"{movie['stem']}.csv").exists()  # no partial movie table
        torn = list((out / ".parts").glob("*/.*.tmp"))
        assert len(torn) == 1  # the torn write, which resume ignores

        with pytest.raises(InputError, match="other parameters"):
            run_batch(
                inputs,
                out,
                DetectionOptions(method="classical", threshold=5.0),
                client=client,
                resume=True,
                progress=False,
                echo=lambda m: None,
            )

        second = run_batch(
            inputs,
            out,
            options,
            client=client,
            save_probabilities=True,
            resume=True,
            progress=False,
            echo=lambda m: None,
        )
    assert second.ok and second.n_submitted == len(failed) and second.n_skipped == 9 - len(failed)
    assert not list((out / ".parts").glob("*/.*.tmp"))  # stale temporary files are cleared
    _assert_same_csvs(out, reference)
    for stem, frame in failed:  # the score maps of the redone frames are whole and right
        name = next(n for n in MOVIES if n.startswith(stem))
        maps = read_volume(out / f"{stem}.probabilities.ome.zarr")
        np.testing.assert_array_equal(
            maps.frame(frame["t"]), _classical_map(movies / name, frame["t"])
        )
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(m["status"] == "done" for m in manifest["movies"])


# --------------------------------------------------------------------------- no cluster


def test_expand_inputs(tmp_path):
    from napari_kinetochores.batch import expand_inputs, movie_stem

    (tmp_path / "a").mkdir()
    for name in ("a/x.tif", "a/y.ome.tif", "a/notes.txt", "z.npy"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "a" / "w.zarr").mkdir()
    found = expand_inputs([tmp_path / "a", str(tmp_path / "*.npy"), tmp_path / "a" / "x.tif"])
    assert [p.name for p in found] == ["w.zarr", "x.tif", "y.ome.tif", "z.npy"]
    assert [movie_stem(p) for p in found] == ["w", "x", "y", "z"]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.tif").write_bytes(b"")
    with pytest.raises(InputError, match="both write x.csv"):
        expand_inputs([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(InputError, match="matches no movie"):
        expand_inputs([str(tmp_path / "*.h5")])
    with pytest.raises(InputError, match="not found"):
        expand_inputs([tmp_path / "missing.tif"])


def test_expand_inputs_skips_the_outputs_of_batch(tmp_path):
    from napari_kinetochores.batch import expand_inputs

    folder = tmp_path / "data"
    (folder / "cell.zarr").mkdir(parents=True)
    (folder / "cell.probabilities.ome.zarr").mkdir()  # a batch output beside its movie
    (folder / "out" / "cell.probabilities.ome.zarr").mkdir(parents=True)
    (folder / "cell.csv").write_text("t,z,y,x\n")
    (folder / "manifest.json").write_text("{}")
    names = lambda found: [p.relative_to(folder).as_posix() for p in found]  # noqa: E731
    assert names(expand_inputs([folder], output_dir=folder)) == ["cell.zarr"]
    pattern = str(folder / "**" / "*.zarr")
    assert names(expand_inputs([pattern], output_dir=folder / "out")) == ["cell.zarr"]
    with pytest.raises(InputError, match="output of this batch"):
        expand_inputs([folder / "out" / "cell.probabilities.ome.zarr"], output_dir=folder / "out")


def test_resume_keys_parts_by_the_movie_and_the_options(movies, cluster_factory, tmp_path):
    """A movie of the same name elsewhere, a changed movie, or other options (even with the
    manifest gone) never reuse parts; the same movie and options do."""
    import shutil

    from distributed import Client

    from napari_kinetochores.batch import run_batch

    first, second = tmp_path / "first", tmp_path / "second"
    for folder, source in ((first, "cell_a.tif"), (second, "cell_b.ome.tif")):
        folder.mkdir()
        shutil.copy(movies / source, folder / "cell.tif")
    out = tmp_path / "out"
    classical = DetectionOptions(method="classical")

    def run(movie, options=classical, **kwargs):
        return run_batch(
            [movie], out, options, client=client, progress=False, echo=lambda m: None, **kwargs
        )

    def detect(movie, *options):
        expected = tmp_path / "expected.csv"
        argv = ["detect", str(movie), "-o", str(expected), "--method", "classical", "--quiet"]
        assert main([*argv, *options]) == 0
        return expected.read_bytes()

    with Client(cluster_factory()) as client:
        assert run(first / "cell.tif").n_submitted == 3
        again = run(first / "cell.tif", resume=True)
        assert (again.n_submitted, again.n_skipped) == (0, 3)
        other = run(second / "cell.tif", resume=True)  # same stem, another movie
        assert (other.n_submitted, other.n_skipped) == (3, 0)
        assert (out / "cell.csv").read_bytes() == detect(second / "cell.tif")

        shutil.copy(movies / "cell_a.tif", second / "cell.tif")  # the movie changed in place
        changed = run(second / "cell.tif", resume=True)
        assert (changed.n_submitted, changed.n_skipped) == (3, 0)
        assert (out / "cell.csv").read_bytes() == detect(first / "cell.tif")

        (out / "manifest.json").unlink()  # without a manifest, the parts still carry their key
        stricter = DetectionOptions(method="classical", threshold=8.0)
        unchecked = run(second / "cell.tif", stricter, resume=True)
        assert (unchecked.n_submitted, unchecked.n_skipped) == (3, 0)
        assert (out / "cell.csv").read_bytes() == detect(second / "cell.tif", "--threshold", "8")
        (out / "manifest.json").unlink()
        same = run(second / "cell.tif", stricter, resume=True)
        assert (same.n_submitted, same.n_skipped) == (0, 3)

        huge = run(first / "cell.tif", frames=range(0, 10**9))  # never listed out
        assert not huge.ok and huge.manifest["parameters"]["frames"] == "0:1000000000"
        error = huge.manifest["movies"][0]["error"]
        assert "frames 3..999999999 are outside the movie (0..2)" in error and len(error) < 300


def test_output_folder_inside_the_input_folder_is_not_read_back(movies, cluster_factory, tmp_path):
    import shutil

    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(movies / "cell_a.tif", folder / "cell_a.tif")
    shutil.copytree(movies / "cell_c.zarr", folder / "cell_c.zarr")
    cluster = cluster_factory()
    argv = ["batch", str(folder), "-o", str(folder), "--method", "classical", "--quiet"]
    argv += ["--save-probabilities", "--scheduler", cluster.scheduler_address]
    for _ in range(2):  # the second run sees the first one's outputs in its input folder
        assert main(argv) == 0
        manifest = json.loads((folder / "manifest.json").read_text())
        assert sorted(Path(m["input"]).name for m in manifest["movies"]) == [
            "cell_a.tif",
            "cell_c.zarr",
        ]
    maps = read_volume(folder / "cell_c.probabilities.ome.zarr")
    np.testing.assert_array_equal(maps.frame(1), _classical_map(movies / "cell_c.zarr", 1))
    nested = ["batch", str(folder / "**" / "*.zarr"), "-o", str(folder / "out"), *argv[4:]]
    for _ in range(2):
        assert main(nested) == 0
        manifest = json.loads((folder / "out" / "manifest.json").read_text())
        assert [Path(m["input"]).name for m in manifest["movies"]] == ["cell_c.zarr"]
