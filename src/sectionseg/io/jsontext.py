"""Strict JSON text for every file sectionseg writes.

Python's ``json`` writes ``NaN`` and ``Infinity`` for non-finite floats, which is not JSON: other
readers (browsers, ``jq``, most languages) refuse such a file. :func:`dumps` writes them as ``null``
and refuses anything else that is not JSON (``allow_nan=False``); numpy scalars and arrays and paths
become plain JSON values.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np


def plain(value):
    """``value`` with non-finite floats as None, numpy values as Python ones, paths as strings,
    tuples as lists (recursively); other values unchanged."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def dumps(value, *, indent: int | None = None, ensure_ascii: bool = True, default=None) -> str:
    """Strict JSON text of ``value`` (see the module doc); ``default`` as for :func:`json.dumps`."""
    return json.dumps(
        plain(value),
        indent=indent,
        ensure_ascii=ensure_ascii,
        allow_nan=False,
        default=None if default is None else (lambda v: plain(default(v))),
    )
