"""Benchmark: sister pairing, tracking and the two-colour delta on simulated movies.

For each scenario, simulated moderate-SNR movies give the ground truth (true
positions, pairs, tracks, and the mCherry offset). The detections are either
the true positions with gaussian localisation noise and random dropouts, or
the classical detector's detections in both channels of the rendered movie.
The pipeline is the library's (the same as ``kinetochores track`` then
``pair`` then ``measure``): laptrack tracking with drift correction, sister
pairing over whole tracks, EGFP–mCherry matching with the chromatic shift
estimated from the data (a known shift is added to the mCherry spots).

Metrics
-------
pairing accuracy
    True sister pairs recovered: over all frames, the pairs whose two sisters
    were both detected, and which got the same predicted pair id (recall);
    precision = predicted pairs that are true.
link accuracy
    Links between consecutive detections of one true kinetochore (across
    missed frames too) that the tracker made (recall); precision = predicted
    links that are true.
delta error
    |measured − true| of the delta vector (mCherry − EGFP, nm): per frame,
    and per kinetochore (the delta averaged over the kinetochore's frames,
    as it is reported); and the error of the 1D delta (along the sister axis).

Usage (from the repository root)::

    python -m benchmarks.bench_pairing_tracking            # full run (34 min on 2 cores)
    python -m benchmarks.bench_pairing_tracking --quick    # smaller movies

Prints a markdown table and writes ``benchmarks/results/pairing_tracking.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import CUTOFF_UM, num, table
from napari_kinetochores.analysis.matching import match_points
from napari_kinetochores.analysis.measurements import (
    measure_table,
    pairing_accuracy,
    perturb_points,
)
from napari_kinetochores.analysis.pairing import pair_table
from napari_kinetochores.analysis.tracking import link_accuracy, track_table
from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams, simulate_movie

RESULTS = Path(__file__).resolve().parent / "results" / "pairing_tracking.json"
CHROMATIC_SHIFT_NM = np.array([80.0, -50.0, 30.0])  # added to mCherry, to be estimated


@dataclass
class Scenario:
    name: str
    noise_nm: float | None = 23.1  # per axis; None: classical detector on the rendered movie
    dropout: float = 0.03
    sim: dict = field(default_factory=dict)


def scenarios(quick: bool) -> list[Scenario]:
    base = {"snr": SNR_LEVELS["moderate"]}
    fast = {**base, "oscillation_amplitude_um": 1.0, "oscillation_period_frames": 8.0}
    out = [
        Scenario("truth + 40 nm RMS noise (23 nm/axis), 3 % dropouts", 23.1, 0.03, base),
        Scenario("truth + 69 nm RMS noise (40 nm/axis), 3 % dropouts", 40.0, 0.03, base),
        Scenario("fast plate (1 µm, 8 frames) + 40 nm RMS noise, 3 % dropouts", 23.1, 0.03, fast),
        Scenario("truth, no noise (pipeline check)", 0.0, 0.0, base),
    ]
    out.append(Scenario("classical detector (DoG), both channels, moderate SNR", None, 0.0, base))
    return out


def detect_classical(movie) -> pd.DataFrame:
    """Classical detections of both channels with the true identity of each (or -1)."""
    from napari_kinetochores.backends.classical import detect_spots_classical

    voxel = movie.params.voxel_size_um
    gt = movie.points
    rows = []
    for t in range(movie.image.shape[0]):
        for ch in (0, 1):
            coords, _ = detect_spots_classical(movie.image[t, ch], voxel)
            truth = gt[(gt["t"] == t) & (gt["channel"] == ch)]
            res = match_points(coords, truth[["z", "y", "x"]].to_numpy(), voxel, CUTOFF_UM)
            true_row = np.full(len(coords), -1, dtype=np.int64)
            true_row[res.pred_indices] = truth.index.to_numpy()[res.gt_indices]
            for c, r in zip(coords, true_row, strict=True):
                rows.append((t, *c, ch, r))
    det = pd.DataFrame(rows, columns=["t", "z", "y", "x", "channel", "true_row"])
    for c, v in zip(("z_um", "y_um", "x_um"), voxel, strict=True):
        det[c] = det[c[0]] * v
    known = det["true_row"] >= 0
    for col in ("pair_id", "track_id"):
        det[col] = -1
        det.loc[known, col] = gt.loc[det.loc[known, "true_row"], col].to_numpy()
    return det


def run_movie(scenario: Scenario, seed: int, n_frames: int, n_pairs: int, shape) -> dict:
    params = SimulationParams(n_frames=n_frames, shape_zyx=shape, n_pairs=n_pairs, **scenario.sim)
    movie = simulate_movie(params, seed=seed)
    voxel = params.voxel_size_um
    gt = movie.points
    if scenario.noise_nm is None:
        det = detect_classical(movie)
    else:
        det = perturb_points(
            gt, voxel, noise_nm=scenario.noise_nm, dropout=scenario.dropout, seed=seed + 1000
        )
    det = det.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # any row order
    mch = det["channel"] == 1
    det.loc[mch, ["z", "y", "x"]] += CHROMATIC_SHIFT_NM / 1000.0 / np.asarray(voxel)
    truth_ids = det[["pair_id", "track_id", "true_row"]].copy()
    inp = det[["t", "z", "y", "x", "z_um", "y_um", "x_um", "channel"]].copy()

    t0 = time.perf_counter()
    tracked = track_table(inp, voxel)
    t_track = time.perf_counter() - t0
    t0 = time.perf_counter()
    paired = pair_table(tracked, voxel)
    t_pair = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = measure_table(paired, voxel)
    t_measure = time.perf_counter() - t0

    kin = (det["channel"] == 0).to_numpy()
    t_kin = det["t"][kin]
    true_pair = truth_ids["pair_id"][kin].to_numpy()
    true_track = truth_ids["track_id"][kin].to_numpy()
    pairs = pairing_accuracy(t_kin, true_pair, paired["pair_id"][kin])
    links = link_accuracy(t_kin, true_track, tracked["track_id"][kin])

    # true delta of each detected kinetochore (EGFP row) in each frame
    truth = gt.set_index(["t", "channel", "track_id"])[["z_um", "y_um", "x_um"]]
    rows = table.index.to_numpy()  # rows of det
    ok = truth_ids.loc[rows, "track_id"].to_numpy() >= 0
    keys_e = [
        (t, 0, k) for t, k in zip(det["t"][rows], truth_ids.loc[rows, "track_id"], strict=True)
    ]
    keys_m = [(t, 1, k) for t, _, k in keys_e]
    true_e = truth.reindex(keys_e).to_numpy()
    true_m = truth.reindex(keys_m).to_numpy()
    true_delta = (true_m - true_e) * 1000.0
    meas = table[["delta_z_nm", "delta_y_nm", "delta_x_nm"]].to_numpy()
    good = ok & np.all(np.isfinite(meas), axis=1) & np.all(np.isfinite(true_delta), axis=1)
    err = np.linalg.norm(meas[good] - true_delta[good], axis=1)
    # per kinetochore: mean delta over its frames (by true identity)
    ident = truth_ids.loc[rows, "track_id"].to_numpy()[good]
    per = pd.DataFrame(np.hstack([meas[good], true_delta[good]]), columns=list("abcdef"))
    per["k"] = ident
    mean = per.groupby("k").mean()
    err_k = np.linalg.norm(mean[list("abc")].to_numpy() - mean[list("def")].to_numpy(), axis=1)
    # 1D delta along the sister axis: the truth is the simulated offset
    d1 = table["delta_1d_nm"].to_numpy()
    d1 = d1[np.isfinite(d1) & ok]
    err_1d = np.abs(d1 - params.mcherry_offset_nm)
    shift = np.asarray(table.attrs["chromatic_shift_nm"])
    return {
        "seed": seed,
        "n_kinetochore_rows": int(kin.sum()),
        "n_frames": n_frames,
        **{f"pairs_{k}": v for k, v in pairs.items()},
        **{f"links_{k}": v for k, v in links.items()},
        "delta_errors_nm": err.tolist(),
        "delta_kinetochore_errors_nm": err_k.tolist(),
        "delta_1d_errors_nm": err_1d.tolist(),
        "shift_error_nm": float(np.linalg.norm(shift - CHROMATIC_SHIFT_NM)),
        "seconds_track": t_track,
        "seconds_pair": t_pair,
        "seconds_measure": t_measure,
    }


def summarise(name: str, runs: list[dict]) -> dict:
    def total(key: str) -> int:
        return int(sum(r[key] for r in runs))

    cat = lambda key: np.concatenate([np.asarray(r[key], dtype=float) for r in runs])  # noqa: E731
    med = lambda a: float(np.median(a)) if len(a) else float("nan")  # noqa: E731
    return {
        "scenario": name,
        "movies": len(runs),
        "frames_per_movie": runs[0]["n_frames"],
        "kinetochore_rows": total("n_kinetochore_rows"),
        "pairing_accuracy": total("pairs_n_correct") / max(total("pairs_n_true_pairs"), 1),
        "pairing_precision": total("pairs_n_correct") / max(total("pairs_n_pred_pairs"), 1),
        "true_pairs": total("pairs_n_true_pairs"),
        "link_accuracy": total("links_n_correct") / max(total("links_n_true_links"), 1),
        "link_precision": total("links_n_correct") / max(total("links_n_pred_links"), 1),
        "true_links": total("links_n_true_links"),
        "median_delta_error_per_frame_nm": med(cat("delta_errors_nm")),
        "median_delta_error_per_kinetochore_nm": med(cat("delta_kinetochore_errors_nm")),
        "median_delta_1d_error_per_frame_nm": med(cat("delta_1d_errors_nm")),
        "median_chromatic_shift_error_nm": med(np.array([r["shift_error_nm"] for r in runs])),
        "seconds_track_per_movie": float(np.mean([r["seconds_track"] for r in runs])),
        "seconds_pair_per_movie": float(np.mean([r["seconds_pair"] for r in runs])),
        "seconds_measure_per_movie": float(np.mean([r["seconds_measure"] for r in runs])),
    }


def markdown(rows: list[dict]) -> str:
    """The scenario summaries as a markdown table."""
    header = [
        "scenario",
        "pairing acc. (prec.)",
        "link acc. (prec.)",
        "delta err./frame (nm)",
        "delta err./kinetochore (nm)",
        "1D delta err./frame (nm)",
        "shift err. (nm)",
    ]
    lines = [
        [
            r["scenario"],
            f"{num(r['pairing_accuracy'], 4)} ({num(r['pairing_precision'], 4)})",
            f"{num(r['link_accuracy'], 4)} ({num(r['link_precision'], 4)})",
            num(r["median_delta_error_per_frame_nm"], 1),
            num(r["median_delta_error_per_kinetochore_nm"], 1),
            num(r["median_delta_1d_error_per_frame_nm"], 1),
            num(r["median_chromatic_shift_error_nm"], 1),
        ]
        for r in rows
    ]
    return table(header, lines)


def render_markdown(results: dict) -> str:
    """The docs/benchmarks.md section (``<!-- pairing_tracking:begin -->`` … ``:end -->``)."""
    settings, targets = results["settings"], results["targets"]
    shift = ", ".join(f"{v:g}" for v in settings["chromatic_shift_added_nm"])
    shape = " × ".join(map(str, settings["shape_zyx"]))
    by_name = {row["scenario"]: row for row in results["summary"]}
    noisy = next(iter(by_name.values()))
    met = (
        noisy["pairing_accuracy"] >= targets["pairing_accuracy"]
        and noisy["link_accuracy"] >= targets["link_accuracy"]
        and noisy["median_delta_error_per_kinetochore_nm"] <= targets["median_delta_error_nm"]
    )
    return "\n".join(
        [
            "## Pairing, tracking and delta",
            "",
            f"Generated from `benchmarks/results/pairing_tracking.json` "
            f"(`python -m benchmarks.bench_pairing_tracking --movies "
            f"{settings['movies_per_scenario']}`), {results['date']}, {results['machine']}, "
            f"{results['seconds_total'] / 60:.0f} min.",
            "",
            f"Simulated movies at {settings['snr']} SNR, {settings['movies_per_scenario']} movies "
            f"(seeds 0–{settings['movies_per_scenario'] - 1}) per scenario, "
            f"{settings['frames']} frames, {settings['pairs']} sister pairs, {shape} voxels of "
            f"0.30 × 0.13 × 0.13 µm, mCherry {settings['mcherry_offset_nm']:g} nm outwards of "
            f"EGFP, and a chromatic shift of ({shift}) nm added to every mCherry spot that the "
            "pipeline must estimate. Detections are the true positions of both channels with "
            "gaussian localisation noise and random dropouts, in shuffled row order; the "
            "classical row runs the DoG detector on the rendered movie instead. The pipeline is "
            "the library's (`kinetochores track`, `pair`, `measure`).",
            "",
            f"*pairing accuracy*: true sister pairs (both sisters detected) that got one "
            f"predicted pair id, precision in brackets (target ≥ {targets['pairing_accuracy']}); "
            "*link accuracy*: true links between consecutive detections of one kinetochore made "
            f"by the tracker (target ≥ {targets['link_accuracy']}); *delta error*: |measured − "
            "true| of the 3D delta vector per frame and per kinetochore (averaged over its "
            f"frames; target median ≤ {targets['median_delta_error_nm']} nm), of the 1D delta "
            "along the sister axis, and of the estimated chromatic shift.",
            "",
            markdown(results["summary"]),
            "",
            f"Targets on the first row: {'met' if met else 'NOT met'}. Timings are not reported "
            "(the machine was shared with model trainings during the run).",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--movies", type=int, default=3, help="movies per scenario")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="2 movies, 12 frames, 20 pairs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.movies, args.frames, args.pairs = 2, 12, 20
    shape = (48, 144, 144) if args.pairs > 24 else (36, 112, 112)
    rows, details = [], {}
    start = time.perf_counter()
    for scenario in scenarios(args.quick):
        runs = [
            run_movie(scenario, seed, args.frames, args.pairs, shape) for seed in range(args.movies)
        ]
        rows.append(summarise(scenario.name, runs))
        details[scenario.name] = [
            {k: v for k, v in r.items() if not k.endswith("errors_nm")} for r in runs
        ]
        print(f"done: {scenario.name} ({time.perf_counter() - start:.0f} s)", flush=True)
    print()
    print(markdown(rows))
    result = {
        "benchmark": "pairing, tracking and delta",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}",
        "settings": {
            "movies_per_scenario": args.movies,
            "frames": args.frames,
            "pairs": args.pairs,
            "shape_zyx": shape,
            "snr": "moderate",
            "chromatic_shift_added_nm": CHROMATIC_SHIFT_NM.tolist(),
            "mcherry_offset_nm": SimulationParams().mcherry_offset_nm,
        },
        "targets": {"pairing_accuracy": 0.95, "link_accuracy": 0.98, "median_delta_error_nm": 20},
        "summary": rows,
        "per_movie": details,
        "seconds_total": time.perf_counter() - start,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
