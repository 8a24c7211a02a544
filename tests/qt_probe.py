"""Whether Qt can start here, asked of a child process (a Qt that cannot start may abort() the
process that tries: pytest itself must not be that process)."""

from __future__ import annotations

import os
import subprocess
import sys

#: fixtures that create a QApplication: tests that use them are skipped when Qt cannot start
QT_FIXTURES = frozenset(
    {"qapp", "qtbot", "qtmodeltester", "make_napari_viewer", "make_napari_viewer_proxy", "qt_viewer"}
)
PROBE = "from qtpy.QtWidgets import QApplication; app = QApplication([]); print('qt ok')"
TIMEOUT = 60.0


def qt_problem(env: dict | None = None, timeout: float = TIMEOUT) -> str | None:
    """None when a child process could create a QApplication (with ``env``, default this process's
    environment, ``QT_QPA_PLATFORM`` defaulting to offscreen), else why not: the child's last lines."""
    env = dict(os.environ if env is None else env)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"creating a QApplication took over {timeout:.0f} s (QT_QPA_PLATFORM={env['QT_QPA_PLATFORM']})"
    if done.returncode == 0 and "qt ok" in done.stdout:
        return None
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    tail = " | ".join(lines[-3:])[-400:] or "no message"
    return f"Qt cannot start (QT_QPA_PLATFORM={env['QT_QPA_PLATFORM']}, exit code {done.returncode}): {tail}"
