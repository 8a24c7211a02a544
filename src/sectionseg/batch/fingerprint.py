"""Fingerprints of a wafer's inputs, and the *run key* that says whether existing outputs match them.

A detection's ``report.json`` records, under ``inputs.fingerprints``, a fingerprint of every input
file (gray, fluo, landmarks) and the model, and under ``run_key`` one hash of those fingerprints,
the options that change the outputs (:data:`KEY_OPTIONS`) and the sectionseg version.
``detect-batch`` skips a wafer whose output set is complete and whose run key equals the one its
inputs give now; any change of an image, the model, an option or the program runs it again.

Two ways to fingerprint a file (``hash_mode``):

- ``quick`` (default): size, modification time (ns) and the SHA-256 of the first, middle and last
  MiB. Costs 3 MiB of reading per file whatever its size, so a rerun over a season of 1 GB mosaics
  starts at once. A file rewritten in place gets a new modification time; copying with the time kept
  (``cp -p``, rsync -t) keeps the fingerprint, which is what one wants of a copy.
- ``full``: size and the SHA-256 of the whole file, streamed (1 MiB at a time; about 1 s per GB):
  immune to modification times (files restored from an archive are recognised), blind to nothing.

A Zarr folder is fingerprinted over its files (relative path, size, and the file's own fingerprint
for its metadata; size and modification time of the chunks in ``quick`` mode, their content in
``full`` mode), in name order.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

HASH_MODES = ("quick", "full")
_MIB = 1 << 20

#: options of a detection that change its outputs (``workers`` and the progress bar do not)
KEY_OPTIONS = (
    "tile_size",
    "overlap",
    "batch_size",
    "score_threshold",
    "mask_threshold",
    "section_size",
    "device",
    "precision",
    "proposals",
    "skip_repair",
    "magc_dialect",
    "pair_scale",
    "pair_integers",
    "serial_order",
)


def _sample_hash(path: Path, size: int) -> str:
    """SHA-256 of the first, middle and last MiB of a file (the whole file when it is small)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= 3 * _MIB:
            digest.update(fh.read())
        else:
            for offset in (0, (size - _MIB) // 2, size - _MIB):
                fh.seek(offset)
                digest.update(fh.read(_MIB))
    return digest.hexdigest()


def _full_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_fingerprint(path: Path, hash_mode: str) -> dict:
    info = path.stat()
    if hash_mode == "full":
        return {"size": info.st_size, "sha256": _full_hash(path)}
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256_sampled": _sample_hash(path, info.st_size)}


def _folder_fingerprint(path: Path, hash_mode: str) -> dict:
    digest = hashlib.sha256()
    total = 0
    files = sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        info = p.stat()
        total += info.st_size
        rel = p.relative_to(path).as_posix()
        if hash_mode == "full" or p.name in (".zarray", ".zgroup", ".zattrs", "zarr.json"):
            content = _full_hash(p)
        else:
            content = f"{info.st_size}:{info.st_mtime_ns}"
        digest.update(f"{rel}\0{info.st_size}\0{content}\n".encode())
    return {"files": len(files), "size": total, "sha256_listing": digest.hexdigest()}


def fingerprint(path: str | os.PathLike | None, hash_mode: str = "quick") -> dict | None:
    """Fingerprint of a file or Zarr folder (see the module doc); None for None. ``hash`` says how it
    was made."""
    if path is None:
        return None
    if hash_mode not in HASH_MODES:
        raise ValueError(f"hash_mode must be one of {HASH_MODES}, not {hash_mode!r}")
    p = Path(path)
    record = _folder_fingerprint(p, hash_mode) if p.is_dir() else _file_fingerprint(p, hash_mode)
    return {"hash": hash_mode, **record}


def model_fingerprint(path: str | os.PathLike) -> dict:
    """Size and full SHA-256 of a model file (tens of MB: always hashed whole)."""
    p = Path(path)
    return {"hash": "full", "size": p.stat().st_size, "sha256": _full_hash(p)}


def key_options(options: dict) -> dict:
    """The options of :data:`KEY_OPTIONS` from ``options`` (missing ones are None), JSON-ready."""
    out = {}
    for name in KEY_OPTIONS:
        value = options.get(name)
        if name == "skip_repair":
            value = sorted(value or [])
        out[name] = value
    return out


def input_record(
    gray, fluo=None, landmarks=None, model=None, options: dict | None = None, hash_mode: str = "quick"
) -> dict:
    """``{"fingerprints": {...}, "options": {...}, "version": ..., "run_key": ...}`` of one wafer's
    detection: what ``report.json`` records and the batch compares."""
    from sectionseg import __version__

    fingerprints = {
        "gray": fingerprint(gray, hash_mode),
        "fluo": fingerprint(fluo, hash_mode),
        "landmarks": fingerprint(landmarks, hash_mode),
        "model": None if model is None else model_fingerprint(model),
    }
    opts = key_options(options or {})
    record = {"fingerprints": fingerprints, "options": opts, "version": __version__}
    record["run_key"] = run_key(record)
    return record


def run_key(record: dict) -> str:
    """SHA-256 of the fingerprints, options and version of an :func:`input_record`."""
    payload = {k: record[k] for k in ("fingerprints", "options", "version")}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
