"""The UNet backend: a pytorch-3dunet checkpoint, its model-choice rules, peaks and refinement.

torch is imported by the functions of :mod:`napari_kinetochores.nn` that need
it, never at import time.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from napari_kinetochores.backends.base import VOXEL_SIZE_TOLERANCE, Found, check_voxel_size, where
from napari_kinetochores.core.peaks import find_peaks
from napari_kinetochores.errors import InputError
from napari_kinetochores.nn.checkpoint import (
    DEFAULT_MODEL_NAME,
    LoadedModel,
    bundled_model_path,
    load_checkpoint,
)
from napari_kinetochores.nn.data import stack_input
from napari_kinetochores.nn.inference import choose_device, predict_volume, reduced_precision

SINGLE_FRAME_MODEL = "single_frame"
"""Bundled model that the bundled default hands movies shorter than its window."""


class UNetDetector:
    """A loaded UNet with its defaults, ready to detect kinetochores frame by frame.

    The ``unet`` backend of :mod:`napari_kinetochores.backends`.
    """

    method = "unet"
    tileable = True
    score_maps = True
    libraries = ("torch", "pytorch3dunet")

    @classmethod
    def model_file(cls, options):
        """The checkpoint ``options`` asks for, checked to load (fails early, naming it)."""
        path = bundled_model_path(options.model)
        load_checkpoint(path, device="cpu")
        return path

    def __init__(
        self,
        loaded: LoadedModel,
        device: str,
        tile_shape: Sequence[int] | None = None,
        batch_size: int = 1,
        precision: str = "auto",
        test_time_flips: bool = False,
    ) -> None:
        self.loaded = loaded
        self.test_time_flips = bool(test_time_flips)
        self.autocast = reduced_precision(device, precision)
        self.model = loaded.model
        self.config = loaded.config
        self.info = loaded.info
        self.device = device
        self.tile_shape = (
            tuple(tile_shape) if tile_shape is not None else tuple(self.info.tile_shape)
        )
        self.batch_size = int(batch_size)
        self.precision = precision
        # For movies shorter than the temporal window (see for_volume): set by from_options
        # when the bundled default model was asked for.
        self.short_movie_model: str | None = None
        self._short_movie_detector: UNetDetector | None = None
        # Resample axes finer than the model's (see resampling); set by from_options.
        self.resample_to_model = False

    @classmethod
    def load(
        cls,
        model: str | None = None,
        device: str | None = None,
        tile_shape: Sequence[int] | None = None,
        batch_size: int = 1,
        precision: str = "auto",
        test_time_flips: bool = False,
    ) -> UNetDetector:
        """Load a checkpoint by path or bundled name (None: the bundled default)."""
        path = bundled_model_path(model)
        chosen = choose_device(device)
        return cls(
            load_checkpoint(path, device=chosen),
            chosen,
            tile_shape,
            batch_size,
            precision,
            test_time_flips,
        )

    @classmethod
    def from_options(cls, options) -> UNetDetector:
        """The detector a :class:`napari_kinetochores.detection.DetectionOptions` asks for.

        With the bundled default model (``options.model`` None or
        ``"default"``, as the CLI and the Detect widget pass it), movies with
        fewer frames than its temporal window go to the bundled single-frame
        model (see :meth:`for_volume`).
        """
        detector = cls.load(
            options.model,
            device=options.device,
            tile_shape=options.tile_shape,
            batch_size=options.batch_size,
            precision=options.precision,
            test_time_flips=options.test_time_flips,
        )
        detector.resample_to_model = bool(options.resample_to_model)
        if options.all_channels and len(detector.config.detected_channels) < 2:
            raise InputError(
                f"model {detector.loaded.path.name} detects the kinetochore channel only, so it "
                "cannot report the second marker's spots (--all-channels); use --method "
                "classical for those, or a model trained to detect both channels"
            )
        bundled_default = options.model in (None, DEFAULT_MODEL_NAME)
        if bundled_default and detector.config.temporal_window > 1:
            if bundled_model_path(SINGLE_FRAME_MODEL, must_exist=False) is not None:
                detector.short_movie_model = SINGLE_FRAME_MODEL
        return detector

    def for_volume(self, volume, channel: int = 0) -> UNetDetector:
        """The detector to use on this movie: this one, or the single-frame model.

        A temporal model reads the neighbouring frames as extra evidence. Fed
        a movie shorter than its window it sees the same frame repeated, so
        its noise looks like a steady spot; fed frames that are not
        continuous (independent images stacked along T, large motion) it
        reports spots that only the neighbours contain (measured:
        docs/benchmarks.md). The bundled default therefore hands such movies
        to the bundled single-frame model, with a warning; an explicitly
        chosen temporal model only warns.
        """
        window = self.config.temporal_window
        if window <= 1:
            return self
        problem = self._temporal_problem(volume, channel)
        if problem is None:
            return self
        if self.short_movie_model is None:
            warnings.warn(
                f"{where(volume)}model {self.loaded.path.name} reads {window} frames but {problem}; "
                "it may report spots of the neighbouring frames (more false detections); prefer "
                "a single-frame model (--model single_frame)",
                stacklevel=2,
            )
            return self
        if self._short_movie_detector is None:
            self._short_movie_detector = UNetDetector.load(
                self.short_movie_model,
                device=self.device,
                tile_shape=self.tile_shape,
                batch_size=self.batch_size,
                precision=self.precision,
                test_time_flips=self.test_time_flips,
            )
            self._short_movie_detector.resample_to_model = self.resample_to_model
        warnings.warn(
            f"{where(volume)}{problem}; the default model reads {window} frames, so the "
            f"bundled {self.short_movie_model!r} model is used instead",
            stacklevel=2,
        )
        return self._short_movie_detector

    def _temporal_problem(self, volume, channel: int) -> str | None:
        """Why this movie cannot feed a temporal model (None if it can)."""
        from napari_kinetochores.core.preprocess import MIN_CONTINUITY, temporal_continuity

        window = self.config.temporal_window
        if volume.n_frames < window:
            return (
                f"the movie has {volume.n_frames} frame(s), fewer than the {window} the model "
                "reads (repeated frames make its noise look like spots)"
            )
        continuity = temporal_continuity(volume, channel)
        if continuity is not None and continuity < MIN_CONTINUITY:
            return (
                f"its frames are not continuous (only {100 * continuity:.0f} % of one frame's "
                "spot signal is in the next: independent images, or large motion between frames)"
            )
        return None

    def check_input(self, volume, channel: int = 0) -> None:
        """Fail early, naming the file, when the movie cannot feed this model."""
        needed = self.input_channels(channel)
        if max(needed) >= volume.n_channels:
            raise InputError(
                f"model {self.loaded.path.name} reads channels {needed} but the movie has "
                f"{volume.n_channels} channel(s)",
                volume.path,
            )
        zoom = self.resampling(volume)  # None: resampling off, or no axis finer than the model's
        read = None if zoom is None else np.asarray(volume.voxel_size_um, float) / zoom
        # resampling makes the finer axes the model's; a coarser one is still read as it is
        check_voxel_size(volume, self.info.voxel_size_um, "model's training voxel size", read)

    def map_channels(self, n_channels: int, options) -> tuple[list[int], str]:
        """Movie channel of each output channel of the network, and what the map holds."""
        channels = [options.channel if d == 0 else d for d in self.config.detected_channels]
        kind = "unet distance map" if self.config.target == "distance" else "unet probability"
        return channels, kind

    def detect(
        self,
        volume,
        t: int,
        options,
        on_prediction: Callable[[int, np.ndarray], None] | None = None,
    ) -> Found:
        """Detections of frame ``t`` with ``options`` (the one frame loop's call).

        ``on_prediction(t, prediction)``, if given, receives the network
        output (C_out, Z, Y, X) float32 on the frame's grid before the peaks
        are searched. A frame whose voxel size is far from the model's is
        resampled to the model's voxel size first (see
        :attr:`DetectionOptions.resample_to_model`): the spots are found on
        that grid and mapped back, and refined on the original image.
        """
        scale = self.resampling(volume)
        if scale is None:
            prediction = None
            if on_prediction is not None:
                prediction = self.predict_frame(volume, t, options.channel)
                on_prediction(t, prediction)
            return self.detect_frame(
                volume,
                t,
                options.channel,
                threshold=options.threshold,
                min_distance_um=options.min_distance_um,
                all_channels=options.all_channels,
                prediction=prediction,
            )
        return self._detect_resampled(volume, t, options, scale, on_prediction)

    def resampling(self, volume) -> np.ndarray | None:
        """Zoom (z, y, x) from the movie's grid to the model's, or None when none is needed.

        Only axes finer than the model's are resampled (down to the model's
        voxel size). Interpolating a coarser axis up would smooth its noise
        into spot-like blobs: held-out 0.5/0.16/0.16 µm movies lost almost all
        precision that way (F1 0.93 -> 0.10), so coarser axes are read as
        they are.
        """
        if not self.resample_to_model:
            return None
        ratio = np.asarray(volume.voxel_size_um, float) / np.asarray(self.info.voxel_size_um, float)
        zoom = np.where(ratio < 1 - VOXEL_SIZE_TOLERANCE, ratio, 1.0)
        return None if np.all(zoom == 1.0) else zoom

    def _detect_resampled(self, volume, t: int, options, zoom: np.ndarray, on_prediction) -> Found:
        """:meth:`detect` on the model's grid: resample, predict, find peaks, map back, refine."""
        frame_shape = np.asarray(volume.shape[2:])
        model_shape = np.maximum(np.round(frame_shape * zoom).astype(int), 1)
        stack = self._input_stack(volume, t, options.channel)
        stack = np.stack([_resize(plane, model_shape) for plane in stack]).astype(np.float16)
        distance = self.config.target == "distance"
        prediction = self._predict_with_retry(stack, 1.0 if distance else 0.0)
        if on_prediction is not None:
            on_prediction(t, np.stack([_resize(p, frame_shape) for p in prediction]))
        to_frame = frame_shape / model_shape  # frame voxels per model voxel, per axis
        model_voxel = np.asarray(volume.voxel_size_um, float) * to_frame
        found = []
        for index, movie_channel in self._reported(options):
            coords, scores = self.peaks_from_prediction(
                prediction[index], model_voxel, options.threshold, options.min_distance_um
            )
            coords = (coords + 0.5) * to_frame - 0.5  # pixel centres, as skimage's resize maps them
            coords, scores = self.refine_on_image(
                coords, scores, volume.frame(t, movie_channel), volume.voxel_size_um, options
            )
            found.append((movie_channel, coords, scores))
        return found

    def _reported(self, options) -> list[tuple[int, int]]:
        """(output channel, movie channel) pairs to report for these options."""
        pairs = []
        for index, detected in enumerate(self.config.detected_channels):
            movie_channel = options.channel if detected == 0 else detected
            if movie_channel == options.channel or options.all_channels:
                pairs.append((index, movie_channel))
        return pairs

    def detect_tiled(self, volume, t: int, options, core_shape, map_writer=None) -> Found:
        """Detections of frame ``t`` read in tiles (see :mod:`napari_kinetochores.detection.tiling`)."""
        from napari_kinetochores.detection.tiling import detect_unet_tiled

        writer = (
            None if map_writer is None else (lambda region, block: map_writer(region, block, 0))
        )
        return detect_unet_tiled(
            volume,
            t,
            self,
            options.channel,
            options.threshold,
            options.min_distance_um,
            options.all_channels,
            core_shape,
            writer,
        )

    def input_channels(self, channel: int = 0) -> list[int]:
        """Movie channels the model reads, with the kinetochore channel first."""
        channels = list(self.config.image_channels)
        if channel != 0 and channels[0] == 0:
            channels = [channel] + [c for c in channels if c != channel]
        return channels

    def predict_frame(self, volume, t: int, channel: int = 0) -> np.ndarray:
        """Probability (or distance) volume of frame ``t``: (C_out, Z, Y, X) float32."""
        stack = self._input_stack(volume, t, channel)
        distance = self.config.target == "distance"
        return self._predict_with_retry(stack, 1.0 if distance else 0.0)

    def _input_stack(self, volume, t: int, channel: int) -> np.ndarray:
        """The network input of frame ``t`` on the frame's grid, float16."""
        # float16 storage halves the input's memory on large frames; its rounding
        # (1 part in 2000) is far below the noise, which is 0.1 in these units.
        return stack_input(
            volume.frame,
            t,
            volume.n_frames,
            self.input_channels(channel),
            self.config.temporal_window,
            dtype=np.float16,
            **self.normalization,
        )

    @property
    def normalization(self) -> dict:
        """The input normalisation of this model, as keyword arguments of ``stack_input``."""
        if self.info.normalization == "percentile":
            return {"percentiles": tuple(self.info.percentiles)}
        return {"noise_units": float(self.info.noise_units)}

    @property
    def signal_channel(self) -> int:
        """Input channel of the kinetochore channel at frame ``t`` (the empty-tile test)."""
        return self.config.temporal_window // 2

    def _predict_with_retry(self, stack: np.ndarray, empty_value: float) -> np.ndarray:
        import torch

        tile = np.asarray(self.tile_shape)
        while True:
            try:
                return predict_volume(
                    self.model,
                    stack,
                    tile,
                    batch_size=self.batch_size,
                    device=self.device,
                    signal_channel=self.signal_channel,
                    empty_value=empty_value,
                    divisor=self.config.divisor,
                    autocast=self.autocast,
                    test_time_flips=self.test_time_flips,
                )
            except torch.OutOfMemoryError:
                if self.device != "cuda" or np.all(tile <= np.asarray(self.config.divisor) * 2):
                    raise
                torch.cuda.empty_cache()
                tile = np.maximum(tile // np.array([1, 2, 2]), np.asarray(self.config.divisor))
                warnings.warn(
                    f"CUDA out of memory; retrying with smaller tiles {tuple(int(v) for v in tile)}",
                    stacklevel=2,
                )

    def peaks_from_prediction(
        self,
        prediction: np.ndarray,
        voxel_size_um: Sequence[float],
        threshold: float | None = None,
        min_distance_um: float | None = None,
        image: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sub-voxel peaks of one output channel (Z, Y, X); scores in [0, 1], higher is surer.

        The network finds the spots; with ``image`` (the same frame and
        channel, (Z, Y, X)) their sub-voxel centres come from the image
        (:func:`napari_kinetochores.core.refine.refine_detections`, then a joint
        gaussian fit of neighbours, :func:`~napari_kinetochores.core.refine.fit_spot_mixture`),
        which is more precise than a fit on the network's output.
        """
        threshold = self.info.threshold if threshold is None else float(threshold)
        min_distance = (
            self.info.min_distance_um if min_distance_um is None else float(min_distance_um)
        )
        if self.config.target == "distance":
            coords, values = find_peaks(
                prediction,
                voxel_size_um,
                min_distance,
                threshold_abs=threshold,
                mode="min",
                refine="quadratic",
            )
            scores = 1.0 - values
        else:
            coords, scores = find_peaks(
                prediction, voxel_size_um, min_distance, threshold_abs=threshold, refine="gaussian"
            )
        if image is not None:
            coords, scores = self._refine(coords, scores, image, voxel_size_um, min_distance)
        return coords, scores

    def refine_on_image(self, coords, scores, image, voxel_size_um, options):
        """Sub-voxel centres of peaks (N, 3) from the image (Z, Y, X); see :meth:`peaks_from_prediction`."""
        min_distance = (
            self.info.min_distance_um
            if options.min_distance_um is None
            else float(options.min_distance_um)
        )
        return self._refine(coords, scores, image, voxel_size_um, min_distance)

    @staticmethod
    def _refine(coords, scores, image, voxel_size_um, min_distance: float):
        from napari_kinetochores.core.peaks import keep_strongest
        from napari_kinetochores.core.refine import fit_spot_mixture, refine_detections

        coords = refine_detections(image, coords, voxel_size_um)
        # Refinement can bring two peaks of one elongated blob closer than the minimum
        # distance: the weaker is a duplicate (held-out moderate SNR, 3-frame model:
        # F1 0.961 -> 0.969). Thinned before the joint fit, where a duplicate would
        # push the spot's true detection away.
        keep = keep_strongest(coords, scores, voxel_size_um, min_distance)
        coords, scores = coords[keep], scores[keep]
        return fit_spot_mixture(image, coords, voxel_size_um), scores

    def detect_frame(
        self,
        volume,
        t: int,
        channel: int = 0,
        threshold: float | None = None,
        min_distance_um: float | None = None,
        all_channels: bool = False,
        prediction: np.ndarray | None = None,
    ) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Detections of frame ``t``: a list of (movie channel, coords (N, 3) voxels, scores).

        ``prediction`` is the output of :meth:`predict_frame` for this frame
        when the caller already has it (it is then not computed again).
        """
        if prediction is None:
            prediction = self.predict_frame(volume, t, channel)
        found = []
        for index, detected in enumerate(self.config.detected_channels):
            movie_channel = channel if detected == 0 else detected
            if movie_channel != channel and not all_channels:
                continue
            coords, scores = self.peaks_from_prediction(
                prediction[index],
                volume.voxel_size_um,
                threshold,
                min_distance_um,
                image=volume.frame(t, movie_channel),
            )
            found.append((movie_channel, coords, scores))
        return found


def _resize(volume_zyx: np.ndarray, shape_zyx) -> np.ndarray:
    """Linear resampling of a (Z, Y, X) volume to ``shape_zyx`` (pixel centres aligned), float32."""
    from skimage.transform import resize

    return resize(
        np.asarray(volume_zyx, np.float32),
        tuple(int(s) for s in shape_zyx),
        order=1,
        mode="edge",
        anti_aliasing=False,
        preserve_range=True,
    ).astype(np.float32, copy=False)
