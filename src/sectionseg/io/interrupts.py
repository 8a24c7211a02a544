"""Hold back Ctrl-C (SIGINT) and SIGTERM over a few steps that must not be cut in two.

Inside :func:`blocked_signals` the signals stay pending; they are delivered (and Python raises
``KeyboardInterrupt``) as soon as the block ends. Use it only around short steps: renames that swap
an output set into place, the shutdown of worker processes, the start of forked workers.
"""
from __future__ import annotations

import contextlib
import signal

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def blocked_signals():
    """Block SIGINT and SIGTERM in this thread for the duration (a no-op where the platform has no
    ``pthread_sigmask``)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
