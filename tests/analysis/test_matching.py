"""Tests of one-to-one matching and detection metrics in physical units."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from napari_kinetochores.analysis.matching import (
    MatchResult,
    error_summary,
    evaluate_points,
    localisation_errors_nm,
    match_points,
    match_table,
    matched_export_table,
)
from napari_kinetochores.errors import InputError

VOXEL = (0.3, 0.13, 0.13)


def _table(coords_tzyx, voxel_size_um=VOXEL, **features) -> pd.DataFrame:
    """Point table in the project schema (points_frame when available)."""
    coords = np.asarray(coords_tzyx, dtype=float).reshape(-1, 4)
    try:
        from napari_kinetochores.io.points import points_frame
    except ImportError:
        table = pd.DataFrame(coords, columns=["t", "z", "y", "x"])
        for name, values in features.items():
            table[name] = values
        return table
    return points_frame(coords, voxel_size_um, **features)


# --------------------------------------------------------------------------
# optimality against brute force


def _brute_force(pred_um: np.ndarray, gt_um: np.ndarray, cutoff: float) -> tuple[int, float]:
    """Best (pairs, summed distance): most pairs within cutoff, then least distance."""
    dist = np.sqrt(((pred_um[:, None, :] - gt_um[None, :, :]) ** 2).sum(-1))
    allowed = dist <= cutoff
    best = (0, 0.0)

    def visit(i: int, used: int, count: int, total: float) -> None:
        nonlocal best
        if i == len(pred_um):
            if count > best[0] or (count == best[0] and total < best[1]):
                best = (count, total)
            return
        visit(i + 1, used, count, total)  # prediction i stays unmatched
        for j in range(len(gt_um)):
            if allowed[i, j] and not used & (1 << j):
                visit(i + 1, used | (1 << j), count + 1, total + dist[i, j])

    visit(0, 0, 0, 0.0)
    return best


def _check_valid(result: MatchResult, pred, gt, voxel, cutoff) -> None:
    """A result is a one-to-one matching within the cutoff with consistent distances."""
    assert result.pred_indices.shape == result.gt_indices.shape == result.distances_um.shape
    assert len(set(result.pred_indices.tolist())) == result.tp
    assert len(set(result.gt_indices.tolist())) == result.tp
    if result.tp:
        offsets = (pred[result.pred_indices] - gt[result.gt_indices]) * np.asarray(voxel)
        np.testing.assert_allclose(result.offsets_um, offsets, atol=1e-12)
        np.testing.assert_allclose(result.distances_um, np.linalg.norm(offsets, axis=1), atol=1e-12)
        assert np.all(result.distances_um <= cutoff + 1e-12)
    assert result.n_pred == len(pred) and result.n_gt == len(gt)
    assert result.fp == len(pred) - result.tp and result.fn == len(gt) - result.tp


def test_matching_is_optimal_against_brute_force():
    rng = np.random.default_rng(12345)
    n_cases = 0
    nontrivial = 0
    for case in range(300):
        n, m = rng.integers(0, 7, size=2)
        voxel = rng.uniform(0.05, 0.5, size=3)
        cutoff = float(rng.uniform(0.1, 0.6))
        # A small box (a few cutoffs wide) so that candidates compete for partners.
        extent_um = rng.uniform(0.3, 1.2, size=3)
        pred = rng.uniform(0, 1, (n, 3)) * extent_um / voxel
        gt = rng.uniform(0, 1, (m, 3)) * extent_um / voxel
        if case % 5 == 0:  # integer voxel positions give ties and zero distances
            pred, gt = np.round(pred), np.round(gt)
        result = match_points(pred, gt, voxel, cutoff)
        _check_valid(result, pred, gt, voxel, cutoff)
        best_count, best_total = _brute_force(pred * voxel, gt * voxel, cutoff)
        assert result.tp == best_count, f"case {case}: {result.tp} pairs, optimum {best_count}"
        assert float(result.distances_um.sum()) == pytest.approx(best_total, abs=1e-9), case
        n_cases += 1
        nontrivial += best_count >= 2
    assert n_cases >= 200
    assert nontrivial >= 50  # the cases really exercise the assignment


def test_greedy_nearest_neighbour_is_not_enough():
    """A chain where greedy nearest matching loses a pair; the optimum keeps two."""
    pred = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 2.5]])
    gt = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.5]])
    result = match_points(pred, gt, (1.0, 1.0, 1.0), cutoff_um=1.2)
    assert result.tp == 2
    assert sorted(zip(result.pred_indices.tolist(), result.gt_indices.tolist(), strict=True)) == [
        (0, 0),
        (1, 1),
    ]
    np.testing.assert_allclose(result.distances_um, [1.0, 1.0])


def test_ties_minimise_summed_distance():
    """Two pairs possible either way; the smaller total distance wins."""
    pred = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 10.0]])
    gt = np.array([[0.0, 0.0, 9.0], [0.0, 0.0, 1.0]])
    result = match_points(pred, gt, (1.0, 1.0, 1.0), cutoff_um=20.0)
    assert result.tp == 2
    assert dict(zip(result.pred_indices.tolist(), result.gt_indices.tolist(), strict=True)) == {
        0: 1,
        1: 0,
    }
    assert result.distances_um.sum() == pytest.approx(2.0)


# --------------------------------------------------------------------------
# known values


def test_one_to_one_two_predictions_near_one_reference():
    gt = np.array([[5.0, 20.0, 20.0]])
    pred = np.array([[5.0, 20.5, 20.0], [5.0, 20.0, 19.0]])
    result = match_points(pred, gt, VOXEL)
    assert (result.tp, result.fp, result.fn) == (1, 1, 0)
    assert result.pred_indices.tolist() == [0]  # 0.065 µm beats 0.13 µm
    assert result.distances_um[0] == pytest.approx(0.5 * 0.13)
    assert result.precision == pytest.approx(0.5)
    assert result.recall == pytest.approx(1.0)
    assert result.f1 == pytest.approx(2 / 3)


def test_cutoff_is_in_physical_units():
    gt = np.array([[10.0, 30.0, 30.0]])
    pred = gt + np.array([[1.0, 0.0, 0.0]])  # one voxel in z = 0.3 µm
    assert match_points(pred, gt, VOXEL, cutoff_um=0.3).tp == 1
    assert match_points(pred, gt, VOXEL, cutoff_um=0.29).tp == 0
    # The same voxel offset in x is only 0.13 µm.
    pred_x = gt + np.array([[0.0, 0.0, 1.0]])
    assert match_points(pred_x, gt, VOXEL, cutoff_um=0.15).tp == 1
    assert match_points(pred_x, gt, VOXEL, cutoff_um=0.12).tp == 0


def test_distances_and_offsets_in_um():
    gt = np.array([[10.0, 30.0, 30.0], [20.0, 60.0, 60.0]])
    pred = gt + np.array([[0.5, 1.0, -1.0], [0.0, 0.0, 0.0]])
    result = match_points(pred, gt, VOXEL, cutoff_um=0.3)
    assert result.tp == 2
    order = np.argsort(result.gt_indices)
    np.testing.assert_allclose(
        result.offsets_um[order], [[0.15, 0.13, -0.13], [0.0, 0.0, 0.0]], atol=1e-12
    )
    np.testing.assert_allclose(
        result.distances_um[order], [math.sqrt(0.15**2 + 2 * 0.13**2), 0.0], atol=1e-12
    )


def test_identical_and_duplicate_points_match():
    points = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    result = match_points(points, points.copy(), VOXEL)
    assert result.tp == 3
    np.testing.assert_array_equal(result.distances_um, 0.0)


@pytest.mark.parametrize(
    ("n_pred", "n_gt", "expected"),
    [
        (0, 0, (0, 0, 0)),
        (0, 3, (0, 0, 3)),
        (4, 0, (0, 4, 0)),
    ],
)
def test_empty_inputs(n_pred, n_gt, expected):
    rng = np.random.default_rng(0)
    result = match_points(rng.uniform(0, 50, (n_pred, 3)), rng.uniform(0, 50, (n_gt, 3)), VOXEL)
    assert (result.tp, result.fp, result.fn) == expected
    assert result.distances_um.shape == (0,)
    assert result.offsets_um.shape == (0, 3)
    if n_pred == n_gt == 0:
        assert result.precision == result.recall == result.f1 == 1.0
    else:
        assert result.f1 == 0.0


def test_empty_list_inputs_are_accepted():
    result = match_points([], [], VOXEL)
    assert (result.tp, result.fp, result.fn) == (0, 0, 0)


def test_nothing_within_cutoff():
    result = match_points([[0.0, 0.0, 0.0]], [[10.0, 10.0, 10.0]], VOXEL)
    assert (result.tp, result.fp, result.fn) == (0, 1, 1)
    assert result.precision == result.recall == result.f1 == 0.0


def test_precision_recall_f1_values():
    gt = np.array([[5.0, 10.0 * k, 10.0] for k in range(1, 11)])  # 10 references
    pred = np.concatenate(
        [
            gt[:8] + [0.0, 0.3, 0.0],  # 8 true positives
            np.array([[5.0, 200.0, 200.0], [5.0, 250.0, 250.0]]),  # 2 false positives
        ]
    )
    result = match_points(pred, gt, VOXEL)
    assert (result.tp, result.fp, result.fn) == (8, 2, 2)
    assert result.precision == pytest.approx(0.8)
    assert result.recall == pytest.approx(0.8)
    assert result.f1 == pytest.approx(0.8)

    result = match_points(pred[:8], gt, VOXEL)
    assert result.precision == pytest.approx(1.0)
    assert result.recall == pytest.approx(0.8)
    assert result.f1 == pytest.approx(2 * 0.8 / 1.8)


# --------------------------------------------------------------------------
# localisation errors


def test_localisation_error_statistics():
    gt = np.array([[5.0, 10.0 * k, 10.0] for k in range(1, 6)])
    # x offsets of 0..4 tenths of a voxel (0, 13, 26, 39, 52 nm), plus a fixed z offset.
    shifts = np.array([[0.1, 0.0, 0.1 * k] for k in range(5)])
    result = match_points(gt + shifts, gt, VOXEL)
    assert result.tp == 5
    stats = localisation_errors_nm(result)
    expected = np.sqrt(30.0**2 + (13.0 * np.arange(5)) ** 2)
    assert stats["median_nm"] == pytest.approx(np.median(expected))
    assert stats["mean_nm"] == pytest.approx(np.mean(expected))
    assert stats["p95_nm"] == pytest.approx(np.percentile(expected, 95))
    assert stats["median_z_nm"] == pytest.approx(30.0)
    assert stats["median_y_nm"] == pytest.approx(0.0)
    assert stats["median_x_nm"] == pytest.approx(26.0)


def test_localisation_error_per_axis_uses_absolute_offsets():
    gt = np.array([[5.0, 10.0, 10.0], [5.0, 40.0, 40.0], [5.0, 80.0, 80.0]])
    shifts = np.array([[0.0, -0.5, 0.0], [0.0, 0.5, 0.0], [0.0, -0.5, 0.0]])
    stats = localisation_errors_nm(match_points(gt + shifts, gt, VOXEL))
    assert stats["median_y_nm"] == pytest.approx(65.0)
    assert stats["median_nm"] == pytest.approx(65.0)


def test_localisation_errors_are_nan_without_matches():
    stats = localisation_errors_nm(match_points(np.zeros((0, 3)), [[1.0, 1.0, 1.0]], VOXEL))
    assert set(stats) == {
        "median_nm",
        "mean_nm",
        "p95_nm",
        "median_z_nm",
        "median_y_nm",
        "median_x_nm",
    }
    assert all(math.isnan(v) for v in stats.values())


# --------------------------------------------------------------------------
# per-frame evaluation


def _two_frame_tables():
    gt_zyx = np.array([[5.0, 10.0 * k, 20.0] for k in range(1, 5)])
    gt = _table(
        np.concatenate(
            [np.column_stack([np.zeros(4), gt_zyx]), np.column_stack([np.ones(4), gt_zyx])]
        )
    )
    # Frame 0: all four found (exactly). Frame 1: two found, one 0.2 µm off in z, one false positive.
    pred_rows = [[0.0, *p] for p in gt_zyx]
    pred_rows += [[1.0, *gt_zyx[0]], [1.0, *(gt_zyx[1] + [2 / 3, 0.0, 0.0])]]
    pred_rows += [[1.0, 5.0, 300.0, 300.0]]
    pred = _table(np.array(pred_rows))
    return pred, gt


def test_evaluate_points_per_frame_and_overall():
    pred, gt = _two_frame_tables()
    evaluation = evaluate_points(pred, gt, VOXEL, cutoffs_um=(0.15, 0.3), main_cutoff_um=0.3)
    overall = evaluation.overall
    assert overall["n_frames"] == 2 and overall["n_pred"] == 7 and overall["n_gt"] == 8
    assert (overall["tp@0.3"], overall["fp@0.3"], overall["fn@0.3"]) == (6, 1, 2)
    assert overall["precision@0.3"] == pytest.approx(6 / 7)
    assert overall["recall@0.3"] == pytest.approx(6 / 8)
    assert overall["f1@0.3"] == pytest.approx(12 / 15)
    # At 0.15 µm the 0.2 µm z offset no longer matches.
    assert (overall["tp@0.15"], overall["fp@0.15"], overall["fn@0.15"]) == (5, 2, 3)
    assert overall["median_nm"] == pytest.approx(0.0)
    assert overall["p95_nm"] == pytest.approx(np.percentile([0, 0, 0, 0, 0, 200.0], 95))

    per_frame = evaluation.per_frame.set_index("t")
    assert list(per_frame.index) == [0, 1]
    assert per_frame.loc[0, "f1@0.3"] == pytest.approx(1.0)
    assert (per_frame.loc[1, "tp@0.3"], per_frame.loc[1, "fp@0.3"], per_frame.loc[1, "fn@0.3"]) == (
        2,
        1,
        2,
    )
    assert per_frame.loc[1, "f1@0.3"] == pytest.approx(4 / 7)
    assert per_frame.loc[1, "median_z_nm"] == pytest.approx(100.0)
    assert set(evaluation.matches) == {0, 1}
    assert evaluation.matches[1].tp == 2
    assert evaluation.main_cutoff_um == 0.3
    assert evaluation.cutoffs_um == (0.15, 0.3)

    as_dict = evaluation.to_dict()
    assert as_dict["overall"]["tp@0.3"] == 6
    assert len(as_dict["per_frame"]) == 2


def test_evaluate_points_frame_only_in_one_table():
    gt = _table([[0.0, 5.0, 10.0, 10.0], [2.0, 5.0, 10.0, 10.0]])
    pred = _table([[0.0, 5.0, 10.0, 10.0], [1.0, 5.0, 50.0, 50.0]])
    evaluation = evaluate_points(pred, gt, VOXEL)
    per_frame = evaluation.per_frame.set_index("t")
    assert list(per_frame.index) == [0, 1, 2]
    assert per_frame.loc[1, "fp@0.3"] == 1 and per_frame.loc[1, "n_gt"] == 0
    assert per_frame.loc[2, "fn@0.3"] == 1 and per_frame.loc[2, "n_pred"] == 0
    assert evaluation.overall["f1@0.3"] == pytest.approx(2 * 1 / 4)


def test_evaluate_points_filters_channel():
    coords = [[0.0, 5.0, 10.0, 10.0], [0.0, 5.0, 40.0, 40.0]]
    gt = _table(coords, channel=np.array([0, 1]))
    # The prediction finds both spots; the second is tagged as the second marker.
    pred = _table(
        coords + [[0.0, 5.0, 80.0, 80.0]],
        channel=np.array([0, 1, 1]),
        score=np.array([9.0, 8.0, 7.0]),
    )
    kt = evaluate_points(pred, gt, VOXEL, channel=0).overall
    assert (kt["n_pred"], kt["n_gt"], kt["tp@0.3"], kt["fp@0.3"]) == (1, 1, 1, 0)
    second = evaluate_points(pred, gt, VOXEL, channel=1).overall
    assert (second["n_pred"], second["n_gt"], second["tp@0.3"], second["fp@0.3"]) == (2, 1, 1, 1)
    everything = evaluate_points(pred, gt, VOXEL, channel=None).overall
    assert (everything["n_pred"], everything["n_gt"], everything["tp@0.3"]) == (3, 2, 2)


def test_evaluate_points_channel_filter_ignores_tables_without_channel():
    gt = _table([[0.0, 5.0, 10.0, 10.0]])
    pred = _table([[0.0, 5.0, 10.0, 10.0], [0.0, 5.0, 40.0, 40.0]], channel=np.array([0, 1]))
    overall = evaluate_points(pred, gt, VOXEL, channel=0).overall
    assert (overall["n_pred"], overall["tp@0.3"], overall["fp@0.3"]) == (1, 1, 0)


def test_evaluate_points_empty_tables():
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in "tzyx"})
    gt = _table([[0.0, 5.0, 10.0, 10.0]])
    overall = evaluate_points(empty, gt, VOXEL).overall
    assert (overall["tp@0.3"], overall["fn@0.3"], overall["f1@0.3"]) == (0, 1, 0.0)
    assert math.isnan(overall["median_nm"])
    both = evaluate_points(empty, empty.copy(), VOXEL)
    assert both.overall["n_frames"] == 0
    assert both.overall["f1@0.3"] == 1.0


def test_evaluate_points_missing_columns():
    gt = _table([[0.0, 5.0, 10.0, 10.0]])
    bad = pd.DataFrame({"t": [0.0], "z": [5.0], "y": [10.0]})
    with pytest.raises(InputError, match="x"):
        evaluate_points(bad, gt, VOXEL)
    with pytest.raises(InputError, match="reference"):
        evaluate_points(gt, bad, VOXEL)


# --------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "points",
    [
        [[1.0, np.nan, 2.0]],
        [[1.0, np.inf, 2.0]],
        [[1.0, 2.0]],
        [1.0, 2.0, 3.0],
        np.zeros((2, 3, 1)),
        np.zeros((2, 4)),
    ],
)
def test_bad_points_raise(points):
    good = [[1.0, 2.0, 3.0]]
    with pytest.raises(InputError):
        match_points(points, good, VOXEL)
    with pytest.raises(InputError):
        match_points(good, points, VOXEL)


@pytest.mark.parametrize(
    "voxel",
    [(0.0, 0.13, 0.13), (0.3, -0.13, 0.13), (0.3, 0.13), (0.3, 0.13, np.nan), (0.3, 0.13, 0.13, 1)],
)
def test_bad_voxel_size_raises(voxel):
    with pytest.raises(InputError, match="voxel size"):
        match_points([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]], voxel)


@pytest.mark.parametrize("cutoff", [0.0, -0.3, np.nan])
def test_bad_cutoff_raises(cutoff):
    with pytest.raises(InputError, match="cutoff"):
        match_points([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]], VOXEL, cutoff_um=cutoff)


def test_input_error_is_a_value_error():
    with pytest.raises(ValueError):
        match_points([[np.nan, 0.0, 0.0]], [[0.0, 0.0, 0.0]], VOXEL)


def test_error_summary_says_no_matches_instead_of_nan():
    pred = _table([[0, 10, 20, 20]])
    far = _table([[0, 10, 60, 60]])
    overall = evaluate_points(pred, far, VOXEL).overall
    assert error_summary(overall, 0.3) == "no matches"
    assert error_summary(overall, 0.3, detail=False) == "no matches"
    overall = evaluate_points(pred, _table([[0, 10, 20.5, 20]]), VOXEL).overall
    assert error_summary(overall, 0.3, detail=False) == "median error 65.0 nm"
    assert error_summary(overall, 0.3).startswith("median 65.0 nm, mean 65.0 nm")


def test_matched_export_keeps_each_points_own_columns():
    pred = _table(
        [[0, 10, 20, 20], [0, 10, 40, 40], [1, 5, 5, 5]],
        status=["moved", "added", "auto"],
        score=[0.9, 0.8, 0.7],
        channel=[0, 0, 0],
    )
    gt = _table([[0, 10, 20.5, 20], [0, 3, 3, 3]], channel=[0, 0], pair_id=[4, 5])
    table = matched_export_table(pred, gt, VOXEL)
    plain = match_table(pred, gt, VOXEL)
    assert table["match_status"].tolist() == plain["status"].tolist() == ["TP", "FP", "FN", "FP"]
    # predictions keep their correction status and score; the miss carries the reference's ids
    assert (
        table["status"].tolist()[:2] == ["moved", "added"] and table["status"].tolist()[3] == "auto"
    )
    assert pd.isna(table["status"].iloc[2]) and table["pair_id"].iloc[2] == 5
    assert table["score"].iloc[:2].tolist() == [0.9, 0.8] and pd.isna(table["score"].iloc[2])
    pd.testing.assert_frame_equal(
        table.drop(columns=["status", "score", "channel", "pair_id"]),
        plain.rename(columns={"status": "match_status"}),
    )


# --------------------------------------------------------------------------
# tables with and without time


def _three_frames(tmp_path, with_time: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference over frames 0-2 and the same points in a CSV with or without its t column."""
    from napari_kinetochores.io import read_points, write_points

    zyx = np.array([[5.0, 10.0, 20.0], [6.0, 40.0, 20.0]])
    rows = np.vstack([np.column_stack([np.full(2, t), zyx + t]) for t in (0, 1, 2)])
    reference = _table(rows)
    write_points(tmp_path / "pred.csv", _table(rows), VOXEL)
    if not with_time:
        table = pd.read_csv(tmp_path / "pred.csv").drop(columns="t")
        table.to_csv(tmp_path / "pred.csv", index=False)
    return read_points(tmp_path / "pred.csv", voxel_size_um=VOXEL), reference


def test_evaluate_refuses_a_prediction_without_time_against_a_movie(tmp_path):
    pred, gt = _three_frames(tmp_path, with_time=False)
    assert pred.attrs["has_time"] is False
    with pytest.raises(
        InputError, match=r"prediction \(.*pred\.csv\) has no time column.*reference.*3 frames"
    ):
        evaluate_points(pred, gt, VOXEL)
    with pytest.raises(InputError, match=r"reference \(.*pred\.csv\) has no time column"):
        evaluate_points(gt, pred, VOXEL)
    with pytest.raises(InputError, match=r"prediction \(.*pred\.csv\) has no time column"):
        match_table(pred, gt, VOXEL)
    pred, gt = _three_frames(tmp_path, with_time=True)
    assert evaluate_points(pred, gt, VOXEL).overall["f1@0.3"] == 1.0


def test_a_table_without_time_is_put_in_the_single_frame_of_the_other_with_a_warning(tmp_path):
    from napari_kinetochores.io import read_points

    path = tmp_path / "zyx.csv"
    path.write_text("z,y,x\n5,10,20\n6,40,20\n")
    pred = read_points(path, voxel_size_um=VOXEL)
    gt = _table([[3, 5, 10, 20], [3, 6, 40, 20]])
    with pytest.warns(UserWarning, match=r"prediction \(.*zyx\.csv\) has no time column.*frame 3"):
        evaluation = evaluate_points(pred, gt, VOXEL)
    assert evaluation.overall["f1@0.3"] == 1.0 and list(evaluation.per_frame["t"]) == [3]
    with pytest.warns(UserWarning, match="frame 3"):
        assert match_table(pred, gt, VOXEL)["status"].tolist() == ["TP", "TP"]
    assert (pred["t"] == 0).all()  # the caller's table is left as it is


def test_evaluate_refuses_a_text_channel_instead_of_dropping_rows():
    pred = _table([[0, 5, 10, 20]], channel=["EGFP"])
    gt = _table([[0, 5, 10, 20]])
    with pytest.raises(InputError, match=r"prediction.*channel.*'EGFP'"):
        evaluate_points(pred, gt, VOXEL)
