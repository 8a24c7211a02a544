"""Errors that are the user's to fix (bad files, bad arguments) or the machine's (memory, disk).

The CLI prints an :class:`InputError` as one clear line and exits with code 2, a
:class:`ResourceError` as one line with exit code 1, both without a traceback. Everything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import os


class InputError(Exception):
    """Bad user input. ``path`` and ``line`` (1-based) locate the problem when known."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path + (f":{self.line}" if self.line is not None else "") + ": "
        return where + self.reason


class ResourceError(Exception):
    """The machine ran out of something the run needs (memory, disk space, a worker process that was
    killed): not a bug of sectionseg and not a bad argument, but nothing to retry blindly either."""
