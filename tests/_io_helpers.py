"""Shared helpers of the volume reader tests in tests/io (importable: tests/ is on pythonpath)."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_kinetochores.errors import InputError
from napari_kinetochores.io import read_volume

VOXEL = (0.3, 0.13, 0.13)
SHAPE = (3, 2, 5, 16, 16)  # T, C, Z, Y, X


def is_dask(a) -> bool:
    import dask.array as da

    return isinstance(a, da.Array)


def read_fails(path: Path, match: str, **kwargs) -> InputError:
    """Assert that ``read_volume(path, **kwargs)`` raises an InputError matching and naming the file."""
    with pytest.raises(InputError, match=match) as info:
        read_volume(path, **kwargs)
    assert path.name in str(info.value)
    return info.value
