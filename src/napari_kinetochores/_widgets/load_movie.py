"""Load movie: open a movie with full control of axes, voxel size, channels and frames.

Users often get files whose metadata is missing or wrong. The widget reads
what the file says (:func:`napari_kinetochores.io.read_volume`), shows it, and
lets the user override the axes, the voxel size (z, y, x) µm, the channel
names and colours and the frame range before the layers are added. Large
files stay lazy (dask): only one frame is read to set the display range.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, FileEdit, Label, LineEdit, PushButton, SpinBox
from napari.layers import Layer
from qtpy.QtWidgets import QFileDialog

from napari_kinetochores._napari.io import (
    channel_colormap,
    gui_message,
    points_layer,
    volume_layers,
)
from napari_kinetochores._widgets._common import KinetochoreWidget, voxel_size_spinboxes
from napari_kinetochores.errors import InputError

MOVIE_FILTER = "Movies (*.tif *.tiff *.h5 *.hdf5 *.hdf *.npy);;All files (*)"


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class LoadMovieWidget(KinetochoreWidget):
    """Open a movie (TIFF/OME-TIFF, zarr/OME-Zarr, HDF5, npy) with its voxel size.

    Parameters
    ----------
    napari_viewer
        The viewer to add the layers to.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.path = FileEdit(label="movie file", mode="r", filter=MOVIE_FILTER, nullable=True)
        self.folder = PushButton(text="Choose a zarr folder…")
        self.dataset = ComboBox(label="dataset", choices=[], nullable=True, visible=False)
        self.axes = LineEdit(
            label="axes", tooltip="axes of the stored array, e.g. TZCYX (from the metadata)"
        )
        self.apply_axes = PushButton(text="Re-read with these axes")
        self.found = Label(value="no file chosen")
        self.voxel = voxel_size_spinboxes()
        self.names = LineEdit(label="channel names", value="EGFP, mCherry")
        self.colours = LineEdit(label="colours", value="green, magenta")
        self.first = SpinBox(label="first frame", min=0, max=0)
        self.last = SpinBox(label="last frame", min=0, max=0)
        self.reference = FileEdit(
            label="reference CSV (optional)", mode="r", filter="*.csv", nullable=True
        )
        self.open = PushButton(text="Open")
        self.form.extend(
            [
                self.path,
                self.folder,
                self.dataset,
                self.axes,
                self.apply_axes,
                self.found,
                *self.voxel,
                self.names,
                self.colours,
                self.first,
                self.last,
                self.reference,
                self.open,
            ]
        )
        self.found.native.setWordWrap(True)
        self._volume: Any = None
        self._key: tuple | None = None
        self.path.changed.connect(self.guarded("Reading the movie", self.inspect))
        self.dataset.changed.connect(self.guarded("Reading the movie", self.inspect))
        self.apply_axes.changed.connect(
            self.guarded("Reading the movie", lambda: self.inspect(axes=self.axes.value))
        )
        self.folder.changed.connect(self._choose_folder)
        self.open.changed.connect(self.guarded("Opening the movie", self.add_layers))

    # ------------------------------------------------------------------ reading

    def _choose_folder(self, *_: Any) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a zarr / OME-Zarr folder")
        if folder:
            self.path.value = folder

    def inspect(self, axes: str | None = None) -> Any:
        """Read the chosen file's metadata and fill the form with what it says.

        Parameters
        ----------
        axes
            Axes override (e.g. ``"TZYX"``) for files whose metadata is
            missing or wrong; None: the file's.

        Returns
        -------
        Volume or None
        """
        from napari_kinetochores.io import list_datasets, read_volume

        path = self.path.value
        if path is None or not str(path).strip() or not Path(path).exists():
            self._volume, self._key = None, None
            self.found.value = "no file chosen" if path is None else f"{path}: file not found"
            return None
        path = Path(path)
        datasets = list_datasets(path)
        if datasets != list(self.dataset.choices):
            with self.dataset.changed.blocked():
                self.dataset.choices = datasets
                self.dataset.value = datasets[0] if datasets else None
            self.dataset.visible = len(datasets) > 1
        dataset = self.dataset.value if len(datasets) > 1 else None
        axes = axes.strip().upper() if axes and axes.strip() else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                volume = read_volume(path, axes=axes, dataset=dataset)
            except InputError as error:
                self._volume, self._key = None, None
                problem = self._advice(error.problem)
                self.found.value = f"cannot read it yet: {problem}"
                raise InputError(problem, error.path) from None
        if self._volume is not None:
            self._volume.close()
        self._volume, self._key = volume, (path, dataset, axes)
        with self.axes.changed.blocked():
            self.axes.value = volume.axes
        for box, value in zip(self.voxel, volume.voxel_size_um, strict=True):
            box.value = float(value)
        self.names.value = ", ".join(volume.channel_names)
        self.colours.value = ", ".join(
            channel_colormap(c, n) for c, n in enumerate(volume.channel_names)
        )
        last = volume.n_frames - 1
        self.first.max = self.last.max = last
        self.first.value, self.last.value = 0, last
        source = {
            "metadata": "from the file's metadata",
            "default": "NOT in the metadata: default used, please check",
            "user": "given",
        }[volume.voxel_size_source]
        lazy = "lazy (read frame by frame)" if volume.is_lazy else "in memory"
        self.found.value = (
            f"TCZYX {volume.shape}, stored as {volume.axes}, {volume.dtype}, {lazy}; "
            f"voxel size {source}"
        )
        for warning in caught:
            self.set_status(self._advice(str(warning.message)))
        return volume

    @staticmethod
    def _advice(message: str) -> str:
        """A library message as this widget's user reads it (the voxel size is set below)."""
        return gui_message(message).replace(
            " in the Load movie widget (Plugins > Kinetochores > Load movie)", " below"
        )

    # ------------------------------------------------------------------ opening

    def add_layers(self) -> list[Any]:
        """Add one image layer per channel (and the reference points) to the viewer.

        Returns
        -------
        list of napari layers
        """
        from napari_kinetochores.io import read_points, validate_voxel_size

        axes = self.axes.value.strip().upper() or None
        dataset = self.dataset.value if len(self.dataset.choices) > 1 else None
        path = self.path.value
        if path is None:
            raise InputError("choose a movie file first")
        volume = self._volume
        if volume is None or self._key is None or self._key[:2] != (Path(path), dataset):
            volume = self.inspect(axes=axes)
        elif axes is not None and axes != volume.axes:
            volume = self.inspect(axes=axes)
        if volume is None:
            raise InputError("no readable movie chosen", path)
        voxel = validate_voxel_size([box.value for box in self.voxel], path)
        if voxel != tuple(volume.voxel_size_um):
            volume = dataclasses.replace(volume, voxel_size_um=voxel, voxel_size_source="user")
        names = _split(self.names.value) or list(volume.channel_names)
        colours = _split(self.colours.value)
        if len(names) != volume.n_channels:
            raise InputError(
                f"{len(names)} channel name(s) given for {volume.n_channels} channel(s)", path
            )
        colours = (colours + [channel_colormap(c, names[c]) for c in range(len(names))])[
            : len(names)
        ]
        first, last = int(self.first.value), int(self.last.value)
        if last < first:
            raise InputError(f"the last frame ({last}) comes before the first ({first})")
        tuples = volume_layers(volume, names, colours, frames=(first, last + 1))
        reference = self.reference.value
        if reference is not None and str(reference).strip():
            table = read_points(reference, voxel_size_um=voxel)
            table = table[(table["t"] >= first - 0.5) & (table["t"] <= last + 0.5)].copy()
            table["t"] = table["t"] - first
            tuples.append(
                points_layer(table, voxel, Path(reference).stem, reference=True, path=reference)
            )
        layers = [self.viewer.add_layer(Layer.create(*item)) for item in tuples]
        self.viewer.reset_view()
        message = (
            f"opened {Path(path).name}: {volume.n_channels} channel(s), frames {first}..{last}, "
            f"voxel size (z, y, x) {voxel} µm"
        )
        self.announce(message)
        return layers
