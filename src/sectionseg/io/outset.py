"""Write a set of output files as one unit: whole or not at all.

:func:`output_set` yields an empty staging folder beside the output folder OUT (a hidden sibling
``.OUT.sectionseg-new-HOST-PID-XXXXXXXX`` on the same file system). The command writes its whole set
there; when it is complete a marker ``.sectionseg-set.json`` (the list of the set's entries) is
written into it and the staging folder is swapped with OUT by two renames (``OUT`` -> a hidden
``...-old-...`` sibling, staging -> ``OUT``), with Ctrl-C held back between them. So OUT holds
either the previous complete set or the new complete one; an error or Ctrl-C before the swap
removes the staging folder and leaves OUT untouched.

OUT is swapped whole only when everything in it belongs to the sets (names of the previous set's
marker or of the new set). When OUT holds other files too (the wafer images beside ``--out .``), is
the working folder or a mount point, or when its parent is not writable, the new entries are moved
into OUT one by one instead; while they are, OUT holds ``.sectionseg-incomplete`` and readers
(:func:`check_complete`, called by :func:`sectionseg.formats.read_sections` and the dataset reader)
refuse it. Entries of the previous set that the new set lacks are removed.

A process killed with SIGKILL can leave a staging folder, an ``-old-`` folder or temporary files
behind: the next :func:`output_set` on the same OUT removes them, and puts a complete set back
in place when the kill fell between the two renames.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from sectionseg.errors import InputError
from sectionseg.io.atomic import is_stale, owner_tag, remove_stale_temps
from sectionseg.io.interrupts import blocked_signals

MARKER = ".sectionseg-set.json"
INCOMPLETE = ".sectionseg-incomplete"
MARKER_FORMAT = "sectionseg-output-set"


def check_complete(folder: str | os.PathLike) -> None:
    """InputError when ``folder`` is an output set that is being (or was, by a killed run) replaced
    entry by entry."""
    folder = Path(folder)
    if (folder / INCOMPLETE).exists():
        raise InputError(
            "incomplete output set: a run writing it was interrupted or is still running; run it again", folder
        )


def set_entries(folder: str | os.PathLike) -> list[str] | None:
    """Names of the entries of the output set in ``folder`` (its marker), or None without a marker."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    return [str(f) for f in files] if isinstance(files, list) else None


@contextlib.contextmanager
def output_set(out: str | os.PathLike, command: str = ""):
    """Yield a staging folder; on success make its content the content of ``out`` as one unit (see
    the module doc). ``command`` is recorded in the marker."""
    out = Path(os.path.realpath(out))  # a symlinked OUT: the set goes where it points
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    staging, beside = _staging_folder(out)
    try:
        yield staging
        _write_marker(staging, command)
    except BaseException:
        with blocked_signals():
            shutil.rmtree(staging, ignore_errors=True)
        raise
    with blocked_signals():
        if beside and _swappable(out, staging):
            _swap(staging, out)
        else:
            _merge(staging, out)


def _staging_folder(out: Path) -> tuple[Path, bool]:
    """``(new staging folder, whether it lies beside out)``: beside ``out``, or inside it when
    ``out`` is a mount point (renames cannot cross it) or its parent is not writable."""
    if not (out.is_dir() and os.path.ismount(out)):
        with contextlib.suppress(OSError):
            return Path(tempfile.mkdtemp(prefix=f".{out.name}.sectionseg-new-{owner_tag()}-", dir=out.parent)), True
    out.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".sectionseg-new-{owner_tag()}-", dir=out)), False


def _write_marker(staging: Path, command: str) -> None:
    entries = sorted(p.name for p in staging.iterdir() if p.name != MARKER)
    text = json.dumps({"format": MARKER_FORMAT, "command": command, "files": entries}, indent=1) + "\n"
    (staging / MARKER).write_text(text, encoding="utf-8")


def _siblings(out: Path, kind: str) -> list[Path]:
    """Hidden staging (``new``) or replaced (``old``) folders of ``out``, beside and inside it."""
    found = list(out.parent.glob(f".{glob_escape(out.name)}.sectionseg-{kind}-*"))
    if out.is_dir():
        found += list(out.glob(f".sectionseg-{kind}-*"))
    return [p for p in found if p.is_dir()]


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def recover(out: str | os.PathLike) -> None:
    """Clean up after killed runs on ``out``: stale temporary files in it are deleted; when ``out``
    is missing (a kill between the two renames of a swap) the complete staged set, else the
    previous set, is put back; other stale staging and replaced folders are deleted."""
    out = Path(os.path.realpath(out))
    stale_new = [p for p in _siblings(out, "new") if is_stale(p)]
    stale_old = [p for p in _siblings(out, "old") if is_stale(p)]
    with blocked_signals():
        if not out.exists():
            complete = [p for p in stale_new if p.parent == out.parent and (p / MARKER).is_file()]
            for candidate in complete + [p for p in stale_old if p.parent == out.parent]:
                with contextlib.suppress(OSError):
                    os.rename(candidate, out)
                    break
        for path in stale_new + stale_old:
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
        if out.is_dir():
            remove_stale_temps(out)


def _swappable(out: Path, staging: Path) -> bool:
    """Whether ``out`` can be replaced as a whole: missing, or holding set entries only, not the
    working folder (or above it) and not a mount point."""
    if not out.exists():
        return True
    cwd = Path(os.path.realpath(os.getcwd()))
    if out == cwd or out in cwd.parents:
        return False
    ours = set(set_entries(out) or []) | {p.name for p in staging.iterdir()} | {MARKER, INCOMPLETE}
    return all(p.name in ours for p in out.iterdir())


def _swap(staging: Path, out: Path) -> None:
    """Replace ``out`` by ``staging`` with two renames (the folder keeps the old one's mode)."""
    if not out.exists():
        _set_mode(staging, None)
        os.rename(staging, out)
        return
    _set_mode(staging, out)
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.sectionseg-old-{owner_tag()}-", dir=out.parent))
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(staging, out)
    except OSError:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _set_mode(staging: Path, like: Path | None) -> None:
    """mkdtemp makes 0700 folders: give the new set the replaced folder's mode (and group), or the
    usual mode."""
    if like is None:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(staging, 0o777 & ~mask)
        return
    info = like.stat()
    os.chmod(staging, stat.S_IMODE(info.st_mode))
    with contextlib.suppress(OSError):
        os.chown(staging, -1, info.st_gid)


def _merge(staging: Path, out: Path) -> None:
    """Move the staged entries into ``out`` one by one, flagged incomplete meanwhile."""
    out.mkdir(parents=True, exist_ok=True)
    previous = set(set_entries(out) or [])
    (out / INCOMPLETE).write_text("an output set is being replaced\n", encoding="utf-8")
    with contextlib.suppress(FileNotFoundError):
        (out / MARKER).unlink()
    trash = Path(tempfile.mkdtemp(prefix=f".sectionseg-old-{owner_tag()}-", dir=out))
    new = [p for p in staging.iterdir() if p.name != MARKER]
    for name in previous - {p.name for p in new} - {MARKER, INCOMPLETE}:
        _move_aside(out / name, trash)
    for entry in new:
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            _move_aside(target, trash)
        os.replace(entry, target)
    os.replace(staging / MARKER, out / MARKER)
    (out / INCOMPLETE).unlink()
    shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def _move_aside(path: Path, trash: Path) -> None:
    if path.exists() or path.is_symlink():
        os.rename(path, trash / path.name)
