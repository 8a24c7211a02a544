"""Hold back Ctrl-C (SIGINT) and SIGTERM over a few steps that must not be cut in two.

Inside :func:`blocked_signals` a stop signal is only recorded; it takes effect (Python raises
``KeyboardInterrupt``, or whatever the handler in place does) as soon as the block ends. Use it
only around short steps: renames that swap an output set into place, the start and the shutdown of
worker processes.

Two mechanisms, because either alone has a gap: the signals are blocked in this thread (a process
forked or spawned here starts with them blocked, so it can ignore them before any arrives), and in
the main thread Python's handlers are replaced by one that records them (a signal that the kernel
hands to another thread, one of torch's or a pool's, still runs its Python handler in the main
thread).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def blocked_signals():
    """Defer SIGINT and SIGTERM to the end of the block (see the module doc)."""
    received: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if hasattr(signal, "pthread_sigmask") else None
    try:
        yield
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending one is recorded now
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            _deliver(received[0], previous.get(received[0]))


def _deliver(signum: int, handler) -> None:
    """Act on a deferred signal as its handler would have."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)
