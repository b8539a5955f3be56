"""Read and write point tables (CSV) in the package's schema.

Schema (see DESIGN.md): columns ``t, z, y, x`` (float voxel coordinates),
then ``z_um, y_um, x_um`` (voxel coordinates × voxel size, in µm), then the
optional ``channel, score, status, pair_id, track_id``, then any other
columns. ``pair_id`` and ``track_id`` are integers, -1 where missing.

:func:`read_points` also accepts:

* napari's built-in points CSV: ``index, axis-0, axis-1, axis-2[, axis-3]``
  (4 axes -> t, z, y, x; 3 axes -> z, y, x with t = 0). napari writes *world*
  coordinates (data × layer scale). They are taken as voxels, which is right
  when the layer scale is 1; for a layer scaled by the voxel size pass
  ``napari_world=True`` and ``voxel_size_um`` to divide by it.
* an Arivis-style export: ``X (px), Center of Mass (Intensities) #1``, same
  for Y and Z, an optional time column (``Time Point``, ``T (px)``, ``Time``,
  ``Frame``) and an optional ``Tags`` column whose ``PairNN_k`` values give
  ``pair_id = NN``. ``;`` or tab separators and a leading unnamed index
  column are tolerated.
* ``x_px, y_px, z_px`` with an optional ``t`` column.

Every number is checked on reading, and a bad cell is an
:class:`~napari_kinetochores.errors.InputError` that names the file, the
column and the line as a spreadsheet numbers it (the header is line 1); no
row is ever dropped. Coordinates must be finite and within
±1e6 (:data:`MAX_ABS_COORDINATE`; voxels, and µm for ``*_um``); ``t`` holds whole
frame numbers ≥ 0; ``channel`` whole numbers ≥ 0 in every row; ``score`` numbers
(empty allowed); ``pair_id``/``track_id`` integers (empty = -1).

Every CSV written by the package goes through :func:`write_csv`, which
neutralises text cells (and column names) that a spreadsheet would run as a
formula (OWASP "CSV injection"): a cell starting with ``=``, ``+``, ``@``,
tab, carriage return, or ``-`` not followed by a digit or ``.`` gets a leading
``'``. :func:`read_points` removes that quote again, so a round trip is
lossless. Numeric columns are never touched.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_kinetochores import DEFAULT_VOXEL_SIZE_UM
from napari_kinetochores.errors import InputError
from napari_kinetochores.io.atomic import atomic_output
from napari_kinetochores.io.volumes import validate_voxel_size

__all__ = [
    "INT_COLUMNS",
    "MAX_ABS_COORDINATE",
    "OPTIONAL_COLUMNS",
    "POINT_COLUMNS",
    "UM_COLUMNS",
    "points_frame",
    "read_points",
    "write_csv",
    "write_points",
]

POINT_COLUMNS: tuple[str, ...] = ("t", "z", "y", "x")
UM_COLUMNS: tuple[str, ...] = ("z_um", "y_um", "x_um")
OPTIONAL_COLUMNS: tuple[str, ...] = ("channel", "score", "status", "pair_id", "track_id")
INT_COLUMNS: tuple[str, ...] = ("pair_id", "track_id")
#: Largest accepted |coordinate|, in voxels (and in µm for ``*_um``): a larger
#: value is a unit or export error, and napari cannot draw it.
MAX_ABS_COORDINATE = 1e6


# --------------------------------------------------------------------------- build


def _order(df: pd.DataFrame) -> pd.DataFrame:
    head = [c for c in (*POINT_COLUMNS, *UM_COLUMNS, *OPTIONAL_COLUMNS) if c in df.columns]
    rest = [c for c in df.columns if c not in head]
    return df[head + rest]


def _as_int_ids(values: Any, name: str, path: Path | None = None, where: Any = None) -> np.ndarray:
    """Integer ids (-1 where empty); ``where(i)`` names data row ``i`` in an error."""
    s = pd.Series(values).reset_index(drop=True)
    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna() & s.notna() & (s.astype(str).str.strip() != "")
    numbers = num.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad |= ~np.isnan(numbers) & ~(np.abs(numbers - np.round(numbers)) <= 1e-6)
        bad |= np.abs(numbers) > 2**53
    if bad.any():
        i = _first(bad)
        at = f"data row {i + 1}" if where is None else where(i)
        raise InputError(f"column {name!r} is not an integer at {at}: {_shown(s.iloc[i])}", path)
    return num.fillna(-1).round().astype(np.int64).to_numpy()


def _add_um(df: pd.DataFrame, voxel: tuple[float, float, float]) -> None:
    for col, um, v in zip(("z", "y", "x"), UM_COLUMNS, voxel, strict=True):
        df[um] = df[col].to_numpy(dtype=float) * v


def points_frame(
    coords_tzyx: np.ndarray | Sequence[Sequence[float]],
    voxel_size_um: Sequence[float],
    **features: Any,
) -> pd.DataFrame:
    """Build a schema-conformant point table.

    Parameters
    ----------
    coords_tzyx
        Array (N, 4) of (t, z, y, x) voxel coordinates, or (N, 3) of (z, y, x)
        with t = 0.
    voxel_size_um
        Voxel size (z, y, x) in µm, used for the ``*_um`` columns.
    **features
        Extra columns, each of length N or a scalar: ``channel``, ``score``,
        ``status``, ``pair_id``, ``track_id`` or any other name.

    Returns
    -------
    pandas.DataFrame
        Columns ``t, z, y, x, z_um, y_um, x_um``, then the optional columns in
        schema order, then the others. The voxel size is in
        ``df.attrs["voxel_size_um"]``.

    Examples
    --------
    >>> df = points_frame([[0, 10, 20, 30]], (0.3, 0.13, 0.13), score=[0.9])
    >>> list(df.columns)
    ['t', 'z', 'y', 'x', 'z_um', 'y_um', 'x_um', 'score']
    >>> float(df.z_um[0])
    3.0
    """
    voxel = validate_voxel_size(voxel_size_um)
    coords = np.asarray(coords_tzyx, dtype=float)
    if coords.size == 0:
        coords = coords.reshape(0, 4)
    if coords.ndim != 2 or coords.shape[1] not in (3, 4):
        raise ValueError(f"coords must have shape (N, 4) or (N, 3), got {coords.shape}")
    if coords.shape[1] == 3:
        coords = np.column_stack([np.zeros(len(coords)), coords])
    df = pd.DataFrame(coords, columns=list(POINT_COLUMNS))
    _add_um(df, voxel)
    for name in [k for k in OPTIONAL_COLUMNS if k in features] + [
        k for k in features if k not in OPTIONAL_COLUMNS
    ]:
        value = features[name]
        if isinstance(value, pd.Series | pd.Index):
            value = value.to_numpy()  # by position, not by index label
        if name in INT_COLUMNS:
            value = _as_int_ids(np.broadcast_to(value, (len(df),)), name)
        df[name] = value
    df = _order(df)
    df.attrs["voxel_size_um"] = voxel
    return df


# --------------------------------------------------------------------------- read

_ARIVIS_RE = re.compile(r"^\s*([XYZ])\s*\(px\)", re.IGNORECASE)
_ARIVIS_TIME_RE = re.compile(r"^\s*(time\s*point|timepoint|time|t\s*\(px\)|frame)\b", re.IGNORECASE)
_NAPARI_RE = re.compile(r"^axis-(\d+)$")
_PAIR_RE = re.compile(r"pair\s*_?0*(\d+)", re.IGNORECASE)


class _Layout:
    """How to find t, z, y, x in a table's columns."""

    def __init__(self, name: str, columns: dict[str, str], missing: list[str], found: int):
        self.name = name
        self.columns = columns  # target ("t","z","y","x","z_um",...) -> source column
        self.missing = missing
        self.found = found

    @property
    def complete(self) -> bool:
        return not self.missing


def _schema_layout(cols: list[str]) -> _Layout:
    mapping = {c: c for c in (*POINT_COLUMNS, *UM_COLUMNS) if c in cols}
    voxel_ok = all(c in mapping for c in ("z", "y", "x"))
    um_ok = all(c in mapping for c in UM_COLUMNS)
    missing = [] if voxel_ok or um_ok else [c for c in ("z", "y", "x") if c not in mapping]
    return _Layout("schema", mapping, missing, len(mapping))


def _napari_layout(cols: list[str]) -> _Layout:
    axes = {int(m.group(1)): c for c in cols if (m := _NAPARI_RE.match(c))}
    n = len(axes)
    if not axes:
        return _Layout("napari", {}, ["axis-0", "axis-1", "axis-2"], 0)
    wanted = 4 if n >= 4 else 3
    missing = [f"axis-{i}" for i in range(wanted) if i not in axes]
    if n > 4:
        missing = [f"at most 4 axis columns (found {n})"]
    if missing:
        return _Layout("napari", {}, missing, n)
    targets = POINT_COLUMNS if n == 4 else POINT_COLUMNS[1:]
    return _Layout("napari", {tg: axes[i] for i, tg in enumerate(targets)}, [], n)


def _arivis_layout(cols: list[str]) -> _Layout:
    found: dict[str, list[str]] = {}
    for c in cols:
        m = _ARIVIS_RE.match(c)
        if m:
            found.setdefault(m.group(1).lower(), []).append(c)
    mapping: dict[str, str] = {}
    for axis, names in found.items():
        best = [n for n in names if "center of mass" in n.lower()] or names
        mapping[axis] = best[0]
    missing = [f"{a.upper()} (px)" for a in ("z", "y", "x") if a not in mapping]
    if mapping and not missing:
        times = [c for c in cols if _ARIVIS_TIME_RE.match(c)]
        if times:
            mapping["t"] = times[0]
    return _Layout("arivis", mapping, missing, len(found))


def _px_layout(cols: list[str]) -> _Layout:
    lower = {c.lower(): c for c in cols}
    mapping = {a: lower[f"{a}_px"] for a in ("z", "y", "x") if f"{a}_px" in lower}
    missing = [f"{a}_px" for a in ("z", "y", "x") if a not in mapping]
    if not missing:
        for name in ("t", "t_px", "frame", "time"):
            if name in lower:
                mapping["t"] = lower[name]
                break
    return _Layout("px", mapping, missing, len(mapping))


_LAYOUTS = (_schema_layout, _napari_layout, _arivis_layout, _px_layout)


def _best_layout(cols: list[str]) -> _Layout:
    layouts = [f(cols) for f in _LAYOUTS]
    for lay in layouts:
        if lay.complete:
            return lay
    return max(layouts, key=lambda lay: lay.found)  # ties -> schema (first)


def _decode(raw: bytes) -> str:
    for enc in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1", errors="replace")  # pragma: no cover


def _sniff_sep(header: str) -> str:
    best, best_key = ",", (-1, -1, -1)
    for sep in (",", ";", "\t"):
        fields = [f.strip() for f in next(csv.reader([header], delimiter=sep), [])]
        lay = _best_layout(fields)
        key = (int(lay.complete), lay.found, len(fields))
        if key > best_key:
            best, best_key = sep, key
    return best


_FORMULA_START = re.compile(r"'*(?:[=+@\t\r]|-(?![\d.]))")


def _neutralise(cell: Any) -> Any:
    """A text cell with a leading ``'`` if a spreadsheet would run it as a formula.

    Cells that start with quotes before such a character get one more, so that
    :func:`_restore` is its exact inverse.

    Examples
    --------
    >>> [_neutralise(c) for c in ("=1+2", "-x", "-1", "'=q", "ok", 3)]
    ["'=1+2", "'-x", '-1', "''=q", 'ok', 3]
    """
    if isinstance(cell, str) and _FORMULA_START.match(cell):
        return "'" + cell
    return cell


def _restore(cell: Any) -> Any:
    """The cell :func:`_neutralise` was given: one leading ``'`` removed where it added one.

    >>> [_restore(c) for c in ("'=1+2", "''=q", "'quoted", "-1")]
    ['=1+2', "'=q", "'quoted", '-1']
    """
    if isinstance(cell, str) and cell.startswith("'") and _FORMULA_START.match(cell[1:]):
        return cell[1:]
    return cell


def _is_text(values: pd.Series) -> bool:
    return values.dtype == object or isinstance(values.dtype, pd.StringDtype)


# Every cell _neutralise or _restore changes starts with one of these characters.
_CHANGED_FIRST = tuple("'=+@\t\r-")


def _text_cells(table: pd.DataFrame, change: Any) -> pd.DataFrame:
    """``table`` with ``change`` applied to its column names and the cells of its text columns.

    ``change`` is called only on cells whose first character it could change
    (a vectorised test), not once per cell of a large table.
    """
    table = table.copy()
    for k in range(table.shape[1]):
        column = table.iloc[:, k]
        if not _is_text(column):
            continue
        try:
            candidates = column.str[:1].isin(_CHANGED_FIRST).to_numpy()
        except AttributeError:  # an object column without text
            continue
        if candidates.any():
            column = column.copy()
            column[candidates] = column[candidates].map(change)
            table.isetitem(k, column)
    table.columns = [change(c) for c in table.columns]
    return table


def _line_end(table: pd.DataFrame) -> str:
    """``"\\n"``, or ``"\\r\\n"`` (RFC 4180) when a cell holds a carriage return.

    pandas quotes a cell only when it holds a character of the line end; a
    lone ``\\r`` left unquoted would split the row when read back.
    """
    has_cr = any(_holds(table.iloc[:, k], "\r") for k in range(table.shape[1]))
    return "\r\n" if has_cr or any("\r" in str(c) for c in table.columns) else "\n"


def _holds(column: pd.Series, text: str) -> bool:
    """Whether a text cell of ``column`` contains ``text`` (False for non-text columns)."""
    if not _is_text(column):
        return False
    try:
        return bool(column.str.contains(text, regex=False, na=False).any())
    except AttributeError:  # an object column without text
        return False


def _record_lines(text: str, sep: str, n_rows: int) -> np.ndarray:
    """The line (1-based, the header is line 1) on which each of the ``n_rows`` data rows starts.

    Blank lines, which pandas skips, and quoted cells that span lines are
    counted, so the number is the row a spreadsheet shows.
    """
    starts: list[int] = []
    try:
        reader = csv.reader(io.StringIO(text), delimiter=sep)
        previous = 0
        for record in reader:
            if record and not (len(record) == 1 and not record[0].strip()):
                starts.append(previous + 1)
            previous = reader.line_num
    except csv.Error:
        starts = []
    if len(starts) != n_rows + 1:  # the two parsers disagree: count rows plainly
        return np.arange(n_rows) + 2
    return np.asarray(starts[1:])


def _first(mask: Any) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def _shown(cell: Any) -> str:
    if isinstance(cell, str):
        return repr(cell if len(cell) <= 40 else cell[:40] + "…")
    try:
        return f"{float(cell):g}"
    except (TypeError, ValueError):
        return repr(cell)


class _Cells:
    """A CSV table as read, and how to name one of its cells in an error message."""

    def __init__(self, df: pd.DataFrame, path: Path, text: str, sep: str) -> None:
        self.df, self.path, self.text, self.sep = df, path, text, sep
        self._lines: np.ndarray | None = None

    def where(self, i: int) -> str:
        """``data row N (line L)`` for data row ``i`` (0-based); L as a spreadsheet shows it."""
        if self._lines is None:
            self._lines = _record_lines(self.text, self.sep, len(self.df))
        return f"data row {i + 1} (line {int(self._lines[i])})"

    def fail(self, col: str, i: int, problem: str) -> InputError:
        cell = self.df[col].iloc[i]
        holds = "" if pd.isna(cell) else f" holds {_shown(cell)}"
        return InputError(f"column {col!r} {problem}: {self.where(i)}{holds}", self.path)

    def numbers(self, col: str, *, missing_ok: bool = False, position: bool = False) -> np.ndarray:
        """Column ``col`` as floats; raise on text, missing (unless ``missing_ok``) or inf.

        ``position``: also refuse values beyond ±:data:`MAX_ABS_COORDINATE`.
        """
        s = self.df[col]
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() & s.notna()
        if bad.any() and self.sep == ";" and not pd.api.types.is_numeric_dtype(s):
            alt = pd.to_numeric(s.astype(str).str.replace(",", ".", regex=False), errors="coerce")
            if not (alt.isna() & s.notna()).any():  # decimal comma (European exports)
                num, bad = alt, alt.isna() & s.notna()
        if bad.any():
            raise self.fail(col, _first(bad), "is not numeric")
        values = num.to_numpy(dtype=float)
        if not missing_ok and np.isnan(values).any():
            raise self.fail(col, _first(np.isnan(values)), "has a missing (NaN) value")
        if np.isinf(values).any():
            raise self.fail(col, _first(np.isinf(values)), "has an infinite value")
        if position:
            self.check_position(col, values)
        return values

    def check_position(self, col: str, values: np.ndarray, unit: str = "") -> None:
        """Raise if a coordinate from ``col`` is beyond ±:data:`MAX_ABS_COORDINATE` ``unit``."""
        far = np.abs(values) > MAX_ABS_COORDINATE
        if far.any():
            raise self.fail(
                col,
                _first(far),
                f"is beyond ±{MAX_ABS_COORDINATE:g}{unit}, not a position in an image "
                "(a unit or export error?)",
            )

    def whole_numbers(self, col: str, meaning: str) -> np.ndarray:
        """Column ``col`` as whole numbers ≥ 0 (as floats), or an error saying ``meaning``."""
        values = self.numbers(col)
        off = (values < 0) | (np.abs(values - np.round(values)) > 1e-6)
        off |= values > MAX_ABS_COORDINATE
        if off.any():
            raise self.fail(col, _first(off), f"must hold {meaning}")
        return np.round(values)


def _drop_index_column(df: pd.DataFrame) -> pd.DataFrame:
    if len(df.columns) and re.fullmatch(r"(Unnamed: 0)?", str(df.columns[0])):
        return df.drop(columns=df.columns[0])
    return df


def _read_cells(path: Path) -> _Cells:
    """The file parsed as a table: headers stripped, neutralised formulas restored."""
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a folder, not a CSV file", path)
    text = _decode(path.read_bytes())
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise InputError("the file is empty", path)
    sep = _sniff_sep(lines[0])
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, skipinitialspace=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as err:
        raise InputError(f"cannot parse the CSV table: {err}", path) from err
    df.columns = [str(c).strip() for c in df.columns]
    df = _text_cells(_drop_index_column(df), _restore)
    repeated = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if repeated:
        raise InputError(f"column name(s) {repeated} appear more than once", path)
    return _Cells(df, path, text, sep)


def read_points(
    path: str | Path,
    *,
    voxel_size_um: Sequence[float] | None = None,
    napari_world: bool = False,
) -> pd.DataFrame:
    """Read a point table (CSV) into the package schema.

    Parameters
    ----------
    path
        CSV file in one of the accepted layouts (see the module docstring):
        the package schema (``t, z, y, x`` …), napari ``axis-N``, Arivis
        ``X (px), …`` or ``x_px, y_px, z_px``.
    voxel_size_um
        Voxel size (z, y, x) in µm. When given, ``*_um`` columns are
        recomputed from the voxel coordinates, and a file with only
        ``z_um, y_um, x_um`` is converted to voxels. When None, the file's
        ``*_um`` columns are kept, or computed with
        :data:`~napari_kinetochores.DEFAULT_VOXEL_SIZE_UM` (with a warning)
        when the file has none.
    napari_world
        napari layout only: the ``axis-N`` values are world coordinates of a
        layer scaled by the voxel size; divide z, y, x by ``voxel_size_um``.

    Returns
    -------
    pandas.DataFrame
        Float columns ``t, z, y, x`` (voxels) and ``z_um, y_um, x_um`` (µm),
        then the optional schema columns present (``channel``, ``pair_id``,
        ``track_id`` as int, ids -1 where missing), then the file's other
        columns. A header-only file gives zero rows. ``df.attrs`` holds
        ``"layout"``, ``"has_time"`` (False when the file has no time column
        and ``t`` was set to 0), ``"path"`` (the file) and, when known,
        ``"voxel_size_um"``.

    Raises
    ------
    InputError
        Missing or empty file, missing coordinate columns (names the missing
        and the found columns), or a bad cell: text, empty or infinite in a
        numeric column, a coordinate beyond ±:data:`MAX_ABS_COORDINATE`, a
        ``t`` or ``channel`` that is not a whole number ≥ 0. The message names
        the file, the column and the line (as a spreadsheet numbers it).

    Examples
    --------
    >>> df = read_points("detections.csv", voxel_size_um=(0.3, 0.13, 0.13))  # doctest: +SKIP
    >>> df[["t", "z", "y", "x"]].to_numpy().shape  # doctest: +SKIP
    (79, 4)
    """
    path = Path(path)
    cells = _read_cells(path)
    voxel = None if voxel_size_um is None else validate_voxel_size(voxel_size_um, path)
    cols = list(cells.df.columns)
    layout = _best_layout(cols)
    if not layout.complete:
        raise InputError(
            f"missing coordinate column(s) {', '.join(layout.missing)}; found columns {cols}. "
            "Expected t,z,y,x (or z_um,y_um,x_um), napari axis-0..axis-3, "
            "Arivis 'X (px), …', or x_px,y_px,z_px",
            path,
        )
    if layout.name == "napari" and "index" in cells.df.columns:
        cells.df = cells.df.drop(columns="index")
    out, voxel = _coordinates(cells, layout, voxel, napari_world)
    _other_columns(cells, layout, out)
    out = _order(out)
    out.attrs["layout"] = layout.name
    out.attrs["has_time"] = "t" in layout.columns  # False: t was filled with 0 (no time column)
    out.attrs["path"] = str(path)
    if voxel is not None:
        out.attrs["voxel_size_um"] = voxel
    return out


def _coordinates(
    cells: _Cells,
    layout: _Layout,
    voxel: tuple[float, float, float] | None,
    napari_world: bool,
) -> tuple[pd.DataFrame, tuple[float, float, float] | None]:
    """The checked ``t, z, y, x`` (voxels) and ``*_um`` columns, and the voxel size used."""
    m, path = layout.columns, cells.path
    out = pd.DataFrame(index=range(len(cells.df)))
    file_um = None
    if layout.name == "schema" and all(c in m for c in UM_COLUMNS):
        file_um = {c: cells.numbers(c, position=True) for c in UM_COLUMNS}
    out["t"] = cells.whole_numbers(m["t"], "whole frame numbers ≥ 0") if "t" in m else 0.0
    source = {a: m.get(a, f"{a}_um") for a in ("z", "y", "x")}
    if all(a in m for a in ("z", "y", "x")):
        for a in ("z", "y", "x"):
            out[a] = cells.numbers(m[a], position=True)
    elif voxel is None:
        raise InputError(
            "the table has only physical coordinates (z_um, y_um, x_um); give the voxel "
            "size (voxel_size_um= / --voxel-size) to convert them to voxels",
            path,
        )
    else:
        for a, c, v in zip(("z", "y", "x"), UM_COLUMNS, voxel, strict=True):
            out[a] = file_um[c] / v  # type: ignore[index]
    if layout.name == "napari" and napari_world:
        if voxel is None:
            raise InputError("napari_world=True needs voxel_size_um to divide by", path)
        for a, v in zip(("z", "y", "x"), voxel, strict=True):
            out[a] = out[a] / v
    for a in ("z", "y", "x"):
        cells.check_position(source[a], out[a].to_numpy(), " voxels once divided by the voxel size")
    if voxel is not None:
        _add_um(out, voxel)
    elif file_um is not None:
        for c in UM_COLUMNS:
            out[c] = file_um[c]
    else:
        voxel = tuple(DEFAULT_VOXEL_SIZE_UM)  # type: ignore[assignment]
        warnings.warn(
            f"{path}: no voxel size given and no z_um/y_um/x_um columns; computing them with "
            f"the default (z, y, x) = {voxel} µm. Pass voxel_size_um= to override.",
            UserWarning,
            stacklevel=3,
        )
        _add_um(out, voxel)  # type: ignore[arg-type]
    return out, voxel


def _other_columns(cells: _Cells, layout: _Layout, out: pd.DataFrame) -> None:
    """Add the table's other columns to ``out``, the schema's numeric ones checked."""
    df = cells.df
    used = set(layout.columns.values()) | set(UM_COLUMNS)
    for c in df.columns:
        if c in used or c in out.columns:
            continue
        if c == "channel":
            meaning = "whole numbers ≥ 0 (channel indices, 0 = the kinetochore channel)"
            out[c] = cells.whole_numbers(c, meaning).astype(np.int64)
        elif c == "score":
            out[c] = cells.numbers(c, missing_ok=True)
        elif c in INT_COLUMNS:
            out[c] = _as_int_ids(df[c], c, cells.path, cells.where)
        else:
            out[c] = df[c].to_numpy()
    tags = next((c for c in df.columns if c.lower() in ("tags", "tag")), None)
    if tags is not None and "pair_id" not in out.columns:
        out["pair_id"] = [
            int(mt.group(1)) if isinstance(v, str) and (mt := _PAIR_RE.search(v)) else -1
            for v in df[tags]
        ]


# --------------------------------------------------------------------------- write


def write_points(path: str | Path, points: pd.DataFrame, voxel_size_um: Sequence[float]) -> Path:
    """Write a point table as CSV in the package schema.

    ``z_um, y_um, x_um`` are recomputed as voxel coordinates × voxel size.
    Columns come in schema order, then any extra columns. The table is
    written to a temporary file in the same folder and renamed, so an
    existing file is never left half-written.

    Parameters
    ----------
    path
        Output CSV file.
    points
        Table with float voxel columns ``z, y, x`` and optionally ``t``
        (default 0), the optional schema columns and any others.
    voxel_size_um
        Voxel size (z, y, x) in µm.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> df = points_frame([[0, 10.5, 20, 30]], (0.3, 0.13, 0.13))
    >>> write_points("points.csv", df, (0.3, 0.13, 0.13))  # doctest: +SKIP
    """
    path = Path(path)
    voxel = validate_voxel_size(voxel_size_um, path)
    missing = [c for c in ("z", "y", "x") if c not in points.columns]
    if missing:
        raise InputError(
            f"the point table lacks column(s) {', '.join(missing)}; found {list(points.columns)}",
            path,
        )
    df = points.copy()
    if "t" not in df.columns:
        df["t"] = 0.0
    for c in POINT_COLUMNS:
        values = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(values).all():
            i = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InputError(
                f"column {c!r} has a missing or non-numeric coordinate at row {i + 1}", path
            )
        df[c] = values
    _add_um(df, voxel)
    for c in INT_COLUMNS:
        if c in df.columns:
            df[c] = _as_int_ids(df[c], c, path)
    df = _order(df)
    return write_csv(path, df)


def write_csv(path: str | Path, table: pd.DataFrame, *, index: bool = False) -> Path:
    """Write any table as CSV atomically: a temporary file in the same folder, then a rename.

    An existing file is never left half-written, even if writing fails. Text
    cells and column names that a spreadsheet would run as a formula (they
    start with ``=``, ``+``, ``@``, tab, carriage return, or ``-`` not
    followed by a digit or ``.``) get a leading ``'`` (OWASP "CSV injection");
    :func:`read_points` removes it again. Numeric columns are written as they are.

    Parameters
    ----------
    path
        Output CSV file.
    table
        The table.
    index
        Also write the index.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> write_csv("plates.csv", pd.DataFrame({"t": [0, 1]}))  # doctest: +SKIP
    """
    path = Path(path)
    safe = _text_cells(table.reset_index() if index else table, _neutralise)
    with atomic_output(path) as tmp:
        safe.to_csv(tmp, index=False, lineterminator=_line_end(safe))
    return path
