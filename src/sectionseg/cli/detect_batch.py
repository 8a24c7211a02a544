"""``sectionseg detect-batch``: detect the sections of many wafers on Dask, one task per wafer.

Exit codes: 0 every wafer done or skipped; 1 some wafer failed (its row in ``ROOT/summary.csv``
says why; the others are done); 2 a bad manifest, folder or option (one line naming the file and
line, before any wafer runs).
"""

from __future__ import annotations

import logging

from sectionseg.errors import InputError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    from sectionseg.batch.fingerprint import HASH_MODES
    from sectionseg.cli.detect import add_detection_arguments

    p = subparsers.add_parser(
        "detect-batch",
        help="detect many wafers (a manifest CSV or a folder) on Dask into ROOT/NAME/ + ROOT/summary.csv",
        description="Run 'sectionseg detect' for every wafer of MANIFEST.csv (columns name,gray,fluo; "
        "fluo may be empty; optional landmarks, section_size; paths relative to the "
        "manifest) or of a folder (X.tif or X_gray.tif + X_fluo.tif, or sub-folders "
        "X/gray.tif + X/fluo.tif), one Dask task per wafer, on a local cluster or on "
        "--scheduler. Each wafer's outputs go to ROOT/NAME/ (what detect writes); a "
        "wafer whose outputs are complete and were made from the same inputs, model and "
        "options is skipped, so running the same command again after a crash only "
        "redoes what is missing. A failed wafer does not stop the others. ROOT/summary.csv "
        "(also printed) has one row per wafer: status (done, skipped, failed, pending), "
        "sections, doubtful parts, time, error. Exit code 1 when some wafer failed.",
    )
    p.add_argument("source", metavar="MANIFEST.csv|DIR", help="manifest CSV file or folder of wafer images")
    p.add_argument("--out", required=True, metavar="ROOT", help="output root: ROOT/NAME/ per wafer, ROOT/summary.csv")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of a running Dask scheduler (tcp://host:8786, or a scheduler file "
        "path ending in .json), e.g. of a dask-jobqueue or Kubernetes cluster; its "
        "workers must see the images and ROOT at the same paths (default: a local "
        "cluster on this machine)",
    )
    p.add_argument(
        "--local-workers",
        type=int,
        help="wafers detected at once by the local cluster (worker processes; default: one "
        "per core, fewer when memory is short, at most the number of wafers; 1 with "
        "--device cuda)",
    )
    p.add_argument(
        "--threads-per-wafer",
        type=int,
        help="torch / OpenCV threads of one wafer's detection (default: the local cluster's "
        "cores / its workers; 1 on --scheduler, whose workers run one wafer per thread)",
    )
    p.add_argument(
        "--hash",
        choices=HASH_MODES,
        default="quick",
        dest="hash_mode",
        help="how input files are recognised for skipping: quick (default; size, "
        "modification time and the first, middle and last MiB) or full (SHA-256 of "
        "the whole file, ~1 s per GB)",
    )
    p.add_argument("--force", action="store_true", help="detect every wafer again, even complete ones")
    p.add_argument(
        "--dashboard",
        metavar="ADDRESS",
        help="serve the local cluster's Dask dashboard there, e.g. :8787 (default: none)",
    )
    add_detection_arguments(p, workers=False)
    p.set_defaults(func=run, check=check_args)


def local_workers(requested: int | None, n_jobs: int, device: str, batch_size: int, tile_size: int) -> int:
    """Worker processes of the local cluster: ``requested``, else one per core, no more than the
    memory available holds (a wafer ~1.5 GB plus its inference batches) nor than the wafers; 1 on a
    GPU (one device shared)."""
    from sectionseg.batch.run import WAFER_BASE_MEMORY
    from sectionseg.detection.inference import resolve_batch_size
    from sectionseg.detection.parallel import BYTES_PER_BATCH_PIXEL, usable_cores
    from sectionseg.io.memory import available_memory

    if requested is not None:
        return requested
    if str(device).startswith("cuda"):
        return 1
    batch_size = resolve_batch_size(batch_size, device)
    per_wafer = WAFER_BASE_MEMORY + batch_size * tile_size**2 * BYTES_PER_BATCH_PIXEL
    free = available_memory()
    by_memory = usable_cores() if free is None else max(1, int(free // per_wafer))
    return max(1, min(usable_cores(), by_memory, n_jobs))


def check_args(args) -> None:
    from sectionseg.batch.jobs import find_jobs
    from sectionseg.batch.run import WAFER_BASE_MEMORY
    from sectionseg.cli._checks import check_memory, check_output_folder
    from sectionseg.cli.detect import check_detection_arguments
    from sectionseg.detection.inference import resolve_batch_size
    from sectionseg.detection.parallel import BYTES_PER_BATCH_PIXEL

    check_detection_arguments(args)
    out = check_output_folder(args.out)
    args.jobs = find_jobs(args.source)
    names = {j.name.lower() for j in args.jobs}
    for job in args.jobs:  # an output folder inside ROOT must not be a wafer's input
        for path in (job.gray, job.fluo, job.landmarks):
            if path is None:
                continue
            parts = [p.lower() for p in _relative_parts(path, out)]
            if parts and parts[0] in names:
                raise InputError(
                    f"wafer {job.name!r} reads {path}, inside the output folder of wafer "
                    f"{parts[0]!r}, which the batch replaces; choose another --out",
                    args.source,
                    job.line,
                )
    if args.scheduler is None:
        args.local_workers = local_workers(
            args.local_workers, len(args.jobs), args.device, args.batch_size, args.tile_size
        )
        batch = resolve_batch_size(args.batch_size, args.device)
        check_memory(
            args.local_workers * (WAFER_BASE_MEMORY + batch * args.tile_size**2 * BYTES_PER_BATCH_PIXEL),
            f"{args.local_workers} wafers at once (--local-workers)",
        )


def _relative_parts(path, root) -> tuple[str, ...]:
    import os
    from pathlib import Path

    try:
        return Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(root))).parts
    except ValueError:
        return ()


def _quiet_dask(record: logging.LogRecord) -> bool:
    """Dask's and its libraries' records below ERROR are not shown (they say how workers start and
    close)."""
    return record.levelno >= logging.ERROR or not record.name.startswith(("distributed", "tornado", "asyncio"))


def run(args) -> int:
    import sys

    from sectionseg.batch.run import run_batch
    from sectionseg.batch.summary import SUMMARY_NAME, format_table, totals
    from sectionseg.cli.detect import detection_options

    if not getattr(args, "verbose", False):  # Dask's own lines (workers closing...) only with -v
        logging.getLogger("distributed").setLevel(logging.ERROR)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet_dask)
    jobs = args.jobs
    where = args.scheduler or f"a local cluster of {args.local_workers} worker(s)"
    print(f"{len(jobs)} wafer(s) into {args.out} on {where}", flush=True)
    rows = run_batch(
        jobs,
        args.out,
        model=args.model,
        options=detection_options(args),
        scheduler=args.scheduler,
        local_workers=args.local_workers or 1,
        threads=args.threads_per_wafer,
        hash_mode=args.hash_mode,
        force=args.force,
        dashboard=args.dashboard,
        verbose=getattr(args, "verbose", False),
    )
    print()
    print(format_table(rows))
    count = totals(rows)
    print(
        f"\n{count['done']} done, {count['skipped']} skipped, {count['failed']} failed; summary: "
        f"{args.out}/{SUMMARY_NAME}"
    )
    sys.stdout.flush()
    return 1 if count["failed"] or count["pending"] else 0
