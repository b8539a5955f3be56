"""Library functions added for the napari plugin: in-memory volumes, dataset listing,
snapping to the spot centre, the match table and training from in-memory samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _napari_helpers import quick_config
from napari_kinetochores.analysis.matching import evaluate_points, match_table
from napari_kinetochores.core.refine import snap_points, snap_to_centre
from napari_kinetochores.errors import InputError
from napari_kinetochores.io import (
    list_datasets,
    points_frame,
    read_points,
    read_volume,
    volume_from_array,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "sample_movie.tif"
SAMPLE_GT = ROOT / "sample_data" / "sample_movie_gt.csv"
VOXEL = (0.3, 0.13, 0.13)


def test_volume_from_array_wraps_without_copy():
    data = np.arange(2 * 2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 2, 3, 4, 5)
    volume = volume_from_array(data, VOXEL, ["EGFP", "mCherry"], path="x.tif")
    assert volume.data is data
    assert volume.voxel_size_um == VOXEL and volume.voxel_size_source == "user"
    np.testing.assert_array_equal(volume.frame(1, 1), data[1, 1])
    with pytest.raises(InputError, match="5-D"):
        volume_from_array(data[0], VOXEL)
    with pytest.raises(InputError, match="channel names"):
        volume_from_array(data, VOXEL, ["EGFP"])
    with pytest.raises(InputError, match="> 0"):
        volume_from_array(data, (0, 1, 1))


def test_list_datasets(tmp_path):
    import h5py

    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as handle:
        handle["raw"] = np.zeros((3, 4, 4), np.uint8)
        handle["group/labels"] = np.zeros((3, 4, 4), np.uint8)
    assert sorted(list_datasets(path)) == ["group/labels", "raw"]
    assert list_datasets(SAMPLE) == []
    with pytest.raises(InputError, match="not found"):
        list_datasets(tmp_path / "missing.h5")


def _gaussian_spot(shape, centre, sigma_vox):
    grids = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    r2 = sum(((g - c) / s) ** 2 for g, c, s in zip(grids, centre, sigma_vox, strict=True))
    return np.exp(-0.5 * r2)


def test_snap_to_centre_finds_the_sub_voxel_centre_of_the_nearest_spot():
    shape = (15, 41, 41)
    sigma = (1.0, 0.77, 0.77)
    spot = (7.3, 20.4, 18.6)
    sister = (7.0, 20.0, 26.0)  # ~0.96 µm away along x, and brighter
    volume = (
        100 + 500 * _gaussian_spot(shape, spot, sigma) + 800 * _gaussian_spot(shape, sister, sigma)
    )
    click = (6.0, 21.0, 20.0)  # 0.4 µm off, mostly in z
    snapped = snap_to_centre(volume, click, VOXEL, window_um=0.5)
    error_nm = np.linalg.norm((snapped - spot) * VOXEL) * 1000
    assert error_nm < 15
    # several points at once; a flat window leaves a point where it is
    flat = np.zeros(shape)
    np.testing.assert_allclose(snap_points(flat, [click], VOXEL), [click])
    with pytest.raises(InputError, match="outside"):
        snap_to_centre(volume, (50, 1, 1), VOXEL)
    with pytest.raises(InputError, match="3-D"):
        snap_to_centre(volume[0], (1, 1), VOXEL)


def test_snap_to_centre_on_the_sample_movie_reads_only_the_window():
    volume = read_volume(SAMPLE)
    gt = read_points(SAMPLE_GT, voxel_size_um=volume.voxel_size_um)
    truth = gt[(gt["t"] == 1) & (gt["channel"] == 0)][["z", "y", "x"]].to_numpy()
    rng = np.random.default_rng(0)
    clicks = truth + rng.normal(0, 0.5, truth.shape) * np.array([1.0, 1.0, 1.0])

    class Counting:
        """Array wrapper that records the size of every read."""

        def __init__(self, array):
            self.array, self.shape, self.read = array, array.shape, []

        def __getitem__(self, key):
            out = self.array[key]
            self.read.append(out.size)
            return out

    frame = Counting(volume.data[1, 0])
    snapped = snap_points(
        frame, np.clip(clicks, 0, np.array(frame.shape) - 1), volume.voxel_size_um
    )
    errors_nm = np.linalg.norm((snapped - truth) * volume.voxel_size_um, axis=1) * 1000
    clicks_nm = np.linalg.norm((clicks - truth) * volume.voxel_size_um, axis=1) * 1000
    assert np.median(errors_nm) < 60 < np.median(clicks_nm)
    assert max(frame.read) < 0.05 * np.prod(frame.shape)


def test_match_table_agrees_with_evaluate_points():
    pred = points_frame(
        [[0, 10, 20, 20], [0, 10, 40, 40], [1, 5, 5, 5.5], [1, 9, 9, 9]],
        VOXEL,
        channel=[0, 0, 0, 1],
    )
    gt = points_frame([[0, 10, 20.5, 20], [0, 3, 3, 3], [1, 5, 5, 5]], VOXEL)
    table = match_table(pred, gt, VOXEL, cutoff_um=0.3, channel=0)
    assert table["status"].tolist() == ["TP", "FP", "FN", "TP"]
    assert table["pred_row"].tolist() == [0, 1, -1, 2]
    assert table["ref_row"].tolist() == [0, -1, 1, 2]
    assert table.loc[0, "distance_nm"] == pytest.approx(65.0)
    assert table.loc[3, "dx_nm"] == pytest.approx(65.0)
    np.testing.assert_allclose(table["z_um"], table["z"] * 0.3)
    overall = evaluate_points(pred, gt, VOXEL, cutoffs_um=(0.3,)).overall
    counts = table["status"].value_counts()
    assert (counts["TP"], counts["FP"], counts["FN"]) == (
        overall["tp@0.3"],
        overall["fp@0.3"],
        overall["fn@0.3"],
    )
    empty = match_table(pred.iloc[:0], gt.iloc[:0], VOXEL)
    assert len(empty) == 0 and "status" in empty.columns


def test_train_from_in_memory_samples(tmp_path):
    from napari_kinetochores.training.unet import load_config, train

    volume = read_volume(SAMPLE)
    gt = read_points(SAMPLE_GT, voxel_size_um=volume.voxel_size_um)
    config = load_config(quick_config(tmp_path))
    config.output_dir = str(tmp_path / "run")
    config.epochs, config.steps_per_epoch = 1, 2
    rows = []
    result = train(
        config,
        samples=[(volume.data[:1], gt[gt["t"] < 1], volume.voxel_size_um)],
        progress=False,
        on_epoch=rows.append,
    )
    assert result.best_checkpoint.is_file() and len(rows) == 1
    assert config.data.source == "memory"
    # one labelled frame: nothing to hold out, so the F1 is on simulated movies, and says so
    assert "only one labelled frame" in result.validated_on
    with pytest.raises(InputError, match="no training samples"):
        train(config, samples=[], progress=False)
