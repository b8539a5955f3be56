"""Exceptions raised on bad user input.

Every reader and command raises :class:`InputError` with a message that names
the offending file (or argument) and the problem, so the CLI can print it and
exit non-zero instead of showing a traceback.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input: a file, a table, an argument or a model.

    Parameters
    ----------
    message
        What is wrong, in words a user understands.
    path
        The file concerned, if any. It is prefixed to the message.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.problem = message
        text = message if path is None else f"{path}: {message}"
        super().__init__(text)
