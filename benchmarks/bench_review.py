"""Review-by-uncertainty benchmark: how many reviewed spots reach F1 0.99, uncertainty vs random order.

The Correct labels widget's "Next uncertain" key offers the spots whose score
lies nearest the threshold first (:func:`napari_kinetochores.analysis.review.review_order`):
the bundled default model's detections and its candidate spots (peaks of its
probability map above a third of the threshold that no detection covers,
:func:`~napari_kinetochores.analysis.review.candidate_spots`; an uncovered
peak above the threshold, merged into a neighbour by the sub-voxel
refinement, comes first). This script
simulates a user on held-out simulated movies (seeds never used in training,
:func:`benchmarks.common.make_movies`) who reviews those spots one by one and
fixes each reviewed one perfectly:

- a reviewed false detection is deleted, a reviewed true one is kept;
- a reviewed candidate that is a true spot is added, a false one is left out;
- a true spot that no detection or candidate lies on is never offered and
  stays missed.

"True" comes from one-to-one matching at 0.3 µm: the detections against the
true spots, then the candidates against the true spots no detection matched.
F1 after each review follows from those labels (deleting an unmatched
detection or adding a matched candidate changes the optimal matching by
exactly that point). The whole condition (all frames of all its movies) is
one review queue, as one long movie. The same spots in random order, with
several seeds, are the baseline.

Usage (from the repository root)::

    python -m benchmarks.bench_review [--quick] [--output benchmarks/results/review.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import CONDITIONS, CUTOFF_UM, HELD_OUT_SEED, make_movies, num, table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET_F1 = 0.99
N_RANDOM_ORDERS = 20
REVIEWED_CONDITIONS = (
    "moderate SNR",
    "low SNR",
    "low SNR + clutter",
    "moderate, dense (40 pairs)",
    "moderate, wide PSF",
    "low, foreign renderer",
    "very_low SNR",
)
"""Conditions of :data:`benchmarks.common.CONDITIONS` reviewed (the last ones are the harder)."""
QUICK_CONDITIONS = ("low SNR + clutter", "very_low SNR")
CURVE_POINTS = (0, 10, 20, 50, 100, 200, 400)


# ----------------------------------------------------------------------------- spots


def review_spots(volume, truth, threshold: float, model: str = "default") -> dict:
    """A bundled model's detections and candidate spots of one movie, labelled true or false.

    Returns
    -------
    dict
        ``score`` (K,), ``detection`` (K,) bool, ``true`` (K,) bool over the
        detections and candidates of every frame, ``n_true_spots``, and
        ``unoffered_um``: for every true spot that neither a detection nor a
        candidate matches, the distance (µm) to the nearest detection.
    """
    from benchmarks.common import true_spots
    from napari_kinetochores.analysis.matching import match_points
    from napari_kinetochores.analysis.review import candidate_spots
    from napari_kinetochores.detection import DetectionOptions, detect_movie

    maps: dict[int, np.ndarray] = {}
    table_ = detect_movie(
        volume,
        DetectionOptions(model=model),
        progress=False,
        on_prediction=lambda t, p: maps.__setitem__(t, p[0]),
    )
    voxel = volume.voxel_size_um
    score, detection, true, unoffered = [], [], [], []
    n_true = 0
    for t in range(volume.n_frames):
        rows = table_[(np.round(table_["t"]) == t) & (table_.get("channel", 0) == 0)]
        found = rows[["z", "y", "x"]].to_numpy(float)
        spots = true_spots(truth, t)
        n_true += len(spots)
        matched = match_points(found, spots, voxel, CUTOFF_UM)
        found_true = np.zeros(len(found), bool)
        found_true[matched.pred_indices] = True
        missed = np.setdiff1d(np.arange(len(spots)), matched.gt_indices)
        coords, scores = candidate_spots(maps[t], voxel, threshold, existing_zyx=found)
        offered = match_points(coords, spots[missed], voxel, CUTOFF_UM)
        candidate_true = np.zeros(len(coords), bool)
        candidate_true[offered.pred_indices] = True
        never = spots[np.setdiff1d(missed, missed[offered.gt_indices])]
        unoffered.append(_distance_to_nearest_um(never, found, voxel))
        score += [rows["score"].to_numpy(float), scores]
        detection += [np.ones(len(found), bool), np.zeros(len(coords), bool)]
        true += [found_true, candidate_true]
    return {
        "score": np.concatenate(score),
        "detection": np.concatenate(detection),
        "true": np.concatenate(true),
        "n_true_spots": n_true,
        "unoffered_um": np.concatenate(unoffered),
    }


def _distance_to_nearest_um(points, others, voxel_size_um) -> np.ndarray:
    """(N,) distance (µm) from each of ``points`` (N, 3) to the nearest of ``others`` (voxels)."""
    from scipy.spatial import cKDTree

    if not len(points):
        return np.zeros(0)
    if not len(others):
        return np.full(len(points), np.inf)
    voxel = np.asarray(voxel_size_um, float)
    return cKDTree(np.asarray(others) * voxel).query(np.asarray(points) * voxel)[0]


def f1_curve(spots: dict, order: np.ndarray) -> np.ndarray:
    """F1 after 0, 1, …, len(order) reviews in ``order`` (a perfect user's fixes).

    Examples
    --------
    >>> spots = {"detection": np.array([True, True, False]), "true": np.array([True, False, True]),
    ...          "n_true_spots": 2}
    >>> f1_curve(spots, np.array([1, 2, 0])).round(3).tolist()
    [0.5, 0.667, 1.0, 1.0]
    """
    detection, true = spots["detection"][order], spots["true"][order]
    tp0 = int(np.sum(spots["detection"] & spots["true"]))
    n_pred0 = int(np.sum(spots["detection"]))
    added = np.cumsum(~detection & true)
    n_pred = n_pred0 - np.cumsum(detection & ~true) + added
    tp = np.concatenate([[tp0], tp0 + added])
    n_pred = np.concatenate([[n_pred0], n_pred])
    return 2 * tp / np.maximum(n_pred + spots["n_true_spots"], 1)


def reviews_to(curve: np.ndarray, target: float) -> int | None:
    """The fewest reviews after which F1 reaches ``target`` (None: never).

    Examples
    --------
    >>> reviews_to(np.array([0.9, 0.95, 0.99, 1.0]), 0.99), reviews_to(np.array([0.9]), 0.99)
    (2, None)
    """
    reached = np.flatnonzero(curve >= target - 1e-12)
    return int(reached[0]) if len(reached) else None


# ----------------------------------------------------------------------------- measurement


def measure_condition(movies: list, threshold: float, n_random: int) -> dict:
    """Reviews to F1 0.99, to 90 % of the reachable gain and to the reachable F1, in both orders."""
    from napari_kinetochores.analysis.review import review_order

    per_movie = [review_spots(volume, truth, threshold) for volume, truth in movies]
    spots = {
        key: np.concatenate([m[key] for m in per_movie]) for key in ("score", "detection", "true")
    }
    spots["n_true_spots"] = sum(m["n_true_spots"] for m in per_movie)
    order = review_order(spots["score"], threshold, detected=spots["detection"])
    uncertain = f1_curve(spots, order)
    rng_curves = [
        f1_curve(spots, np.random.default_rng(seed).permutation(len(spots["score"])))
        for seed in range(n_random)
    ]
    start, reachable = float(uncertain[0]), float(uncertain[-1])
    gain_target = start + 0.9 * (reachable - start)
    out = {
        "n_true_spots": int(spots["n_true_spots"]),
        "n_detections": int(spots["detection"].sum()),
        "n_false_detections": int((spots["detection"] & ~spots["true"]).sum()),
        "n_candidates": int((~spots["detection"]).sum()),
        "n_true_candidates": int((~spots["detection"] & spots["true"]).sum()),
        "f1_start": start,
        "f1_reachable": reachable,
        "already_at_target": start >= TARGET_F1,
    }
    targets = (("target", TARGET_F1), ("gain90", gain_target), ("all_fixable", reachable))
    for key, target in targets:
        random_counts = [reviews_to(c, target) for c in rng_curves]
        out[key] = {
            "f1": target,
            "uncertainty": reviews_to(uncertain, target),
            "random": random_counts,
        }
        out[key].update(_summary(out[key]["uncertainty"], random_counts))
    n = len(uncertain) - 1
    points = [k for k in CURVE_POINTS if k <= n] + [n]
    out["curve"] = {
        "reviews": points,
        "uncertainty": [float(uncertain[k]) for k in points],
        "random_median": [float(np.median([c[k] for c in rng_curves])) for k in points],
    }
    return out


def _summary(uncertainty: int | None, random_counts: list[int | None]) -> dict:
    """Median and range of the random orders' counts, and their ratio to the uncertainty order."""
    if uncertainty is None or any(c is None for c in random_counts):
        return {"random_median": None, "random_range": None, "ratio": None}
    median = float(np.median(random_counts))
    ratio = median / uncertainty if uncertainty > 0 else None
    return {
        "random_median": median,
        "random_range": [int(min(random_counts)), int(max(random_counts))],
        "ratio": ratio,
    }


def run(conditions: tuple[str, ...], n_movies: int, n_frames: int, n_random: int) -> dict:
    """The benchmark's results (see the module docstring)."""
    from napari_kinetochores.analysis.review import default_threshold

    threshold = default_threshold()
    started = time.time()
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "git_commit": _git_commit(),
        "model": "default",
        "threshold": threshold,
        "floor": "threshold / 3",
        "cutoff_um": CUTOFF_UM,
        "target_f1": TARGET_F1,
        "n_movies": n_movies,
        "n_frames": n_frames,
        "n_random_orders": n_random,
        "seeds": f"held-out simulator seeds from {HELD_OUT_SEED} (benchmarks.common.make_movies)",
        "conditions": {},
    }
    for name in conditions:
        movies = make_movies(CONDITIONS[name], n_movies, n_frames)
        row = results["conditions"][name] = measure_condition(movies, threshold, n_random)
        brief = {k: row["target"][k] for k in ("uncertainty", "random_median", "ratio")}
        print(name, round(row["f1_start"], 3), round(row["f1_reachable"], 3), brief, flush=True)
    results["cpu_seconds"] = time.process_time()
    results["wall_seconds"] = time.time() - started
    return results


def unoffered_misses(conditions: tuple[str, ...], models: tuple[str, ...], n_movies: int) -> dict:
    """Per model and condition: how far the true spots no review can reach lie from a detection.

    The same held-out movies as :func:`run` (its first ``n_movies``); each
    bundled model with its own threshold.
    """
    from napari_kinetochores.analysis.review import default_threshold

    out: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "git_commit": _git_commit(),
        "n_movies": n_movies,
        "n_frames": 3,
        "models": {},
    }
    for model in models:
        threshold = default_threshold(model)
        rows = out["models"][model] = {"threshold": threshold, "conditions": {}}
        for name in conditions:
            movies = make_movies(CONDITIONS[name], n_movies, 3)
            found = [review_spots(volume, truth, threshold, model) for volume, truth in movies]
            distances = np.concatenate([f["unoffered_um"] for f in found])
            n_true = sum(f["n_true_spots"] for f in found)
            rows["conditions"][name] = {
                "n_true_spots": int(n_true),
                "n_unoffered": len(distances),
                "within_0.5_um": int(np.sum(distances <= 0.5)),
                "median_um": float(np.median(distances)) if len(distances) else None,
                "reachable_recall": 1 - len(distances) / max(n_true, 1),
            }
            print(model, name, rows["conditions"][name], flush=True)
    return out


def render_unoffered(block: dict) -> str:
    """Markdown table of :func:`unoffered_misses`."""
    rows = [
        [
            model,
            name,
            row["n_true_spots"],
            row["n_unoffered"],
            f"{row['within_0.5_um']} of {row['n_unoffered']}",
            num(row["median_um"], 2) if row["median_um"] is not None else "–",
            num(row["reachable_recall"]),
        ]
        for model, entry in block["models"].items()
        for name, row in entry["conditions"].items()
    ]
    header = [
        "model",
        "condition",
        "true spots",
        "never offered",
        "≤ 0.5 µm from a detection",
        "median distance (µm)",
        "highest recall review can reach",
    ]
    return "\n".join(
        [
            f"**Why 0.99 is out of reach.** The true spots that neither a detection nor a "
            f"candidate marks, for both bundled models ({block['n_movies']} of the movies above "
            "per condition, 3 frames each, each model at its own threshold; run "
            f"{block['date']}, code `{block['git_commit']}`; "
            "`python -m benchmarks.bench_review --unoffered`):",
            "",
            table(header, rows),
            "",
            _unoffered_reading(block),
        ]
    )


def _unoffered_reading(block: dict) -> str:
    """In words: how many never-offered spots sit beside a detection, per model."""
    parts = []
    for model, entry in block["models"].items():
        rows = entry["conditions"].values()
        near = sum(row["within_0.5_um"] for row in rows)
        total = sum(row["n_unoffered"] for row in rows)
        parts.append(f"`{model}` {near} of {total}")
    return (
        "Of the never-offered true spots, "
        + ", ".join(parts)
        + " lie within 0.5 µm of a detection: a neighbour the network marks as one spot with "
        "it (its probability map has one peak for both). The others have no peak of the map "
        "above the candidate floor (a third of the threshold) within 0.3 µm: spots the network "
        "scores low, most of them at very low SNR. No review order can offer either kind; "
        "reaching 0.99 needs a model that separates close neighbours and keeps faint spots."
    )


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


# ----------------------------------------------------------------------------- report


def _count(row: dict) -> tuple[str, str, str]:
    """Uncertainty count, random median [range], and ratio of one target, as table cells."""
    uncertainty = row["uncertainty"]
    if uncertainty is None:
        return "not reached", "not reached", "–"
    if row["random_median"] is None:
        return str(uncertainty), "–", "–"
    low, high = row["random_range"]
    random = f"{row['random_median']:.0f} [{low}–{high}]"
    ratio = "–" if row["ratio"] is None else f"{row['ratio']:.1f}×"
    return str(uncertainty), random, ratio


def render_markdown(results: dict) -> str:
    """The docs/benchmarks.md section (between ``<!-- review:begin -->`` and ``<!-- review:end -->``)."""
    rows, gain_rows = [], []
    for name, row in results["conditions"].items():
        spots = (
            f"{row['n_detections']} ({row['n_false_detections']} false) + "
            f"{row['n_candidates']} ({row['n_true_candidates']} true)"
        )
        if row["already_at_target"]:
            cells = ("0 (already ≥ 0.99)", "0", "–")
        elif row["f1_reachable"] < TARGET_F1:
            cells = (f"not reachable (≤ {row['f1_reachable']:.3f})", "–", "–")
        else:
            cells = _count(row["target"])
        rows.append(
            [
                name,
                row["n_true_spots"],
                spots,
                num(row["f1_start"]),
                num(row["f1_reachable"]),
                *cells,
            ]
        )
        gain_rows.append(
            [
                name,
                num(row["gain90"]["f1"]),
                *_count(row["gain90"]),
                *_count(row["all_fixable"]),
            ]
        )
    return "\n".join(
        [
            "## Review by uncertainty: reviewed spots to reach F1 0.99",
            "",
            f"Run {results['date']} on {results['machine']}, code `{results['git_commit']}` "
            f"({results['cpu_seconds'] / 60:.1f} CPU minutes); `python -m benchmarks.bench_review` "
            "regenerates it.",
            "",
            "The Correct labels widget's *Next uncertain* key (`N`) offers the spots whose score "
            "lies nearest the threshold first: the bundled default model's detections "
            f"(threshold {results['threshold']:g}) and its candidate spots (peaks of its "
            f"probability map above {results['floor']} that no detection covers; one above the "
            "threshold, which the sub-voxel refinement merged into a neighbour, comes first). "
            "A simulated user reviews them one by one "
            "and fixes each perfectly (a false detection is deleted, a candidate that is a true "
            "spot is added); a true spot that is neither detected nor a candidate is never "
            "offered and stays missed, so *reachable* F1 (everything reviewed) can stay below "
            f"1. Held-out simulated movies ({results['seeds']}); each condition is "
            f"{results['n_movies']} movies × {results['n_frames']} frames reviewed as one queue; "
            f"F1 at {results['cutoff_um']} µm. Random order: the same spots, "
            f"{results['n_random_orders']} seeds, median [range].",
            "",
            table(
                [
                    "condition",
                    "true spots",
                    "detections + candidates",
                    "F1 before",
                    "F1 reachable",
                    "reviews to 0.99, uncertainty",
                    "random",
                    "ratio",
                ],
                rows,
            ),
            "",
            _reading(results),
            "",
            *([render_unoffered(results["unoffered"]), ""] if "unoffered" in results else []),
            "Where 0.99 cannot be reached (spots the model never offers), the reviews needed to "
            "gain 90 % of the reachable improvement (F1 target), and to fix every error that "
            "review can fix (reach the reachable F1):",
            "",
            table(
                [
                    "condition",
                    "F1 target (90 %)",
                    "uncertainty",
                    "random",
                    "ratio",
                    "all fixable: uncertainty",
                    "random",
                    "ratio",
                ],
                gain_rows,
            ),
            "",
            "The share of the reachable F1 gain against the number of reviewed spots:",
            "",
            f"![share of the reachable F1 gain against reviewed spots]({PLOT})",
            "",
        ]
    )


PLOT = "images/bench_review.png"
"""The F1-against-reviews plot, relative to docs/."""


def plot_curves(results: dict, path: Path) -> None:
    """Share of the reachable F1 gain against reviewed spots, uncertainty against random order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, row) in enumerate(results["conditions"].items()):
        gain = row["f1_reachable"] - row["f1_start"]
        if gain <= 0:
            continue
        curve, colour = row["curve"], colours[k % len(colours)]
        for key, style, alpha in (("uncertainty", "o-", 1.0), ("random_median", "o:", 0.6)):
            share = (np.asarray(curve[key]) - row["f1_start"]) / gain
            label = name if key == "uncertainty" else None
            ax.plot(curve["reviews"], share, style, color=colour, alpha=alpha, label=label)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(left=0)
    ax.set_xlabel("reviewed spots (solid: uncertainty order; dotted: random order, median)")
    ax.set_ylabel("share of the reachable F1 gain")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ratios(results: dict, key: str) -> list[float]:
    rows = results["conditions"].values()
    return [row[key]["ratio"] for row in rows if row[key]["ratio"] is not None]


def _reading(results: dict) -> str:
    """One paragraph: is 0.99 reachable, and the ratios over the conditions."""
    rows = results["conditions"].values()
    unreachable = sum(row["f1_reachable"] < TARGET_F1 for row in rows)
    done = sum(row["already_at_target"] for row in rows)
    text = (
        f"**Reading.** Reviewing every offered spot stays below F1 {TARGET_F1} in {unreachable} "
        f"of {len(rows)} conditions ({done} already at it): the misses left are kinetochores "
        "that neither a detection nor a peak of the probability map marks (inspecting single "
        "movies, mostly one lying beside a detected kinetochore, inside its blob of the "
        "probability map), so no review order reaches the target there and the 0.99 count "
        "cannot be measured."
    )
    gain, every = _ratios(results, "gain90"), _ratios(results, "all_fixable")
    if gain:
        text += (
            f" On what review can fix, 90 % of the reachable gain took {min(gain):.1f}–"
            f"{max(gain):.1f}× fewer reviews in uncertainty order than in random order (median "
            f"{np.median(gain):.1f}×)"
        )
    if every:
        text += (
            f"; fixing every fixable error took {min(every):.1f}–{max(every):.1f}× fewer: a "
            "false detection the model is sure of comes last in any order by score."
        )
    return text


def write_section(results: dict, doc: Path) -> None:
    """Regenerate the ``review`` section of ``doc``."""
    from benchmarks.report import replace_section

    text = doc.read_text() if doc.is_file() else ""
    doc.write_text(replace_section(text, "review", render_markdown(results)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two conditions, two movies")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="results file (default results/review.json; --quick writes one only when given)",
    )
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument(
        "--unoffered",
        action="store_true",
        help="only measure the never-offered spots of both bundled models (added to the results)",
    )
    args = parser.parse_args()
    if args.unoffered:
        path = args.output or HERE / "results" / "review.json"
        results = json.loads(path.read_text())
        results["unoffered"] = unoffered_misses(
            tuple(results["conditions"]), ("default", "single_frame"), n_movies=2
        )
        path.write_text(json.dumps(results, indent=2))
        write_section(results, args.doc)
        print(f"wrote the never-offered spots into {path} and {args.doc}")
        return 0
    conditions = QUICK_CONDITIONS if args.quick else REVIEWED_CONDITIONS
    n_movies = 2 if args.quick else 4
    results = run(conditions, n_movies, n_frames=3, n_random=N_RANDOM_ORDERS)
    if args.quick:
        # A check of the script, not the figures: the stored results and docs stay as they are.
        if args.output is not None:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(results, indent=2))
        print(render_markdown(results))
        return 0
    args.output = args.output or HERE / "results" / "review.json"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    plot_curves(results, args.doc.parent / PLOT)
    write_section(results, args.doc)
    print(f"wrote {args.output} and the review section of {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
