"""A Dask worker plugin for the batch tests: a worker that dies mid-commit, once."""

from __future__ import annotations

import os
from pathlib import Path

from distributed import WorkerPlugin


class KillOnFirstCommit(WorkerPlugin):
    """Kill the worker process at the first part-file commit of the cluster, once.

    ``setup`` runs inside each worker process (also in the ones the nanny
    restarts): it wraps ``napari_kinetochores.io.write_points``, which the
    frame task imports when it commits its part. The first commit on any
    worker (``marker`` is created atomically) leaves a torn temporary file
    beside the part, as a write killed mid-way does, and ends the process.
    """

    name = "kill-on-first-commit"

    def __init__(self, marker: str | Path) -> None:
        self.marker = str(marker)

    def setup(self, worker) -> None:
        import napari_kinetochores.io as io

        write_points = io.write_points
        marker = self.marker

        def dying_write(path, *args, **kwargs):
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return write_points(path, *args, **kwargs)
            path = Path(path)
            torn = path.parent / f".{path.name}.killed.tmp"
            torn.write_text("t,z,y,x,z_um,y_um,x_um,channel,score,status\n0.0,1")
            os._exit(1)

        io.write_points = dying_write
