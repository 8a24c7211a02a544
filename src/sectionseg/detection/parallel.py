"""Map a function over items in forked worker processes (whole-wafer detection on several cores).

Why processes and not one process with several torch threads: a good part of Mask R-CNN inference
(RoIAlign, NMS, the Python glue) and all of the quad fitting run on one core only; two processes
with one torch thread each keep both cores of a small machine busy (measured in BENCHMARKS.md).

Workers are *forked* so that they inherit the loaded model and the memory-mapped wafer without
pickling them; only the items and the results travel. Where fork is not available (Windows,
macOS default) or ``workers <= 1`` the map runs in this process, with the same results.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import resource
from typing import Callable, Iterable

MAX_AUTO_WORKERS = 8  # each worker holds its own activations (~0.3-0.5 GB for 512 px tiles)

_TASK: Callable | None = None  # the function of the running map, inherited by the forked workers


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
    # does not have, and hangs; OpenCV's own parallel loops work in the child.
    import torch

    torch.set_num_threads(1)


def _run(item):
    return _TASK(item)


def fork_map(fn: Callable, items: Iterable, workers: int, *, on_result: Callable | None = None) -> list:
    """``[fn(item) for item in items]`` (in order) computed by ``workers`` forked processes with one
    torch thread each; ``on_result(result)`` is called in this process as results arrive (progress
    bars). ``fn`` may be a closure: workers inherit it through fork."""
    global _TASK
    items = list(items)
    results = []
    # a daemonic process (a worker of the caller's own pool) may not start processes: run in it
    if workers <= 1 or len(items) < 2 or not can_fork() or mp.current_process().daemon:
        for item in items:
            results.append(fn(item))
            if on_result is not None:
                on_result(results[-1])
        return results
    previous, _TASK = _TASK, fn
    try:
        ctx = mp.get_context("fork")
        with ctx.Pool(min(workers, len(items)), initializer=_init_worker) as pool:
            for result in pool.imap(_run, items):
                results.append(result)
                if on_result is not None:
                    on_result(result)
    finally:
        _TASK = previous
    return results


def worker_peak_memory_mb() -> float:
    """Largest peak resident memory of any finished worker of this process, MB (0 when none ran).
    Forked workers share the parent's pages until they write them, so this process's peak plus
    workers x this value is an upper bound of the machine memory used."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
