"""Atomic writes: every output goes to a temporary name beside it, then is renamed onto it.

All writers of the package (point CSVs, TIFF, zarr, the batch manifest, the
per-frame metrics of ``evaluate``) write through :func:`atomic_output`, so:

* an existing file is never left half-written, whatever happens mid-write;
* a path that cannot be written (its folder is missing or is a file, no
  permission, a full disk) ends in one :class:`~napari_kinetochores.errors.InputError`
  naming the path, which the CLI prints as its ``error:`` line;
* the temporary files of a write that was killed (``SIGKILL``, power loss) do
  not stay forever: the next write of the same target removes them.

Temporary names are ``.<name>.<8 hex digits><suffix>`` in the target's folder
(hidden, and never matched by a movie or CSV pattern). A temporary file of the
target counts as stale when it is older than this process (its modification
time is before the module was imported): a killed writer's leftovers always
are, while a write in progress in another, older process keeps touching its
file. A zarr store being written by another process that started earlier and
has not touched its top folder since could be removed; the package never
writes one target from two processes at once.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from napari_kinetochores.errors import InputError

__all__ = [
    "atomic_output",
    "check_output_file",
    "check_output_folder",
    "output_error",
    "remove_stale_temps",
    "temp_path_beside",
]

PROCESS_STARTED = time.time()
"""Temporary files older than this (seconds since the epoch) are stale leftovers."""


def temp_path_beside(path: Path, suffix: str = ".tmp") -> Path:
    """A new hidden name in ``path``'s folder, to write to before renaming onto ``path``.

    Examples
    --------
    >>> name = temp_path_beside(Path("out/movie.tif"), ".tif").name
    >>> name.startswith(".movie.tif.") and name.endswith(".tif")
    True
    """
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}{suffix}"


def _temp_name_pattern(path: Path) -> re.Pattern:
    return re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.[A-Za-z0-9]+")


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove the temporary files (or folders) that killed writes of ``path`` left.

    Only names made by :func:`temp_path_beside` for this very target, and
    older than this process, are removed.

    Returns
    -------
    list of Path
        What was removed.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> left = folder / ".points.csv.0123abcd.tmp"
    >>> _ = left.write_text("t,z")
    >>> os.utime(left, (0, 0))  # from a run long gone
    >>> [p.name for p in remove_stale_temps(folder / "points.csv")]
    ['.points.csv.0123abcd.tmp']
    """
    path = Path(path)
    pattern = _temp_name_pattern(path)
    removed = []
    try:
        candidates = [p for p in path.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return removed  # no folder (yet): nothing left over
    for candidate in candidates:
        try:
            if candidate.lstat().st_mtime >= PROCESS_STARTED:
                continue  # this process's own, or a live writer's
            if candidate.is_dir() and not candidate.is_symlink():
                shutil.rmtree(candidate)
            else:
                candidate.unlink()
        except OSError:
            continue  # gone already, or not ours to remove
        removed.append(candidate)
    return removed


def check_output_folder(path: str | Path) -> Path:
    """Raise an InputError naming ``path`` unless its folder exists and can be written.

    Examples
    --------
    >>> check_output_folder("missing_folder/points.csv")
    Traceback (most recent call last):
    ...
    napari_kinetochores.errors.InputError: missing_folder/points.csv: cannot write here: the folder missing_folder does not exist
    """
    path = Path(path)
    folder = path.parent
    if not folder.exists():
        raise InputError(f"cannot write here: the folder {folder} does not exist", path)
    if not folder.is_dir():
        raise InputError(f"cannot write here: {folder} is a file, not a folder", path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write here: no permission to write in {folder}", path)
    return path


def output_error(error: OSError, path: str | Path) -> InputError:
    """The InputError, naming ``path``, for an OSError met while writing it."""
    path = Path(path)
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        try:
            check_output_folder(path)
        except InputError as folder_error:
            return folder_error
    reasons = {
        errno.EACCES: "no permission to write it",
        errno.EPERM: "no permission to write it",
        errno.EISDIR: "it is a folder",
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "the file system is read-only",
    }
    reason = reasons.get(error.errno, error.strerror or str(error))
    return InputError(f"cannot write here: {reason}", path)


def _discard(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


def _concerns(error: OSError, paths: Sequence[Path]) -> bool:
    """Whether ``error`` is about writing one of ``paths`` (or names no file at all)."""
    names = [n for n in (error.filename, getattr(error, "filename2", None)) if n is not None]
    if not names:
        return True
    for name in names:
        name = Path(os.fsdecode(name))
        if any(name == p or p in name.parents for p in paths):
            return True
    return False


def _replace(src: Path, dst: Path) -> None:
    """Rename ``src`` onto ``dst``; a folder ``src`` (a zarr store) replaces whatever is at ``dst``.

    What is at ``dst`` is first renamed aside and removed once ``src`` is in
    place, so ``dst`` holds either the old or the new content at every moment.
    """
    if not (src.is_dir() and dst.exists()):
        os.replace(src, dst)
        return
    old = temp_path_beside(dst, ".old")
    os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(old, dst)
        raise
    _discard(old)


@contextmanager
def atomic_output(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Write ``path`` atomically: yields a temporary path to write, renamed onto ``path`` after.

    The folder of ``path`` is checked first, and stale temporaries of earlier,
    killed writes of ``path`` are removed. If the body raises, the temporary
    file (or folder) is removed and ``path`` is left as it was; an OSError
    about writing becomes an :class:`InputError` naming ``path``.

    Parameters
    ----------
    path
        The file (or folder, e.g. a zarr store) to write.
    suffix
        Suffix of the temporary name (e.g. ``".tif"`` when the writer looks at it).

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> with atomic_output(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    path = Path(path)
    check_output_folder(path)
    remove_stale_temps(path)
    tmp = temp_path_beside(path, suffix)
    try:
        yield tmp
        _replace(tmp, path)
    except OSError as error:
        _discard(tmp)
        if not _concerns(error, [path, tmp]):
            raise
        raise output_error(error, path) from None
    except BaseException:
        _discard(tmp)
        raise


def check_output_file(
    path: str | Path,
    inputs: Iterable[str | Path] = (),
    *,
    force: bool = False,
    suffixes: Sequence[str] = (".csv",),
) -> Path:
    """Refuse to write ``path`` over one of ``inputs``, or over an existing file of another kind.

    Parameters
    ----------
    path
        The output about to be written.
    inputs
        Files the command reads; writing over one would destroy it.
    force
        Allow both (the folder must still be writable).
    suffixes
        Existing files with these suffixes (lower case) may be replaced.

    Raises
    ------
    InputError
        Naming ``path`` and the problem.

    Examples
    --------
    >>> check_output_file("movie.tif", ["movie.tif"])
    Traceback (most recent call last):
    ...
    napari_kinetochores.errors.InputError: movie.tif: this is an input of the command; choose another output (or --force to replace it)
    """
    path = Path(path)
    if not force:
        for item in inputs:
            if _same_file(path, Path(item)):
                raise InputError(
                    "this is an input of the command; choose another output "
                    "(or --force to replace it)",
                    path,
                )
        if path.exists() and (path.is_dir() or not path.name.lower().endswith(tuple(suffixes))):
            kind = "a folder" if path.is_dir() else "a file"
            raise InputError(
                f"{kind} that is not {'/'.join(suffixes)} is there; refusing to replace it "
                "(choose another output, or --force)",
                path,
            )
    return check_output_folder(path)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one is missing
        return os.path.abspath(a) == os.path.abspath(b)
