"""Property-based tests of the readers: any input ends in a result or an InputError.

Random and mutated CSV bytes go to :func:`read_points`, random small arrays
and damaged files (``.npy``, ``.tif``) to :func:`read_volume`. Whatever they
hold, the readers must either succeed (and give the promised columns or
shape) or raise :class:`~napari_kinetochores.errors.InputError`, never another
exception.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_kinetochores.errors import InputError
from napari_kinetochores.io import POINT_COLUMNS, UM_COLUMNS, read_points, read_volume

pytestmark = pytest.mark.filterwarnings("ignore")  # readers' and writers' warnings don't matter

VOXEL = (0.3, 0.13, 0.13)
FAST = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

#: Valid tables of every layout read_points takes, to mutate.
SEEDS = (
    "t,z,y,x,z_um,y_um,x_um,channel,score,status,pair_id,track_id,note\n"
    "0,10.5,20,30,3.15,2.6,3.9,0,0.9,auto,1,5,a\n"
    "1,11,21,31,3.3,2.73,4.03,1,,added,-1,-1,'=1+2\n",
    "index,axis-0,axis-1,axis-2,axis-3\n0,1,3.0,2.6,1.3\n1,2,4,5,6\n",
    "X (px), Center of Mass (Intensities) #1;Y (px), Center of Mass (Intensities) #1;"
    "Z (px), Center of Mass (Intensities) #1;Time Point;Tags\n"
    "448,5;467,25;20;0;Pair03_1\n443,0;493,0;21;1;Pair03_2\n",
    "x_px,y_px,z_px,t\n1,2,3,4\n5,6,7,8\n",
)

#: Cells that look like numbers, almost-numbers and trouble.
CELLS = st.sampled_from(
    ["", " ", "nan", "inf", "-inf", "1e308", "-1e309", "0", "-1", "1.5", "1,5", "abc", "'=1",
     "=cmd", '"', '""', "\t", "\r", "\n", ",", ";", "0x10", "1e6", "1e7", "True", "\x00", "é",
     " x", "t ", "z_um", "channel", "axis-3", "Tags", "Unnamed: 0"]
)  # fmt: skip


def _read_csv(content: bytes, **kwargs) -> None:
    """read_points on ``content``: a schema table or an InputError, nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "points.csv"
        path.write_bytes(content)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                table = read_points(path, **kwargs)
            except InputError as error:
                assert "points.csv" in str(error)
                return
    assert list(table.columns[:7]) == [*POINT_COLUMNS, *UM_COLUMNS]
    values = table[list(POINT_COLUMNS)].to_numpy(dtype=float)
    assert np.isfinite(values).all() and (np.abs(values) <= 1e6).all()


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_as_csv(content):
    _read_csv(content)


@FAST
@given(st.text(alphabet=st.sampled_from("tzyx_um,;\t\n\r\"'0123456789.-e axis"), max_size=200))
def test_random_csv_like_text(text):
    _read_csv(text.encode(), voxel_size_um=VOXEL)


@st.composite
def mutated_tables(draw) -> bytes:
    """A valid table with cells replaced, characters cut or inserted, lines doubled or dropped."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cell", "cut", "insert", "line"]))
        if kind == "cell":
            sep = ";" if ";" in text.split("\n")[0] else ","
            rows = [line.split(sep) for line in text.split("\n")]
            r = draw(st.integers(0, len(rows) - 1))
            c = draw(st.integers(0, max(len(rows[r]) - 1, 0)))
            if rows[r]:
                rows[r][c] = draw(CELLS)
            text = "\n".join(sep.join(row) for row in rows)
        elif kind == "cut" and text:
            i = draw(st.integers(0, len(text) - 1))
            text = text[:i] + text[i + draw(st.integers(1, 8)) :]
        elif kind == "insert":
            i = draw(st.integers(0, len(text)))
            text = text[:i] + draw(CELLS) + text[i:]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i]) if draw(st.booleans()) else lines.pop(i)
            text = "\n".join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]))
    return text.encode(encoding, errors="replace")


@FAST
@given(mutated_tables(), st.booleans())
def test_mutated_tables(content, with_voxel):
    _read_csv(content, voxel_size_um=VOXEL if with_voxel else None)


# --------------------------------------------------------------------------- volumes


def _read_volume(name: str, write, **kwargs) -> None:
    """read_volume (and its first frame) on a file: a TCZYX volume or an InputError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        write(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with read_volume(path, **kwargs) as volume:
                    assert len(volume.shape) == 5 and min(volume.shape) > 0
                    assert volume.frame(0).shape == volume.shape[1:]
            except InputError as error:
                assert name in str(error)


DTYPES = st.sampled_from(["uint8", "uint16", "int32", "float32", "float64", "bool", "complex64"])


@st.composite
def small_arrays(draw) -> np.ndarray:
    shape = draw(st.lists(st.integers(0, 5), min_size=1, max_size=6))
    dtype = draw(DTYPES)
    data = np.zeros(shape, dtype)
    fill = draw(st.sampled_from(["zeros", "nan", "ramp"]))
    if fill == "nan" and data.dtype.kind in "fc":
        data[...] = np.nan
    elif fill == "ramp" and data.size:
        data = np.arange(data.size).reshape(shape).astype(dtype)
    return data


AXES = st.one_of(st.none(), st.text(alphabet="TCZYXSQI", min_size=1, max_size=6))


@FAST
@given(small_arrays(), AXES)
def test_random_small_npy(data, axes):
    _read_volume("stack.npy", lambda p: np.save(p, data), axes=axes, voxel_size_um=VOXEL)


@FAST
@given(small_arrays(), st.text(alphabet="TCZYXSQ", min_size=2, max_size=6))
def test_random_small_tif_with_axes_metadata(data, axes):
    import tifffile

    if data.dtype.kind in "bc":  # types TIFF cannot hold
        data = data.real.astype(np.uint16)
    if data.ndim < 2:
        data = data.reshape(*data.shape, 1, 1)

    def write(path: Path) -> None:
        try:
            tifffile.imwrite(
                path, data, photometric="minisblack", metadata={"axes": axes[-data.ndim :]}
            )
        except (ValueError, TypeError):  # tifffile refuses these axes: a plain TIFF then
            tifffile.imwrite(path, data, photometric="minisblack")

    _read_volume("stack.tif", write)


@st.composite
def damaged_files(draw) -> tuple[str, bytes]:
    """A valid small .npy or .tif, cut short or with some bytes overwritten."""
    import io

    import tifffile

    suffix = draw(st.sampled_from([".npy", ".tif"]))
    data = np.arange(2 * 4 * 6 * 6, dtype=np.uint16).reshape(2, 4, 6, 6)
    buffer = io.BytesIO()
    if suffix == ".npy":
        np.save(buffer, data)
    else:
        tifffile.imwrite(buffer, data, imagej=True, metadata={"axes": "ZCYX"})
    raw = bytearray(buffer.getvalue())
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    for _ in range(draw(st.integers(0, 6))):
        if raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    return suffix, bytes(raw)


@FAST
@given(damaged_files())
def test_damaged_volume_files(damaged):
    suffix, raw = damaged
    _read_volume("movie" + suffix, lambda p: p.write_bytes(raw), voxel_size_um=VOXEL)
