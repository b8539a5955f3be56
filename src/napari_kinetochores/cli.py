"""The ``kinetochores`` command: a thin shell over the library.

Every sub-command parses its arguments, calls library functions and writes
files. Bad input ends with a one-line ``error:`` message naming the file and
the problem, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from napari_kinetochores.errors import InputError


def _voxel_size_arg(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--voxel-size",
        nargs=3,
        type=float,
        metavar=("Z", "Y", "X"),
        required=required,
        help="voxel size (z, y, x) in µm; overrides the file's metadata",
    )


def _force_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force",
        action="store_true",
        help="write OUTPUT even if it is an input or an existing file that is not a CSV",
    )


# The arguments that name files a command reads: its output must never replace one.
INPUT_ARGUMENTS = ("input", "points", "mcherry")


def _check_output(args: argparse.Namespace) -> None:
    """Refuse an ``-o`` that is one of the command's inputs or a non-CSV file (unless --force)."""
    from napari_kinetochores.io.atomic import check_output_file

    inputs = [getattr(args, name) for name in INPUT_ARGUMENTS if getattr(args, name, None)]
    check_output_file(args.output, inputs, force=args.force)


def _frames(text: str | None):
    """The ``--frames`` selection (:func:`~napari_kinetochores.detection.options.parse_frames`)."""
    from napari_kinetochores.detection.options import parse_frames

    return None if text is None else parse_frames(text)


def _detection_args(parser: argparse.ArgumentParser) -> None:
    """Reading and detection options shared by ``detect`` and ``batch``."""
    _voxel_size_arg(parser)
    parser.add_argument("--axes", help="axes of the file, e.g. TZCYX; overrides the metadata")
    parser.add_argument("--dataset", help="HDF5 dataset key")
    parser.add_argument("--channel", type=int, default=0, help="kinetochore channel (default 0)")
    parser.add_argument(
        "--all-channels", action="store_true", help="also report the other channels' spots"
    )
    from napari_kinetochores.backends import METHODS

    parser.add_argument("--method", choices=METHODS, default=METHODS[0])
    parser.add_argument(
        "--model",
        help="UNet checkpoint or bioimage.io package (.zip), or StarDist model folder (path or "
        "bundled name)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        help="peak threshold (UNet: probability; classical: noise sigmas); default: the model's",
    )
    parser.add_argument(
        "--min-distance-um", type=float, help="smallest distance between detections (µm)"
    )
    parser.add_argument("--frames", help="frames to process: N, A:B (end exclusive) or A,B,C")
    parser.add_argument("--tile-shape", nargs=3, type=int, metavar=("Z", "Y", "X"))
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", choices=("cuda", "mps", "cpu"))
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32"),
        default="auto",
        help="UNet arithmetic: auto = float16 on CUDA, bfloat16 on CPUs with native bfloat16 "
        "(AVX512-BF16/AMX); fp32 = float32 everywhere",
    )
    parser.add_argument(
        "--test-time-flips",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="UNet: average the output over the four y/x flips (4 forward passes per tile)",
    )
    parser.add_argument(
        "--resample",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="UNet: resample axes finer than the model's voxel size down to it (default off; "
        "docs/models.md)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _detection_options(args: argparse.Namespace):
    """DetectionOptions from the arguments added by :func:`_detection_args`."""
    from napari_kinetochores.detection import DetectionOptions

    return DetectionOptions(
        method=args.method,
        channel=args.channel,
        threshold=args.threshold,
        min_distance_um=args.min_distance_um,
        model=args.model,
        all_channels=args.all_channels,
        tile_shape=None if args.tile_shape is None else tuple(args.tile_shape),
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        test_time_flips=args.test_time_flips,
        resample_to_model=args.resample,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kinetochores",
        description="Detect, evaluate and simulate kinetochores in 3D time-lapse microscopy.",
    )
    from napari_kinetochores import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write a simulated two-colour movie and its ground truth")
    sim.add_argument("output", type=Path, help="movie file to write (.tif, .ome.tif, .zarr)")
    sim.add_argument("--gt", type=Path, required=True, help="ground-truth point CSV to write")
    sim.add_argument("--frames", type=int, default=5, help="number of time points")
    sim.add_argument("--shape", nargs=3, type=int, metavar=("Z", "Y", "X"), default=(32, 128, 128))
    sim.add_argument("--pairs", type=int, default=20, help="number of sister pairs")
    sim.add_argument(
        "--snr",
        default="moderate",
        help="signal-to-noise ratio: very_low, low, moderate, high, or a number",
    )
    sim.add_argument("--psf-sigma-um", nargs=3, type=float, metavar=("Z", "Y", "X"))
    sim.add_argument("--clutter", type=int, default=0, help="number of out-of-focus aggregates")
    sim.add_argument(
        "--layout",
        choices=("random", "real", "ball"),
        default="random",
        help="metaphase plate (random), the real annotated plate (real), or prometaphase (ball)",
    )
    sim.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any other SimulationParams field, e.g. hot_pixel_fraction=0.001, "
        "output_dtype=uint8, bleach_rate=0.128, psf_z_broadening_per_um=0.05 (repeatable)",
    )
    sim.add_argument("--seed", type=int, default=0)
    _voxel_size_arg(sim)

    det = sub.add_parser("detect", help="detect kinetochores in a movie and write a point CSV")
    det.add_argument("input", type=Path, help="movie: TIFF/OME-TIFF, zarr/OME-Zarr, HDF5 or .npy")
    det.add_argument("-o", "--output", type=Path, required=True, help="point CSV to write")
    _force_arg(det)
    _detection_args(det)

    bat = sub.add_parser(
        "batch", help="detect kinetochores in many movies on a Dask cluster (one task per frame)"
    )
    bat.add_argument("inputs", nargs="+", help="movie files, folders and glob patterns")
    bat.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        required=True,
        help="folder for <movie>.csv, probability OME-Zarrs and manifest.json",
    )
    where = bat.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", help="address of a running Dask scheduler, e.g. tcp://node:8786"
    )
    where.add_argument("--workers", type=int, help="local worker processes (default: CPU cores)")
    bat.add_argument("--resume", action="store_true", help="keep frames already done in OUTDIR")
    bat.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write <movie>.probabilities.ome.zarr (UNet output, or classical score)",
    )
    bat.add_argument(
        "--max-frame-voxels",
        type=int,
        default=64_000_000,
        help="frames with more voxels are processed in tiles with halos (default 64e6)",
    )
    bat.add_argument(
        "--tile-core",
        type=int,
        default=512,
        help="tile core size in y and x (voxels) for large frames",
    )
    _detection_args(bat)

    ev = sub.add_parser("evaluate", help="match predictions to reference points and report metrics")
    ev.add_argument("prediction", type=Path)
    ev.add_argument("reference", type=Path)
    _voxel_size_arg(ev, required=True)
    ev.add_argument("--cutoff-um", type=float, default=0.3, help="main matching cutoff (µm)")
    ev.add_argument("--channel", type=int, default=0, help="channel to evaluate; -1 for all rows")
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.add_argument("--per-frame", type=Path, help="write per-frame metrics to this CSV")

    tr = sub.add_parser("train", help="train a UNet (or a StarDist 3D model) from a YAML config")
    tr.add_argument("config", type=Path)
    tr.add_argument(
        "--backend",
        choices=("unet", "stardist"),
        help="network to train (default: the config's `backend:` key, else unet); "
        'stardist needs pip install "napari-kinetochores[stardist]"',
    )
    tr.add_argument("--output-dir", type=Path, help="overrides the config's output folder")
    tr.add_argument("--resume", type=Path, help="checkpoint to resume from")
    tr.add_argument("--device", choices=("cuda", "mps", "cpu"))
    ft = sub.add_parser("finetune", help="fine-tune a UNet on your corrected frames of one movie")
    ft.add_argument("movie", type=Path)
    ft.add_argument("points", type=Path, help="corrected points (CSV); 'deleted' rows are ignored")
    ft.add_argument("-o", "--output", type=Path, required=True, help="the model written (.pt)")
    ft.add_argument(
        "--frames", help='frames to learn from: "3", "0:10" or "1,4,7" (default: those with points)'
    )
    ft.add_argument("--minutes", type=float, default=10.0, help="time budget (default 10)")
    ft.add_argument("--init", default="default", help="model to start from (name or .pt)")
    ft.add_argument("--channel", type=int, default=0, help="kinetochore channel (default 0)")
    _voxel_size_arg(ft)
    ex = sub.add_parser(
        "export-bioimageio", help="write a UNet as a bioimage.io model package (docs/bioimageio.md)"
    )
    ex.add_argument("model", help="bundled model name (default, single_frame) or checkpoint (.pt)")
    ex.add_argument("-o", "--output", type=Path, required=True, help="the package written (.zip)")
    _add_pair_track_measure_parsers(sub)
    return parser


def _simulation_fields(pairs: list[str]) -> dict[str, object]:
    """``--set FIELD=VALUE`` pairs as SimulationParams fields (values read as Python literals)."""
    import ast
    from dataclasses import fields

    from napari_kinetochores.simulate import SimulationParams

    known = {f.name for f in fields(SimulationParams)}
    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name.strip() not in known:
            raise InputError(f"--set {pair!r}: use FIELD=VALUE with a SimulationParams field")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()  # a word, e.g. output_dtype=uint8
        out[name.strip()] = tuple(value) if isinstance(value, list) else value
    return out


def cmd_simulate(args: argparse.Namespace) -> int:
    from napari_kinetochores.io import write_points, write_tiff, write_zarr
    from napari_kinetochores.io.atomic import check_output_folder
    from napari_kinetochores.simulate import SNR_LEVELS, SimulationParams, simulate_movie

    check_output_folder(args.output)
    check_output_folder(args.gt)
    if args.snr in SNR_LEVELS:
        snr = SNR_LEVELS[args.snr]
    else:
        try:
            snr = float(args.snr)
        except ValueError:
            raise InputError(
                f"--snr {args.snr!r}: use one of {sorted(SNR_LEVELS)} or a number"
            ) from None
    chosen: dict[str, object] = {
        "n_frames": args.frames,
        "shape_zyx": tuple(args.shape),
        "n_pairs": args.pairs,
        "snr": snr,
        "n_clutter": args.clutter,
        "layout": args.layout,
    }
    if args.voxel_size is not None:
        chosen["voxel_size_um"] = tuple(args.voxel_size)
    if args.psf_sigma_um is not None:
        chosen["psf_sigma_um"] = tuple(args.psf_sigma_um)
    params = SimulationParams(**{**chosen, **_simulation_fields(args.set)})
    movie = simulate_movie(params, seed=args.seed)
    name = args.output.name.lower()
    if name.endswith(".zarr"):
        write_zarr(args.output, movie.image, params.voxel_size_um)
    elif name.endswith((".tif", ".tiff")):
        write_tiff(
            args.output,
            movie.image,
            params.voxel_size_um,
            channel_names=["EGFP", "mCherry"],
            ome=name.endswith((".ome.tif", ".ome.tiff")),
        )
    else:
        raise InputError("unsupported output format; use .tif, .ome.tif or .zarr", args.output)
    write_points(args.gt, movie.points, params.voxel_size_um)
    n_kt = movie.points.loc[movie.points["channel"] == 0, "track_id"].nunique()
    print(
        f"wrote {args.output} {movie.image.shape} {movie.image.dtype} and {args.gt} "
        f"({len(movie.points)} ground-truth points: {n_kt} kinetochores in "
        f"{params.n_frames} frame{'s' if params.n_frames != 1 else ''}, 2 channels)"
    )
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from napari_kinetochores.detection import detect_movie
    from napari_kinetochores.io import read_volume, write_points

    volume = read_volume(
        args.input, axes=args.axes, voxel_size_um=args.voxel_size, dataset=args.dataset
    )
    options = _detection_options(args)
    points = detect_movie(volume, options, frames=_frames(args.frames), progress=not args.quiet)
    write_points(args.output, points, volume.voxel_size_um)
    print(f"wrote {args.output}: {len(points)} detections in {points['t'].nunique()} frame(s)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from napari_kinetochores.analysis.matching import (
        REPORTED_CUTOFFS_UM,
        error_summary,
        evaluate_points,
    )
    from napari_kinetochores.io import read_points

    voxel = tuple(args.voxel_size)
    prediction = read_points(args.prediction, voxel_size_um=voxel)
    reference = read_points(args.reference, voxel_size_um=voxel)
    cutoffs = sorted(set(REPORTED_CUTOFFS_UM) | {args.cutoff_um})
    result = evaluate_points(
        prediction,
        reference,
        voxel,
        cutoffs_um=cutoffs,
        main_cutoff_um=args.cutoff_um,
        channel=None if args.channel < 0 else args.channel,
    )
    if args.per_frame is not None:
        from napari_kinetochores.io import write_csv

        write_csv(args.per_frame, result.per_frame)
    if args.json:
        print(json.dumps(_json_safe(result.to_dict()), indent=2, allow_nan=False))
        return 0
    o = result.overall
    print(f"frames: {o['n_frames']}  predicted: {o['n_pred']}  reference: {o['n_gt']}")
    for cutoff in result.cutoffs_um:
        k = f"{cutoff:g}"
        print(
            f"cutoff {k} µm: F1 {o[f'f1@{k}']:.4f}  precision {o[f'precision@{k}']:.4f}  "
            f"recall {o[f'recall@{k}']:.4f}  (TP {o[f'tp@{k}']}, FP {o[f'fp@{k}']}, FN {o[f'fn@{k}']})"
        )
    print(f"localisation error at {args.cutoff_um:g} µm: {error_summary(o, args.cutoff_um)}")
    return 0


def _json_safe(value):
    """NaN and infinities become null, so the output is valid JSON."""
    import math

    import numpy as np

    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _config_backend(path: Path) -> str | None:
    """The `backend:` key of a training config, if it has one."""
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None  # the config loader reports the problem
    return values.get("backend") if isinstance(values, dict) else None


def cmd_train(args: argparse.Namespace) -> int:
    from napari_kinetochores.training.unet import load_config, train

    declared = _config_backend(args.config)
    backend = args.backend or declared or "unet"
    if declared is not None and declared != backend:
        raise InputError(f"this is a {declared} config; use --backend {declared}", args.config)
    if backend == "stardist":
        from napari_kinetochores.training.stardist import load_stardist_config, train_stardist

        config = load_stardist_config(args.config)
        if args.output_dir is not None:
            config.output_dir = str(args.output_dir)
        result = train_stardist(config, resume=args.resume)
        print(
            f"StarDist model: {result.model_dir} (validation F1 {result.best_f1:.4f} at "
            f"probability {result.threshold:g}, on {result.validated_on})"
        )
        return 0
    config = load_config(args.config)
    if args.output_dir is not None:
        config.output_dir = str(args.output_dir)
    if args.device is not None:
        config.device = args.device
    result = train(config, resume=args.resume)
    print(
        f"best checkpoint: {result.best_checkpoint} (validation F1 {result.best_f1:.4f} "
        f"on {result.validated_on})"
    )
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from napari_kinetochores.training.finetune import finetune, read_finetune_inputs

    volume, points = read_finetune_inputs(args.movie, args.points, args.voxel_size)
    try:
        result = finetune(
            volume.data,
            points,
            volume.voxel_size_um,
            args.output,
            frames=_frames(args.frames),
            minutes=args.minutes,
            init=args.init,
            channel=args.channel,
            source=args.points,
        )
    except KeyboardInterrupt:
        if args.output.is_file():
            print(f"interrupted; the best model so far is {args.output}", file=sys.stderr)
        raise
    print(
        f"wrote {args.output}: validation F1 {result.best_f1:.3f} at threshold "
        f"{result.threshold:g} ({args.init}: {result.initial_f1:.3f}) on {result.validated_on}"
    )
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from napari_kinetochores.batch import run_batch

    result = run_batch(
        args.inputs,
        args.output_dir,
        _detection_options(args),
        scheduler=args.scheduler,
        n_workers=args.workers,
        resume=args.resume,
        save_probabilities=args.save_probabilities,
        frames=_frames(args.frames),
        voxel_size_um=args.voxel_size,
        axes=args.axes,
        dataset=args.dataset,
        max_frame_voxels=args.max_frame_voxels,
        core_yx=args.tile_core,
        progress=not args.quiet,
        command=["kinetochores", *sys.argv[1:]],
    )
    if not result.ok:
        print(
            f"error: {len(result.failed)} movie(s) failed or are incomplete (see {result.manifest_path}); "
            "fix them and run again with --resume",
            file=sys.stderr,
        )
        return 1
    return 0


def _add_pair_track_measure_parsers(sub) -> None:
    """Sub-commands ``pair``, ``track`` and ``measure`` (sister pairs, tracks, measurements)."""
    from napari_kinetochores.analysis.delta import DEFAULT_DELTA_CUTOFF_UM

    pa = sub.add_parser("pair", help="pair sister kinetochores: adds pair_id (-1: unpaired)")
    pa.add_argument("points", type=Path, help="point CSV (rows in any order)")
    pa.add_argument("-o", "--output", type=Path, required=True, help="point CSV to write")
    _force_arg(pa)
    _voxel_size_arg(pa, required=True)
    _pairing_args(pa)
    pa.add_argument(
        "--per-frame",
        action="store_true",
        help="pair each frame on its own even when the table has track_id",
    )

    tk = sub.add_parser("track", help="link kinetochores over time: adds track_id, keeps pair_id")
    tk.add_argument("points", type=Path, help="point CSV with a t column (rows in any order)")
    tk.add_argument("-o", "--output", type=Path, required=True, help="point CSV to write")
    _force_arg(tk)
    _voxel_size_arg(tk, required=True)
    tk.add_argument("--channel", type=int, default=0, help="kinetochore channel; -1: all rows")
    _tracking_args(tk, "--max-distance-um")
    tk.add_argument("--quiet", action="store_true", help="no progress bar")

    me = sub.add_parser(
        "measure",
        help="track, pair and measure (K-K, plate, delta) per kinetochore and frame",
        description="Track, pair and measure, as the Measurements widget does. The table's own "
        "pair_id and track_id are kept when present (pairs given in one frame only are made "
        "stable along tracks); --recompute computes them afresh.",
    )
    me.add_argument("points", type=Path, help="point CSV (pair_id/track_id kept when present)")
    me.add_argument("-o", "--output", type=Path, required=True, help="measurements CSV to write")
    _force_arg(me)
    _voxel_size_arg(me, required=True)
    me.add_argument(
        "--mcherry",
        type=Path,
        help="mCherry spots CSV; default: rows of --mcherry-channel in POINTS",
    )
    me.add_argument("--mcherry-channel", type=int, default=1)
    me.add_argument(
        "--delta-cutoff-um",
        type=float,
        default=DEFAULT_DELTA_CUTOFF_UM,
        help="EGFP-mCherry matching cutoff after chromatic correction (µm)",
    )
    me.add_argument(
        "--chromatic-shift-nm",
        nargs=3,
        type=float,
        metavar=("Z", "Y", "X"),
        help="known chromatic shift mCherry - EGFP (nm); default: median offset",
    )
    me.add_argument(
        "--track",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="track over time when the table has no track_id (default: yes)",
    )
    me.add_argument(
        "--recompute",
        action="store_true",
        help="ignore the table's pair_id and track_id: pair (and track) afresh",
    )
    me.add_argument("--plates", type=Path, help="also write the per-frame plate fits to this CSV")
    _pairing_args(me)
    _tracking_args(me, "--link-distance-um")


def _pairing_args(parser: argparse.ArgumentParser) -> None:
    """Pairing options; their defaults are :class:`PairingParams`'s (one place)."""
    from napari_kinetochores.analysis.pairing import PairingParams

    parser.add_argument("--channel", type=int, default=0, help="kinetochore channel; -1: all rows")
    parser.add_argument(
        "--min-distance-um",
        type=float,
        default=PairingParams.min_distance_um,
        help="pairing window start (µm; default %(default)s)",
    )
    parser.add_argument(
        "--max-distance-um",
        type=float,
        default=PairingParams.max_distance_um,
        help="pairing window end (µm; default %(default)s)",
    )
    parser.add_argument(
        "--expected-distance-um",
        type=float,
        default=PairingParams.expected_distance_um,
        help="typical sister distance (µm; default %(default)s)",
    )
    parser.add_argument("--no-plate", action="store_true", help="ignore the plate angle in pairing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _tracking_args(parser: argparse.ArgumentParser, distance_flag: str) -> None:
    """Tracking options; their defaults are :class:`TrackingParams`'s (one place)."""
    from napari_kinetochores.analysis.tracking import TrackingParams

    parser.add_argument(
        distance_flag,
        dest="link_distance_um",
        type=float,
        default=TrackingParams.max_distance_um,
        help="largest frame-to-frame displacement after drift correction (µm; default %(default)s)",
    )
    parser.add_argument(
        "--gap-distance-um",
        type=float,
        default=TrackingParams.gap_closing_distance_um,
        help="largest displacement bridged by gap closing (µm; default %(default)s)",
    )
    parser.add_argument(
        "--max-gap-frames",
        type=int,
        default=TrackingParams.max_gap_frames,
        help="most consecutive missed frames bridged (0: no gap closing; default %(default)s)",
    )
    parser.add_argument(
        "--no-drift-correction",
        action="store_true",
        help="do not remove the common (plate) motion before linking",
    )


def _pairing_params(args: argparse.Namespace):
    from napari_kinetochores.analysis.pairing import PairingParams

    return PairingParams(
        min_distance_um=args.min_distance_um,
        max_distance_um=args.max_distance_um,
        expected_distance_um=args.expected_distance_um,
        use_plate=not args.no_plate,
    )


def _tracking_params(args: argparse.Namespace):
    from napari_kinetochores.analysis.tracking import TrackingParams

    return TrackingParams(
        max_distance_um=args.link_distance_um,
        gap_closing_distance_um=args.gap_distance_um,
        max_gap_frames=args.max_gap_frames,
        drift_correction=not args.no_drift_correction,
    )


def cmd_pair(args: argparse.Namespace) -> int:
    from napari_kinetochores.analysis.pairing import pair_table
    from napari_kinetochores.io import read_points, write_points

    voxel = tuple(args.voxel_size)
    points = read_points(args.points, voxel_size_um=voxel)
    if "pair_id" in points.columns:
        points = points.drop(
            columns=[c for c in ("pair_id", "pair_reason", "pair_cost") if c in points]
        )
    out = pair_table(
        points,
        voxel,
        params=_pairing_params(args),
        channel=None if args.channel < 0 else args.channel,
        use_tracks=not args.per_frame,
        progress=not args.quiet,
    )
    write_points(args.output, out, voxel)
    kin = out[out["pair_reason"] != "not the kinetochore channel"]
    n_pairs = int(kin.loc[kin["pair_id"] >= 0, "pair_id"].nunique())
    reasons = kin.loc[kin["pair_id"] < 0, "pair_reason"].value_counts()
    detail = ", ".join(f"{k}: {v}" for k, v in reasons.items()) or "none"
    print(f"wrote {args.output}: {n_pairs} sister pairs; unpaired kinetochore rows: {detail}")
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    from napari_kinetochores.analysis.tracking import track_table
    from napari_kinetochores.io import read_points, write_points

    voxel = tuple(args.voxel_size)
    points = read_points(args.points, voxel_size_um=voxel)
    if points.attrs.get("has_time") is False:
        raise InputError(
            "no time column (t, or an Arivis/napari time axis): tracking links points over time "
            "and needs the frame of every point",
            args.points,
        )
    params = _tracking_params(args)
    out = track_table(
        points, voxel, params=params, channel=None if args.channel < 0 else args.channel
    )
    write_points(args.output, out, voxel)
    n_tracks = int(out.loc[out["track_id"] >= 0, "track_id"].nunique())
    print(f"wrote {args.output}: {n_tracks} tracks over {points['t'].nunique()} frame(s)")
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from napari_kinetochores.analysis.measurements import measure_points, write_measurements
    from napari_kinetochores.io import read_points

    voxel = tuple(args.voxel_size)
    points = read_points(args.points, voxel_size_um=voxel)
    mcherry = None if args.mcherry is None else read_points(args.mcherry, voxel_size_um=voxel)
    result = measure_points(
        points,
        voxel,
        mcherry=mcherry,
        channel=None if args.channel < 0 else args.channel,
        mcherry_channel=args.mcherry_channel,
        track=args.track,
        recompute=args.recompute,
        pairing=_pairing_params(args),
        tracking=_tracking_params(args),
        delta_cutoff_um=args.delta_cutoff_um,
        chromatic_shift_nm=args.chromatic_shift_nm,
        progress=not args.quiet,
    )
    write_measurements(args.output, result.table, voxel)
    if args.plates is not None:
        from napari_kinetochores.io import write_csv

        write_csv(args.plates, result.plates)
    print(f"wrote {args.output}: {result.summary()}")
    return 0


COMMANDS = {
    "simulate": cmd_simulate,
    "detect": cmd_detect,
    "batch": cmd_batch,
    "evaluate": cmd_evaluate,
    "train": cmd_train,
    "finetune": cmd_finetune,
}
COMMANDS.update({"pair": cmd_pair, "track": cmd_track, "measure": cmd_measure})


def cmd_export_bioimageio(args: argparse.Namespace) -> int:
    from napari_kinetochores.nn.bioimageio import export_bioimageio

    path = export_bioimageio(args.model, args.output)
    print(f"wrote {path}: bioimage.io package of {args.model} (detect with --model {path})")
    return 0


COMMANDS["export-bioimageio"] = cmd_export_bioimageio


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kinetochores`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "voxel_size", None) is not None:
            from napari_kinetochores.io import validate_voxel_size

            args.voxel_size = validate_voxel_size(args.voxel_size, "--voxel-size")
        if getattr(args, "force", None) is not None:
            _check_output(args)
        return COMMANDS[args.command](args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `kinetochores evaluate ... | head`
        sys.stderr.close()
        return 0
    except OSError as error:  # the file system refused (writes name their file: io.atomic)
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
