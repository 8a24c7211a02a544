"""Write files atomically: to a temporary file beside the target, then rename.

A reader never sees a half-written output, and a crash leaves the previous version intact.

Temporary files are named ``.NAME.sectionseg-tmp-HOST-PID-XXXXXXXX.SUFFIX`` (the target's suffix
last, for writers that sniff it), so that the ones a killed process left behind are recognised:
:func:`remove_stale_temps` deletes those whose process is no longer running (or, when written by
another machine of a shared disk, that are older than a day). Temporary files of the earlier naming
(``.STEM.XXXXXXXX.SUFFIX`` beside ``STEM.SUFFIX``) older than an hour are removed too.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from pathlib import Path

#: a temporary of another machine (shared disk) is stale after this many seconds
FOREIGN_STALE_S = 24 * 3600
#: a temporary of the earlier naming is stale after this many seconds
LEGACY_STALE_S = 3600

_OWNED = re.compile(r"\.sectionseg-(?:tmp|new|old)-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-")
_LEGACY = re.compile(r"^\.(?P<stem>.+)\.[a-z0-9_]{8}(?P<suffix>(\.[^.]*)?)$")


def host_tag() -> str:
    """This machine's short host name, letters, digits and ``_`` only (for temporary names)."""
    name = socket.gethostname().split(".")[0] or "host"
    return re.sub(r"[^A-Za-z0-9_]", "_", name)[:32]


def owner_tag() -> str:
    """``HOST-PID`` of this process: the owner part of temporary names."""
    return f"{host_tag()}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def is_stale(path: Path) -> bool:
    """Whether ``path`` is a temporary (file or staging folder) of a process that is gone."""
    m = _OWNED.search(path.name)
    if m is None:
        return False
    if m["host"] == host_tag():
        return int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"]))
    return _age(path) > FOREIGN_STALE_S


def _age(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except OSError:
        return 0.0


def _is_legacy_temp(path: Path) -> bool:
    m = _LEGACY.match(path.name)
    return (
        m is not None
        and path.is_file()
        and (path.parent / (m["stem"] + m["suffix"])).exists()
        and _age(path) > LEGACY_STALE_S
    )


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed processes left in ``folder`` (not recursive); return
    them. Folders (output sets being staged) are left to :mod:`sectionseg.io.outset`."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for path in entries:
        if not path.name.startswith(".") or path.is_dir():
            continue
        if (".sectionseg-tmp-" in path.name and is_stale(path)) or _is_legacy_temp(path):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    Use for writers that want a file name (tifffile, cv2, matplotlib, torch.save). The temporary
    file keeps the target's suffix so that extension-sniffing writers pick the right format.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.sectionseg-tmp-{owner_tag()}-", suffix=path.suffix, dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
