"""Detection of many wafers on Dask: one task per wafer, each writing ``ROOT/NAME/`` as ``detect`` does.

:func:`run_batch` starts a ``distributed.LocalCluster`` (or connects to a running scheduler:
``dask-jobqueue``, Kubernetes, ``dask scheduler`` + ``dask worker`` started by the user), submits
one task per wafer (:func:`wafer_task`, largest wafers first) and collects their summary rows as they
finish, rewriting ``ROOT/summary.csv`` after each. Dask does the scheduling, the retries of a task
whose worker died, and the spreading over machines; nothing here queues or schedules.

A task first compares the wafer's inputs with what ``ROOT/NAME/report.json`` says it was made from
(:func:`sectionseg.batch.wafer.existing_run`, run keys of :mod:`sectionseg.batch.fingerprint`): a
complete output set of the same inputs, model, options and sectionseg version is *skipped*, so a
batch run again after a crash, a kill or a power cut only redoes the wafers that are missing (an
output set is swapped in whole, :mod:`sectionseg.io.outset`: a wafer cut off while being written
has its previous set or none). A wafer that fails (an unreadable image, a worker killed for its
memory twice, any exception) is reported in its row and does not stop the others.

Inside a task the wafer is detected in the worker's process with ``workers=1`` (no forked
processes: Dask's worker processes are daemonic, and forking from one of their threads would copy
locks held by the others) and ``threads`` torch / OpenCV threads (the local cluster's cores shared by
its workers; 1 on a scheduler's workers); the parallelism is Dask's, one wafer per worker thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import uuid
from pathlib import Path

from sectionseg.batch.jobs import WaferJob
from sectionseg.batch.summary import row_from_report, write_summary
from sectionseg.errors import InputError

log = logging.getLogger(__name__)

#: memory a wafer task needs beside its inference batches (model, masks, fitting), bytes
WAFER_BASE_MEMORY = 1.5 * 2**30
LOCK_NAME = ".sectionseg-batch.lock"
#: how long to try reaching a --scheduler
CONNECT_TIMEOUT = "30s"


def _worker_name() -> str:
    try:
        from distributed import get_worker

        worker = get_worker()
        return str(worker.name if worker.name is not None else worker.address)
    except (ImportError, ValueError):
        return "local"


def _task_threads(threads: int | None) -> int:
    """Torch threads for a wafer: ``threads``, else 1 (one wafer per worker thread, one core each)."""
    return max(1, int(threads)) if threads else 1


def wafer_task(
    job: WaferJob,
    root: str,
    model: str | None,
    options: dict,
    *,
    hash_mode: str = "quick",
    force: bool = False,
    threads: int | None = None,
) -> dict:
    """Skip or detect one wafer into ``root/job.name``; return its summary row. Runs in a Dask worker
    (or anywhere). Never raises for the wafer's own problems: they are its row's ``failed`` status
    and ``error``."""
    t0 = time.perf_counter()
    out = Path(root) / job.name
    worker = _worker_name()

    def row(status, report=None, error=""):
        return row_from_report(
            job.name, status, report, task_seconds=time.perf_counter() - t0, worker=worker, output=str(out), error=error
        )

    try:
        from sectionseg.batch.wafer import detect_files, existing_run, resolve_model_path, wafer_record

        opts = dict(options)
        if job.section_size is not None:
            opts["section_size"] = job.section_size
        model_path = resolve_model_path(model)
        record = wafer_record(job.gray, job.fluo, job.landmarks, model_path, opts, hash_mode)
        if not force:
            report = existing_run(out)
            if report is not None and report.get("run_key") == record["run_key"]:
                return row("skipped", report)
        n = _task_threads(threads)
        import cv2
        import torch

        torch.set_num_threads(n)
        cv2.setNumThreads(n)
        opts["workers"] = 1
        opts["reuse_model"] = True  # loaded once per worker thread for all its wafers
        _, _, report = detect_files(
            job.gray,
            job.fluo,
            out,
            model=model_path,
            landmarks_path=job.landmarks,
            progress=False,
            record=record,
            **opts,
        )
        return row("done", existing_run(out) or report)  # as written: with the lone parts' counts
    except MemoryError:
        return row(
            "failed",
            error="MemoryError: out of memory (fewer --local-workers, or a machine with more memory per worker)",
        )
    except Exception as exc:  # noqa: BLE001 - a wafer's failure is its row, never the batch's
        if not isinstance(exc, (InputError, OSError)):
            log.debug("wafer %s failed", job.name, exc_info=True)
        return row("failed", error=f"{type(exc).__name__}: {exc}")


def _size(job: WaferJob) -> int:
    """Bytes of a wafer's images (its priority: large wafers start first, the batch ends sooner)."""
    total = 0
    for path in (job.gray, job.fluo):
        if path is None:
            continue
        p = Path(path)
        with contextlib.suppress(OSError):
            total += p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


@contextlib.contextmanager
def batch_lock(root: Path):
    """Hold ``ROOT/.sectionseg-batch.lock`` (an advisory lock) while a batch writes into ROOT; a
    second batch on the same ROOT is refused (InputError) instead of writing the same wafers."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    fh = open(root / LOCK_NAME, "a+")  # noqa: SIM115 - held open across the yield, closed in finally
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            who = fh.read().strip() or "another process"
            raise InputError(
                f"another detect-batch is writing into this folder ({who}); wait for it or use another --out", root
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"host {os.uname().nodename} pid {os.getpid()}\n")
        fh.flush()
        yield
    finally:
        fh.close()


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None,
    *,
    local_workers: int = 1,
    dashboard: str | None = None,
    verbose: bool = False,
    processes: bool = True,
):
    """A ``distributed.Client``: of the scheduler at ``scheduler`` (its workers must see the wafer
    files and ROOT at the same paths and have sectionseg installed), else of a new LocalCluster of
    ``local_workers`` worker processes with one thread each (closed on exit; ``processes`` False:
    threads of this process instead, for tests)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            if scheduler.endswith(".json") and Path(scheduler).is_file():  # dask's --scheduler-file
                client = Client(scheduler_file=scheduler, timeout=CONNECT_TIMEOUT)
            else:
                client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        with contextlib.closing(client):
            yield client
        return
    level = logging.WARNING if verbose else logging.ERROR
    # a wafer whose worker died (killed for memory) is tried once more, then reported failed
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(
            n_workers=local_workers,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=dashboard,
            silence_logs=level,
        )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            with contextlib.suppress(Exception):
                cluster.close(timeout=20)


def run_batch(
    jobs: list[WaferJob],
    root: str | os.PathLike,
    *,
    model: str | None = None,
    options: dict | None = None,
    scheduler: str | None = None,
    local_workers: int = 1,
    threads: int | None = None,
    hash_mode: str = "quick",
    force: bool = False,
    dashboard: str | None = None,
    verbose: bool = False,
    processes: bool = True,
    echo=print,
) -> list[dict]:
    """Detect every wafer of ``jobs`` into ``root/NAME`` on Dask (see the module doc); return the
    summary rows (in ``jobs`` order), also written to ``root/summary.csv``. ``options``:
    :func:`sectionseg.batch.wafer.detect_files` keyword arguments shared by every wafer; ``threads``:
    torch threads per wafer (None: the local cluster's cores / its workers; 1 on a --scheduler's
    workers, which run one wafer per worker thread); ``processes``: local workers are
    processes (False: threads of this process, which share its torch threads: tests); ``echo``: where
    one line per finished wafer goes (None: nowhere)."""
    root = Path(root).resolve()
    if threads is None and scheduler is None:  # the local cluster's cores shared by its workers
        from sectionseg.detection.parallel import usable_cores

        threads = max(1, usable_cores() // max(1, local_workers))
    options = dict(options or {})
    options.pop("workers", None)
    rows = {job.name: row_from_report(job.name, "pending", None, output=str(root / job.name)) for job in jobs}

    def ordered():
        return [rows[job.name] for job in jobs]

    with batch_lock(root):
        write_summary(root, ordered())
        with dask_client(
            scheduler, local_workers=local_workers, dashboard=dashboard, verbose=verbose, processes=processes
        ) as client:
            from distributed import as_completed

            token = uuid.uuid4().hex[:8]
            futures = {}
            for job in jobs:
                future = client.submit(
                    wafer_task,
                    job,
                    str(root),
                    model,
                    options,
                    hash_mode=hash_mode,
                    force=force,
                    threads=threads,
                    key=f"sectionseg-{job.name}-{token}",
                    pure=False,
                    retries=0,
                    priority=_size(job),
                )
                futures[future] = job
            for future in as_completed(futures):
                job = futures[future]
                try:
                    row = future.result()
                except Exception as exc:  # noqa: BLE001 - the task never raises: its worker died
                    row = row_from_report(
                        job.name,
                        "failed",
                        None,
                        output=str(root / job.name),
                        error=f"{type(exc).__name__}: {exc} (the worker running this wafer died: out of memory?)",
                    )
                rows[job.name] = row
                write_summary(root, ordered())
                if echo is not None:
                    extra = row["error"] if row["status"] == "failed" else f"{row['sections']} sections"
                    echo(f"{job.name}: {row['status']} ({extra})")
                    with contextlib.suppress(Exception):
                        sys.stdout.flush()
    return ordered()
