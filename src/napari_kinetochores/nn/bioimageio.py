"""bioimage.io model packages: export our UNet checkpoints, and detect with a package.

A package (a zip holding ``rdf.yaml``, model format 0.5) carries
``pytorch_state_dict`` weights whose architecture is the standalone builder
:mod:`napari_kinetochores.nn.bioimageio_architecture` (pytorch-3dunet's UNet
with per-level pooling), the same network traced to TorchScript, test tensors
made from a simulated frame, and micrometre scales on its space axes.
bioimage.io consumers (ilastik, deepImageJ, BiaPy) run it without this package
and get the network's heatmap; napari-kinetochores turns that heatmap into
points.

The contract that a package must meet to be used for detection
(:func:`load_bioimageio_package`, through ``--model PACKAGE.zip``):

- one input tensor with axes ``batch, channel, z, y, x``; its channels named
  ``c<movie channel>_t<frame offset>`` channel-major (``c0_t-1, c0_t,
  c0_t+1``), or a single channel (the kinetochore channel, one frame); space
  axes in micrometre units whose scales are the training voxel size;
- one output tensor with the same axes, channels named
  ``c<movie channel>_heatmap`` (maxima are spots) or ``c<channel>_distance``
  (minima are spots), all of one kind;
- no pre- or postprocessing but a cast to float32: the input is in noise
  units (:func:`napari_kinetochores.core.normalize.normalize_noise`);
- ``pytorch_state_dict`` weights of pytorch-3dunet's ``UNet3D`` or
  ``ResidualUNet3D`` (from the library, or our architecture file).

Detection defaults (threshold, minimum distance, noise units, tile shape)
come from the rdf's ``config["napari-kinetochores"]`` when it has one.
``bioimageio.spec`` (the ``[bioimageio]`` extra) is imported inside the
functions that need it.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from napari_kinetochores.errors import InputError
from napari_kinetochores.nn.checkpoint import (
    LoadedModel,
    ModelInfo,
    bundled_model_path,
    check_info,
    check_model_config,
    load_checkpoint,
)
from napari_kinetochores.nn.model import ModelConfig, architecture_kwargs, build_model

CONFIG_KEY = "napari-kinetochores"
"""Key of our detection defaults in the rdf's ``config``."""
ARCHITECTURE_CALLABLE = "kinetochore_unet"
ARCHITECTURE_FILE = "kinetochore_unet.py"
PYTORCH3DUNET_MODULE = "pytorch3dunet.unet3d.model"
TEST_SHAPE_ZYX = (24, 64, 64)
"""Test tensor size (z, y, x) in voxels: a simulated frame, small enough to test in seconds
(a multiple of the network's pooling divisor, and of at least the smallest input size)."""
HALO_ZYX = (4, 8, 8)
"""Output voxels per side that a tiling consumer should discard (1.2 µm z, 1 µm y/x)."""
INSTALL_HINT = (
    'reading and writing bioimage.io packages needs pip install "napari-kinetochores[bioimageio]"'
)
_RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
_INPUT_CHANNEL = re.compile(r"^c(\d+)_t([+-]\d+)?$")
_OUTPUT_CHANNEL = re.compile(r"^c(\d+)_(heatmap|distance)$")
_TARGET_OF_KIND = {"heatmap": "gaussian", "distance": "distance"}


def export_bioimageio(model: str | Path, path: str | Path) -> Path:
    """Write a UNet checkpoint as a bioimage.io model package (format 0.5, a zip).

    Parameters
    ----------
    model : str or Path
        A bundled model name (``"default"``, ``"single_frame"``) or a
        checkpoint path.
    path : str or Path
        The package to write (``.zip``); written atomically.

    Returns
    -------
    Path of the package. Its test tensors are a simulated frame at the
    model's voxel size, normalised and run through the network here.
    """
    spec = _spec()
    loaded = load_checkpoint(bundled_model_path(str(model)), device="cpu")
    if loaded.info.normalization != "noise":
        raise InputError(
            f"the model reads {loaded.info.normalization}-normalised input (a checkpoint older "
            "than noise normalisation); only noise-normalised models are exported",
            loaded.path,
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with tempfile.TemporaryDirectory() as folder:
        _write_files(loaded, Path(folder))
        spec.save_bioimageio_package(_description(loaded, Path(folder)), output_path=temporary)
    temporary.replace(path)
    return path


def _write_files(loaded: LoadedModel, folder: Path) -> None:
    """The package's files: weights (state dict and TorchScript), architecture, tensors, docs, env."""
    import tifffile
    import torch

    test_input, test_output = _test_tensors(loaded)
    np.save(folder / "test_input.npy", test_input)
    np.save(folder / "test_output.npy", test_output)
    tifffile.imwrite(folder / "sample_input.tif", test_input[0])
    tifffile.imwrite(folder / "sample_output.tif", test_output[0])
    weights = {k: v.detach().cpu() for k, v in loaded.model.state_dict().items()}
    torch.save(weights, folder / "weights.pt")
    # TorchScript for consumers without Python (deepImageJ); bioimageio.core's test checks it.
    # torch 2.13 deprecates tracing, but TorchScript is the format those consumers read.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        example = torch.from_numpy(test_input)
        traced = torch.jit.trace(loaded.model.eval(), example, check_trace=False)
    traced.save(str(folder / "weights_torchscript.pt"))
    shutil.copy(Path(__file__).with_name("bioimageio_architecture.py"), folder / ARCHITECTURE_FILE)
    (folder / "README.md").write_text(_documentation(loaded), encoding="utf-8")
    (folder / "environment.yaml").write_text(
        "channels: [conda-forge, nodefaults]\n"
        f"dependencies: [python>=3.10, pytorch>={torch.__version__.split('+')[0]}, "
        "pytorch-3dunet>=1.9, numpy]\n",
        encoding="utf-8",
    )


def _spec():
    """``bioimageio.spec``, or an InputError saying how to install it."""
    try:
        import bioimageio.spec as spec
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return spec


def _test_tensors(loaded: LoadedModel) -> tuple[np.ndarray, np.ndarray]:
    """A simulated frame as network input (1, C_in, Z, Y, X) and its output (1, C_out, Z, Y, X)."""
    import torch

    from napari_kinetochores.backends.unet import UNetDetector
    from napari_kinetochores.nn.data import stack_input
    from napari_kinetochores.simulate import SimulationParams, simulate_movie

    config, info = loaded.config, loaded.info
    window = config.temporal_window
    params = SimulationParams(
        n_frames=window,
        shape_zyx=shape_of_test_tensors(config),
        voxel_size_um=tuple(info.voxel_size_um),
        n_pairs=6,
    )
    movie = simulate_movie(params, seed=0)
    detector = UNetDetector(loaded, "cpu", precision="fp32")
    stack = stack_input(
        lambda t, c: movie.image[t, c],
        window // 2,
        window,
        config.image_channels,
        window,
        **detector.normalization,
    )
    test_input = stack[np.newaxis].astype(np.float32)
    with torch.inference_mode():
        test_output = loaded.model(torch.from_numpy(test_input)).float().numpy()
    return test_input, test_output


def shape_of_test_tensors(config: ModelConfig) -> tuple[int, int, int]:
    """Test tensor size (z, y, x): :data:`TEST_SHAPE_ZYX` rounded up to the pooling divisor.

    >>> shape_of_test_tensors(ModelConfig(pool_kernels=[[1, 2, 2], [2, 2, 2]]))
    (24, 64, 64)
    >>> shape_of_test_tensors(ModelConfig(num_levels=4, pool_kernels=[[2, 4, 4]] * 3))
    (24, 64, 64)
    >>> shape_of_test_tensors(ModelConfig(num_levels=5, pool_kernels=[[2, 2, 2]] * 4))
    (32, 64, 64)
    """
    return tuple(
        int(-(-size // step) * step)
        for size, step in zip(TEST_SHAPE_ZYX, config.divisor, strict=True)
    )


def input_channel_names(config: ModelConfig) -> list[str]:
    """Names of the network's input channels, channel-major: ``c0_t-1, c0_t, c0_t+1, …``.

    >>> input_channel_names(ModelConfig(image_channels=[0, 1], temporal_window=3))
    ['c0_t-1', 'c0_t', 'c0_t+1', 'c1_t-1', 'c1_t', 'c1_t+1']
    """
    half = config.temporal_window // 2
    offsets = [f"{dt:+d}" if dt else "" for dt in range(-half, half + 1)]
    return [f"c{c}_t{offset}" for c in config.image_channels for offset in offsets]


def output_channel_names(config: ModelConfig) -> list[str]:
    """Names of the network's output channels: ``c<channel>_heatmap`` or ``c<channel>_distance``.

    >>> output_channel_names(ModelConfig(detected_channels=[0, 1], target="distance"))
    ['c0_distance', 'c1_distance']
    """
    kind = "distance" if config.target == "distance" else "heatmap"
    return [f"c{c}_{kind}" for c in config.detected_channels]


def _space_axes(v05, loaded: LoadedModel, output: bool):
    """z, y, x axes in micrometres at the training voxel size (outputs: same size as the input).

    Input sizes step by the network's pooling divisor.
    """
    axes = []
    voxel, steps = loaded.info.voxel_size_um, loaded.config.divisor
    for axis, scale, halo, step in zip("zyx", voxel, HALO_ZYX, steps, strict=True):
        common = {"id": v05.AxisId(axis), "unit": "micrometer", "scale": float(scale)}
        if output:
            size = v05.SizeReference(tensor_id=v05.TensorId("input"), axis_id=v05.AxisId(axis))
            axes.append(v05.SpaceOutputAxisWithHalo(size=size, halo=halo, **common))
        else:
            size = v05.ParameterizedSize(min=-(-4 * halo // step) * step, step=step)
            axes.append(v05.SpaceInputAxis(size=size, **common))
    return axes


def _description(loaded: LoadedModel, folder: Path):
    """The model description (``rdf.yaml`` content) of ``loaded``, its files in ``folder``."""
    from bioimageio.spec.model import v0_5 as v05

    return v05.ModelDescr(
        name=f"napari-kinetochores {re.sub(r'[^A-Za-z0-9_+() -]', '-', loaded.path.stem)[:80]} 3D UNet",
        description=_summary(loaded),
        authors=[v05.Author(name="napari-kinetochores maintainers")],
        cite=_citations(v05),
        license="BSD-3-Clause",
        tags=["kinetochore", "spot detection", "3D", "time-lapse", "fluorescence", "pytorch"],
        documentation=v05.FileDescr(source=folder / "README.md"),
        inputs=[_input_description(v05, loaded, folder)],
        outputs=[_output_description(v05, loaded, folder)],
        weights=_weights_description(v05, loaded.config, folder),
        config=v05.Config(**{CONFIG_KEY: _info_config(loaded.info)}),
    )


def _input_description(v05, loaded: LoadedModel, folder: Path):
    return v05.InputTensorDescr(
        id=v05.TensorId("input"),
        description=f"{_frames_text(loaded.config)} in noise units: "
        "(v - median) / (noise_units x noise sigma), per frame",
        axes=[
            v05.BatchAxis(),
            v05.ChannelAxis(channel_names=input_channel_names(loaded.config)),
            *_space_axes(v05, loaded, output=False),
        ],
        test_tensor=v05.FileDescr(source=folder / "test_input.npy"),
        sample_tensor=v05.FileDescr(source=folder / "sample_input.tif"),
        data=v05.IntervalOrRatioDataDescr(type="float32"),
    )


def _output_description(v05, loaded: LoadedModel, folder: Path):
    kind = "distance map" if loaded.config.target == "distance" else "heatmap"
    return v05.OutputTensorDescr(
        id=v05.TensorId("output"),
        description=f"spot {kind} of frame t; napari-kinetochores finds its peaks",
        axes=[
            v05.BatchAxis(),
            v05.ChannelAxis(channel_names=output_channel_names(loaded.config)),
            *_space_axes(v05, loaded, output=True),
        ],
        test_tensor=v05.FileDescr(source=folder / "test_output.npy"),
        sample_tensor=v05.FileDescr(source=folder / "sample_output.tif"),
        data=v05.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
    )


def _weights_description(v05, config: ModelConfig, folder: Path):
    """State dict with our architecture file (plus its conda environment), and TorchScript."""
    import torch

    version = v05.Version(torch.__version__.split("+")[0])
    architecture = v05.ArchitectureFromFileDescr(
        source=folder / ARCHITECTURE_FILE,
        callable=ARCHITECTURE_CALLABLE,
        kwargs=architecture_kwargs(config),
    )
    return v05.WeightsDescr(
        pytorch_state_dict=v05.PytorchStateDictWeightsDescr(
            source=folder / "weights.pt",
            architecture=architecture,
            pytorch_version=version,
            dependencies=v05.FileDescr(source=folder / "environment.yaml"),
        ),
        torchscript=v05.TorchscriptWeightsDescr(
            source=folder / "weights_torchscript.pt",
            pytorch_version=version,
            parent="pytorch_state_dict",
            comment="traced from the pytorch_state_dict weights by napari-kinetochores",
        ),
    )


def _info_config(info: ModelInfo) -> dict:
    """Detection defaults kept in ``config["napari-kinetochores"]`` (:data:`_INFO_KEYS`, plain YAML)."""
    return {
        "normalization": info.normalization,
        "noise_units": float(info.noise_units),
        "percentiles": [float(p) for p in info.percentiles],
        "threshold": float(info.threshold),
        "min_distance_um": float(info.min_distance_um),
        "heatmap_sigma_um": [float(s) for s in np.broadcast_to(info.heatmap_sigma_um, (3,))],
        "distance_clip_um": float(info.distance_clip_um),
        "tile_shape": [int(s) for s in info.tile_shape],
    }


def _citations(v05) -> list:
    return [
        v05.CiteEntry(
            text="Samudre A. UNet 3D Kinetochores, bioimage.io model of the Kreshuk lab "
            "Kinetochores project (the research this model continues), 2019",
            url="https://github.com/bioimage-io/pytorch-bioimage-io/tree/master/specs/models/"
            "unet3d_kinetochores",
        ),
        v05.CiteEntry(
            text="Wolny A, Cerrone L, et al. Accurate and versatile 3D segmentation of plant "
            "tissues at cellular resolution. eLife 2020 (pytorch-3dunet)",
            doi="10.7554/eLife.57613",
        ),
    ]


def _summary(loaded: LoadedModel) -> str:
    """The rdf's description: what goes in, what comes out, and how it becomes points."""
    config, info = loaded.config, loaded.info
    peaks = "maxima" if config.target != "distance" else "minima"
    return (
        f"3D UNet (pytorch-3dunet) that maps {config.temporal_window} consecutive frames of "
        "a kinetochore channel to a spot heatmap of the middle frame. Input: each frame in "
        f"noise units, (v - median) / ({info.noise_units:g} x sigma), sigma the robust sd of "
        "x-neighbour differences / sqrt 2, per frame. Points: napari-kinetochores finds the "
        f"output's {peaks} above {info.threshold:g}, at least {info.min_distance_um:g} um apart, "
        "and refines them to sub-voxel centres on the image (kinetochores detect MOVIE "
        "--model PACKAGE.zip)."
    )


def _documentation(loaded: LoadedModel) -> str:
    """The package's README.md: input, output, peak finding, validation, citation."""
    config, info = loaded.config, loaded.info
    voxel = " x ".join(f"{v:g}" for v in info.voxel_size_um)
    return f"""# napari-kinetochores {loaded.path.stem}: 3D UNet kinetochore heatmap

A 3D UNet (pytorch-3dunet {config.architecture}, {config.num_levels} levels,
{config.f_maps} feature maps, pooling {config.pool_kernels}) trained with
napari-kinetochores at voxel size (z, y, x) = {voxel} µm.

## Input

`input`: (batch, channel, z, y, x) float32. The channels are {_frames_text(config)}
of movie channel(s) {config.image_channels} (names `c<channel>_t<offset>`; at a
movie's ends its first and last frames repeat). Each frame is normalised on its own to noise
units: `(v - background) / ({info.noise_units:g} * sigma)`, where the background
is the frame's median and sigma the robust standard deviation (MAD, refined
by a clipped standard deviation) of the differences between x-neighbours,
divided by sqrt(2) (`napari_kinetochores.core.normalize.normalize_noise`).
bioimage.io's predefined preprocessing cannot express this estimate, so the
package declares no preprocessing: give it input normalised this way. The
space axes carry the training voxel size in micrometres; data at another voxel
size should be resampled to it.

## Output

`output`: (batch, channel, z, y, x) float32 in [0, 1], the same size as the
input: a {"normalised distance map (spots are minima)" if config.target == "distance" else "gaussian heatmap (spots are maxima)"}
of frame t for movie channel(s) {config.detected_channels}. Discard
{HALO_ZYX} voxels (z, y, x) at tile borders.

## From heatmap to points

bioimage.io tools (ilastik, deepImageJ) stop at the heatmap. napari-kinetochores
turns it into points: local {"minima" if config.target == "distance" else "maxima"}
above the threshold {info.threshold:g}, at least {info.min_distance_um:g} µm
apart in physical units, refined to sub-voxel centres on the image (a centroid
and a joint gaussian fit of neighbouring spots):

    pip install napari-kinetochores
    kinetochores detect movie.tif --model this_package.zip -o points.csv

## Validation

{_validation_text(info)} The test tensors of this package are a simulated
frame at the training voxel size, normalised and run through the network by
napari-kinetochores; `bioimageio test` reproduces them.

## Citation

Cite the research this model continues (the Kreshuk lab Kinetochores project
and its UNet 3D Kinetochores bioimage.io model), pytorch-3dunet (Wolny et al.,
eLife 2020), and napari-kinetochores.
"""


def _frames_text(config: ModelConfig) -> str:
    """Which frames the input channels hold, in words.

    >>> _frames_text(ModelConfig(temporal_window=1)), _frames_text(ModelConfig(temporal_window=3))
    ('frame t', 'frames t-1 to t+1')
    """
    half = config.temporal_window // 2
    return f"frames t-{half} to t+{half}" if half else "frame t"


def _validation_text(info: ModelInfo) -> str:
    """The training's validation result, as the checkpoint recorded it."""
    validation = info.training.get("validation") or {}
    if "f1" not in validation:
        return "napari-kinetochores' docs/models.md and docs/benchmarks.md report its accuracy."
    levels = ", ".join(f"{k} {v:.3f}" for k, v in validation.get("f1_by_level", {}).items())
    return (
        "In the training's validation (as the checkpoint records it) the whole "
        "napari-kinetochores pipeline (this network, peaks above "
        f"{validation.get('threshold', info.threshold):g}, refinement) reached F1 "
        f"{validation['f1']:.3f} after one-to-one matching within 0.3 µm"
        + (f" (simulated movies by signal-to-noise level: {levels})." if levels else ".")
        + " napari-kinetochores' docs/benchmarks.md reports held-out benchmarks."
    )


def is_bioimageio_package(path: str | Path) -> bool:
    """Whether ``path`` is a bioimage.io package (a zip with an rdf) or an rdf file itself."""
    path = Path(path)
    if path.name in _RDF_NAMES or path.name.endswith((".rdf.yaml", ".bioimageio.yaml")):
        return path.is_file()
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name in _RDF_NAMES for name in archive.namelist())


def load_bioimageio_package(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Our checkpoint, rebuilt in memory from a bioimage.io package of a 3D UNet spot heatmap.

    Raises :class:`InputError` naming the package and what does not fit the
    contract (module docstring): axes, channels, output kind, voxel scale,
    processing or weights.
    """
    import torch

    path = Path(path)
    with contextlib.ExitStack() as stack:
        # bioimageio.spec leaves a zip it opened itself open; this one is closed here
        source = stack.enter_context(zipfile.ZipFile(path)) if zipfile.is_zipfile(path) else path
        description = _read_description(source, path)
        config = _model_config(description, path)
        info = _model_info(description, path)
        weights = description.weights.pytorch_state_dict.get_reader().read()
    try:
        state_dict = torch.load(io.BytesIO(weights), map_location=device, weights_only=True)
        model = build_model(config)
        model.load_state_dict(state_dict, strict=True)
    except Exception as error:  # noqa: BLE001  (torch raises many types)
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"weights do not fit the described UNet ({first})", path) from None
    model.to(device)
    model.eval()
    return LoadedModel(model, config, info, path, None)


def _read_description(source, path: Path):
    """The package's model description (format 0.5), or an InputError with the spec's complaints."""
    spec = _spec()
    try:
        description = spec.load_model_description(source, format_version="latest")
    except Exception as error:  # noqa: BLE001  (pydantic and IO errors of many types)
        raise InputError(f"not a readable bioimage.io model package ({error})", path) from None
    if isinstance(description, spec.ModelDescr):
        return description
    summary = getattr(description, "validation_summary", None)
    errors = [
        f"{'.'.join(map(str, error.loc))}: {error.msg}"
        for detail in getattr(summary, "details", [])
        for error in detail.errors
    ]
    what = "; ".join(errors[:5]) if errors else f"a {getattr(description, 'type', 'other')}"
    raise InputError(f"not a valid bioimage.io model description ({what})", path)


def _model_config(description, path: Path) -> ModelConfig:
    """The ModelConfig of a package: architecture kwargs, channel names, output kind."""
    if len(description.inputs) != 1 or len(description.outputs) != 1:
        raise InputError(
            f"the package has {len(description.inputs)} input and {len(description.outputs)} "
            "output tensors; a UNet spot heatmap has one of each",
            path,
        )
    source, target = description.inputs[0], description.outputs[0]
    image_channels, window = _input_layout(_channel_names(source, "input", path), path)
    detected, target_kind = _output_layout(_channel_names(target, "output", path), path)
    _check_processing(source.preprocessing, "preprocessing", path)
    _check_processing(target.postprocessing, "postprocessing", path)
    values = _unet_kwargs(description, path)
    expected = (len(image_channels) * window, len(detected))
    if (values.pop("in_channels"), values.pop("out_channels")) != expected:
        raise InputError(
            f"the architecture's in/out channels do not match the tensors' {expected}", path
        )
    values.update(
        image_channels=image_channels,
        temporal_window=window,
        detected_channels=detected,
        target=target_kind,
    )
    return check_model_config(values, path)


def _channel_names(tensor, which: str, path: Path) -> list[str]:
    """Channel names of a (batch, channel, z, y, x) tensor; InputError for other axes."""
    ids = [str(axis.id) for axis in tensor.axes]
    if ids != ["batch", "channel", "z", "y", "x"]:
        raise InputError(
            f"the {which} tensor has axes {ids}; a 3D UNet spot heatmap needs "
            "['batch', 'channel', 'z', 'y', 'x']",
            path,
        )
    return [str(name) for name in tensor.axes[1].channel_names]


def _input_layout(names: list[str], path: Path) -> tuple[list[int], int]:
    """(movie channels, temporal window) from input channel names ``c<c>_t<offset>``."""
    if len(names) == 1 and not _INPUT_CHANNEL.match(names[0]):
        return [0], 1  # one channel: the kinetochore channel, one frame
    parsed = [_INPUT_CHANNEL.match(name) for name in names]
    if not all(parsed):
        raise InputError(
            f"input channels {names} are not named c<channel>_t<offset> (e.g. c0_t-1, c0_t, "
            "c0_t+1), so which are frames and which colours is unknown",
            path,
        )
    pairs = [(int(m.group(1)), int(m.group(2) or 0)) for m in parsed]
    channels = list(dict.fromkeys(c for c, _ in pairs))
    half = max(abs(dt) for _, dt in pairs)
    expected = [(c, dt) for c in channels for dt in range(-half, half + 1)]
    if pairs != expected:
        raise InputError(
            f"input channels {names} are not a channel-major window of frames t-{half}..t+{half}",
            path,
        )
    return channels, 2 * half + 1


def _output_layout(names: list[str], path: Path) -> tuple[list[int], str]:
    """(detected movie channels, target kind) from output names ``c<c>_heatmap|distance``."""
    parsed = [_OUTPUT_CHANNEL.match(name) for name in names]
    kinds = {m.group(2) for m in parsed if m}
    if not all(parsed) or len(kinds) != 1:
        raise InputError(
            f"output channels {names} are not all c<channel>_heatmap or all "
            "c<channel>_distance, so the output kind (spot heatmap or distance map) is unknown",
            path,
        )
    return [int(m.group(1)) for m in parsed], _TARGET_OF_KIND[kinds.pop()]


def _check_processing(steps, which: str, path: Path) -> None:
    """Only casts to float32 fit: our input is in noise units, our output a raw heatmap."""
    for step in steps:
        dtype = getattr(getattr(step, "kwargs", None), "dtype", None)
        if step.id != "ensure_dtype" or dtype != "float32":
            raise InputError(
                f"the package's {which} step {step.id!r} does not fit: napari-kinetochores "
                "feeds noise-normalised input and reads the raw heatmap (docs/bioimageio.md)",
                path,
            )


def _unet_kwargs(description, path: Path) -> dict:
    """ModelConfig fields of the package's pytorch-3dunet architecture (plus in/out channels)."""
    entry = description.weights.pytorch_state_dict
    if entry is None:
        available = [name for name, value in description.weights if value is not None]
        raise InputError(f"the package has no pytorch_state_dict weights (only {available})", path)
    architecture = entry.architecture
    kwargs = dict(architecture.kwargs)
    if getattr(architecture, "import_from", None) == PYTORCH3DUNET_MODULE:
        return _library_kwargs(str(architecture.callable), kwargs, path)
    if str(architecture.callable) != ARCHITECTURE_CALLABLE:
        raise InputError(
            f"the package's architecture {architecture.callable!r} is neither pytorch-3dunet's "
            f"UNet3D/ResidualUNet3D nor napari-kinetochores' {ARCHITECTURE_CALLABLE}",
            path,
        )
    return kwargs


def _library_kwargs(name: str, kwargs: dict, path: Path) -> dict:
    """ModelConfig fields of ``pytorch3dunet.unet3d.model.<name>(**kwargs)``."""
    defaults = {"final_sigmoid": True, "is_segmentation": True, "conv_padding": 1}
    for key, value in defaults.items():
        if kwargs.pop(key, value) != value:
            raise InputError(f"pytorch-3dunet {name} with {key}={kwargs} does not fit", path)
    kwargs.pop("dropout_prob", None)  # inactive in eval mode
    levels = int(kwargs.pop("num_levels", 4))
    pool = kwargs.pop("pool_kernel_size", 2)
    pool = [pool] * 3 if isinstance(pool, int) else list(pool)
    known = {"in_channels", "out_channels", "f_maps", "layer_order", "num_groups"}
    if set(kwargs) - known:
        raise InputError(
            f"pytorch-3dunet {name} options {sorted(set(kwargs) - known)} are not supported", path
        )
    return {
        "architecture": name,
        "num_levels": levels,
        "pool_kernels": [pool] * (levels - 1),
        "f_maps": int(kwargs.pop("f_maps", 64)),
        "layer_order": str(kwargs.pop("layer_order", "gcr")),
        "num_groups": int(kwargs.pop("num_groups", 8)),
        **kwargs,
    }


def _model_info(description, path: Path) -> ModelInfo:
    """Voxel size from the input's micrometre scales; detection defaults from our config block."""
    axes = description.inputs[0].axes[2:]
    units = [str(axis.unit) for axis in axes]
    if units != ["micrometer"] * 3:
        raise InputError(
            f"the input's z, y, x axes have units {units}; the voxel size must be in micrometer "
            "(scale = the training voxel size)",
            path,
        )
    ours = (description.config.model_extra or {}).get(CONFIG_KEY) or {}
    if not isinstance(ours, dict):
        raise InputError(f"config[{CONFIG_KEY!r}] of the package must be a mapping", path)
    values = {key: ours[key] for key in _INFO_KEYS if key in ours}
    values.setdefault("normalization", "noise")
    values["voxel_size_um"] = tuple(float(axis.scale) for axis in axes)
    values["training"] = {"source": "bioimage.io package"}
    return check_info(values, path)


_INFO_KEYS = (
    "normalization",
    "noise_units",
    "percentiles",
    "threshold",
    "min_distance_um",
    "heatmap_sigma_um",
    "distance_clip_um",
    "tile_shape",
)
