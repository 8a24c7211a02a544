"""The batch summary: one row per wafer, as ``ROOT/summary.csv`` (written atomically, again after every
wafer, so that it is current even when the batch itself is stopped) and as a printed table.

Columns (:data:`SUMMARY_COLUMNS`):

- ``name``, ``status``: ``done`` (detected in this run), ``skipped`` (complete outputs matching the
  inputs were there already), ``failed`` (see ``error``), ``pending`` (not reported when the batch
  was stopped: its outputs may be complete all the same, the next run then skips it);
- ``sections``: paired sections found; ``lone_parts``: tissue or magnet parts without a partner;
  ``poor_fits``: parts whose quad fits their mask poorly (IoU < 0.8); ``doubtful_parts``: lone
  parts + poor fits, the parts a person should look at on ``overlay.png``;
- ``seconds``: the wafer's detection time (of the run that made its outputs, for a skipped wafer);
  ``task_seconds``: the time its task took in this run (reading, detecting, writing; the check
  alone for a skipped wafer);
- ``peak_memory_mb``: peak resident memory of the process that detected it (from ``report.json``);
- ``worker``: the Dask worker that ran it; ``output``: its output folder; ``error``: one line.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

SUMMARY_NAME = "summary.csv"
SUMMARY_COLUMNS = (
    "name",
    "status",
    "sections",
    "lone_parts",
    "poor_fits",
    "doubtful_parts",
    "seconds",
    "task_seconds",
    "peak_memory_mb",
    "worker",
    "output",
    "error",
)
STATUSES = ("done", "skipped", "failed", "pending")


def row_from_report(name: str, status: str, report: dict | None, **extra) -> dict:
    """A summary row from a detection's ``report.json`` (None: the numbers stay empty)."""
    row = {c: "" for c in SUMMARY_COLUMNS}
    row.update(name=name, status=status)
    if report:
        counts = report.get("counts") or {}
        lone = int(counts.get("unpaired_tissue", 0)) + int(counts.get("unpaired_magnet", 0))
        poor = int(counts.get("poor_fits", 0))
        row.update(
            sections=int(counts.get("sections", 0)),
            lone_parts=lone,
            poor_fits=poor,
            doubtful_parts=lone + poor,
            seconds=_round(report.get("total_seconds")),
            peak_memory_mb=_round(report.get("peak_memory_mb"), 0),
        )
    for key, value in extra.items():
        if key in row and value is not None:
            row[key] = value
    if isinstance(row["task_seconds"], float):
        row["task_seconds"] = _round(row["task_seconds"])
    row["error"] = " ".join(str(row["error"]).split())  # one line
    return row


def _round(value, digits: int = 1):
    return "" if value is None else round(float(value), digits)


def summary_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, SUMMARY_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_summary(root: str | os.PathLike, rows: list[dict]) -> Path:
    """``ROOT/summary.csv``, atomically."""
    from sectionseg.io.atomic import write_text

    path = Path(root) / SUMMARY_NAME
    write_text(path, summary_csv(rows))
    return path


def read_summary(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def format_table(
    rows: list[dict],
    columns=("name", "status", "sections", "doubtful_parts", "seconds", "task_seconds", "error"),
    max_error: int = 60,
) -> str:
    """A plain-text table of the rows (the error cut to ``max_error`` characters)."""

    def cell(row, c):
        text = str(row.get(c, ""))
        return text if c != "error" or len(text) <= max_error else text[: max_error - 3] + "..."

    table = [list(columns)] + [[cell(r, c) for c in columns] for r in rows]
    widths = [max(len(line[k]) for line in table) for k in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def totals(rows: list[dict]) -> dict:
    """How many wafers of each status."""
    return {s: sum(r["status"] == s for r in rows) for s in STATUSES}
