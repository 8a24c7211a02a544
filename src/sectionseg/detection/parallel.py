"""Map a function over items in forked worker processes (whole-wafer detection on several cores).

Why processes and not one process with several torch threads: a good part of Mask R-CNN inference
(RoIAlign, NMS, the Python glue) and all of the quad fitting run on one core only; two processes
with one torch thread each keep both cores of a small machine busy (measured in BENCHMARKS.md).

Workers are *forked* so that they inherit the loaded model and the memory-mapped wafer without
pickling them; only the items and the results travel. Where fork is not available (Windows,
macOS default) or ``workers <= 1`` the map runs in this process, with the same results.

The pool is this module's own (no ``multiprocessing.Pool``): workers are forked from the main thread
of a process without helper threads, so no lock held by another thread (logging, a pool's handler
threads) is copied locked into a worker; workers ignore Ctrl-C and the parent terminates them on any
exception, so a Ctrl-C stops a run at once, without a hang or worker tracebacks.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import pickle
import resource
import signal
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar, cast

from sectionseg.errors import ResourceError
from sectionseg.io.interrupts import STOP_SIGNALS, blocked_signals

MAX_AUTO_WORKERS = 8  # each worker holds its own activations (~0.3-0.5 GB for 512 px tiles)
#: memory of inference per pixel of the tiles of one model call, bytes (~0.5 GB for 2 tiles of 512 px)
BYTES_PER_BATCH_PIXEL = 1000

_T = TypeVar("_T")
_R = TypeVar("_R")

_TASK: Callable[[Any], Any] | None = None  # the function of the running map, inherited by the forked workers


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def can_fork() -> bool:
    return "fork" in mp.get_all_start_methods()


def resolve_workers(workers: int | None, device: str = "cpu") -> int:
    """Worker processes for ``workers`` (None = auto: one per usable core up to
    :data:`MAX_AUTO_WORKERS` on the CPU, 1 on a GPU or where fork is unavailable). With one
    worker everything runs in this process with its own torch threads."""
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        return int(workers) if can_fork() else 1
    if not str(device).startswith("cpu") or not can_fork():
        return 1
    return min(usable_cores(), MAX_AUTO_WORKERS)


def _init_worker() -> None:
    # One torch thread per worker, set before any torch op: the parent's OpenMP pool does not
    # survive fork and a forked child that uses several OpenMP threads hangs (GNU libgomp). Do not
    # call cv2.setNumThreads here either: it waits for the parent's pool threads, which the child
    # does not have, and hangs; OpenCV's own parallel loops work in the child. A parent that has
    # not imported torch has no OpenMP pool to inherit: nothing to do (and no import to pay).
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


class WorkerFailed(RuntimeError):
    """An exception raised in a worker that could not be sent back as it was."""


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a :class:`WorkerFailed` that names it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return WorkerFailed(f"{type(exc).__name__}: {exc}")


def _worker_main(conn: Connection) -> None:
    """Loop of a forked worker: receive ``(index, item)``, send ``(index, ok, result or exception,
    traceback text)``, until None or the parent goes away. Ctrl-C is the parent's business: the
    worker ignores SIGINT (the parent stops it with SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by the parent around fork
    _init_worker()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message is None:
            return
        index, item = message
        try:
            assert _TASK is not None  # set by fork_map before the workers are forked
            reply = (index, True, _TASK(item), "")
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
            reply = (index, False, _portable(exc), traceback.format_exc())
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return
        except Exception as exc:  # a result that does not pickle
            conn.send((index, False, WorkerFailed(f"result of item {index} cannot be sent: {exc}"), ""))


class _Pool:
    """``n`` forked workers without helper threads; one item in flight per worker (so that neither
    side ever blocks on a full pipe while the other does too)."""

    def __init__(self) -> None:
        self.ctx = mp.get_context("fork")
        self.workers: list[tuple[BaseProcess, Connection]] = []

    def start(self, n: int) -> None:
        """Fork ``n`` workers (Ctrl-C held back meanwhile: it reaches this process, once the workers
        ignore it, when this returns)."""
        with blocked_signals():
            for _ in range(n):
                ours, theirs = self.ctx.Pipe()
                process = self.ctx.Process(target=_worker_main, args=(theirs,), daemon=True)
                process.start()
                theirs.close()
                self.workers.append((process, ours))

    def map(self, items: list[Any], on_result: Callable[[Any], object] | None) -> list[Any]:
        results: list[Any] = [None] * len(items)
        done = [False] * len(items)
        todo = iter(enumerate(items))
        busy: dict[Any, tuple[BaseProcess, int]] = {}  # connection -> (process, index)
        for process, conn in self.workers:
            self._give(process, conn, todo, busy)
        reported = 0
        while reported < len(items):
            waiting = list(busy) + [busy[c][0].sentinel for c in busy]
            for ready in mp_connection.wait(waiting):
                if ready in busy:
                    conn = cast(Connection, ready)  # busy's keys are the workers' connections
                    process, index = busy.pop(conn)
                    results[index] = self._receive(process, conn, index)
                    done[index] = True
                    self._give(process, conn, todo, busy)
                else:  # a sentinel: a worker ended, which only a kill makes it do
                    raise _died(next(p for p, _ in self.workers if p.sentinel == ready))
            while reported < len(items) and done[reported]:
                if on_result is not None:
                    on_result(results[reported])
                reported += 1
        return results

    @staticmethod
    def _give(
        process: BaseProcess,
        conn: Connection,
        todo: Iterator[tuple[int, Any]],
        busy: dict[Any, tuple[BaseProcess, int]],
    ) -> None:
        index_item = next(todo, None)
        if index_item is not None:
            conn.send(index_item)
            busy[conn] = (process, index_item[0])

    @staticmethod
    def _receive(process: BaseProcess, conn: Connection, index: int) -> Any:
        try:
            got, ok, value, remote = conn.recv()
        except (EOFError, OSError):
            raise _died(process) from None
        if not ok:
            raise value from (WorkerFailed(f"in the worker process:\n{remote}") if remote else None)
        assert got == index
        return value

    def close(self, *, abort: bool) -> None:
        """Stop the workers: ask them to finish (or terminate them when ``abort``), then reap them.
        Ctrl-C is held back meanwhile so that no worker outlives this call."""
        with blocked_signals():
            for process, conn in self.workers:
                if not abort:
                    with contextlib.suppress(OSError):
                        conn.send(None)
                elif process.is_alive():
                    process.terminate()
            for process, conn in self.workers:
                process.join(5.0 if not abort else 2.0)
                if process.is_alive():
                    process.kill()
                    process.join(2.0)
                conn.close()


def _died(process: BaseProcess) -> ResourceError:
    process.join(2.0)  # its pipes close before it can be reaped
    code = process.exitcode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
    hint = " (out of memory? try fewer --workers)" if code == -signal.SIGKILL else ""
    return ResourceError(f"a worker process {how}{hint}")


def fork_map(
    fn: Callable[[_T], _R], items: Iterable[_T], workers: int, *, on_result: Callable[[_R], object] | None = None
) -> list[_R]:
    """``[fn(item) for item in items]`` (in order) computed by ``workers`` forked processes with one
    torch thread each; ``on_result(result)`` is called in this process, in order, as results arrive
    (progress bars). ``fn`` may be a closure: workers inherit it through fork.

    An exception in a worker is raised here (with the worker's traceback as its cause); a worker
    that dies (killed, out of memory) raises :class:`~sectionseg.errors.ResourceError`. On any
    exception, Ctrl-C included, the workers are terminated before this returns: Ctrl-C in a
    terminal reaches every process of the group, but the workers ignore it and only this process
    stops them, so nothing hangs and no worker prints a traceback."""
    global _TASK
    items = list(items)
    results: list[_R] = []
    # a daemonic process (a worker of the caller's own pool) may not start processes: run in it
    if workers <= 1 or len(items) < 2 or not can_fork() or mp.current_process().daemon:
        for item in items:
            results.append(fn(item))
            if on_result is not None:
                on_result(results[-1])
        return results
    previous, _TASK = _TASK, fn
    pool = _Pool()
    try:
        pool.start(min(workers, len(items)))
        results = pool.map(items, on_result)
    except BaseException:
        pool.close(abort=True)
        raise
    else:
        pool.close(abort=False)
    finally:
        _TASK = previous
    return results


def worker_peak_memory_mb() -> float:
    """Largest peak resident memory of any finished worker of this process, MB (0 when none ran).
    Forked workers share the parent's pages until they write them, so this process's peak plus
    workers x this value is an upper bound of the machine memory used."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
