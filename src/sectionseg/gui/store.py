"""A detection folder read into a :class:`~sectionseg.gui.edits.ProofreadModel`, and saved back as
``detect`` writes it (no Qt).

Reading (:func:`load_annotations`): a ``detect`` output folder (``sections.labelme.json`` for the
polygons of paired sections and lone parts, with ``sections.csv`` for part scores and repairs and
``report.json`` for the proofreading record), else any annotation file or folder
:func:`sectionseg.formats.read_sections` reads (MagC pair, ``.magc``, labelme, COCO), else nothing
(a new, empty session).

The folder's ``sections.magc`` (or a ``.magc`` file opened) is read too: its serial and stage
order, landmarks, kept entries and dialect stay with the session (:class:`~sectionseg.gui.edits.MagcKept`;
the file's sections are matched to the labelme / MagC pair ones by index and tissue centre), so an
order set by ``sectionseg order`` or a ``.magc`` from another tool survives proofreading.

Saving (:func:`save_session`): :func:`sectionseg.export.write_detection_outputs`, the writer of
``detect``, as one output set (:mod:`sectionseg.io.outset`), with the same MagC dialect, pair
scale, landmarks, orders (:meth:`~sectionseg.gui.edits.ProofreadModel.magc_layout`) and image as
the loaded files; ``report.json`` keeps the detection's report and gains ``proofread``:
``sessions`` (per session: ``started``, ``saved``, ``edits`` and, when something needs a human
look, ``notes`` such as ``"serial order: 2 sections appended at the end; check it"``), and the
section numbers ``edited`` (changed by hand), ``checked`` (looked at: marked, or edited) and
``labelled``, which a reopening restores. The labelled sections also go to
``labels.labelme.json`` (for ``sectionseg finetune --labels``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sectionseg.errors import InputError
from sectionseg.gui.edits import ProofreadModel

log = logging.getLogger(__name__)

LABELME = "sections.labelme.json"
CSV = "sections.csv"
REPORT = "report.json"


@dataclass
class Loaded:
    sections: list
    report: dict = field(default_factory=dict)
    labelled: list[int] = field(default_factory=list)
    edited: list[int] = field(default_factory=list)
    rejected: list = field(default_factory=list)  # (polygon, reason) of the parts detection dropped
    source: str | None = None  # the file or folder the sections came from
    checked: list[int] = field(default_factory=list)
    magc: object | None = None  # the MagcFile read (orders, landmarks, entries), or None
    magc_sections: list | None = None  # index into ``sections`` of each of its sections (None: absent)


def is_detection_folder(path) -> bool:
    p = Path(path)
    return p.is_dir() and (
        (p / LABELME).is_file() or (p / "source_sections_tissue.txt").is_file() or (p / "sections.magc").is_file()
    )


def load_annotations(path) -> Loaded:
    """Sections, report and proofreading flags of ``path`` (see the module doc). A missing or empty
    folder gives an empty :class:`Loaded`."""
    from sectionseg.formats import read_magc, read_sections
    from sectionseg.io.outset import check_complete

    p = Path(path)
    if p.is_dir():
        check_complete(p)
        report = _read_report(p / REPORT)
        magc_path = p / "sections.magc"
        magc = read_magc(magc_path) if magc_path.is_file() else None
        if (p / LABELME).is_file():
            sections = read_sections(p / LABELME, fmt="labelme")
            _merge_csv(sections, p / CSV)
            source = p / LABELME
        elif (p / "source_sections_tissue.txt").is_file():
            sections, source = read_sections(p, fmt="magc-pair"), p
        elif magc is not None:
            sections, source = list(magc.sections), magc_path
        else:
            return Loaded([], report)
        pr = report.get("proofread") or {}
        rejected = [
            (r["polygon"], r.get("reason") or "") for r in report.get("rejected_parts") or [] if r.get("polygon")
        ]
        where = (
            None
            if magc is None
            else (list(range(len(sections))) if source == magc_path else _match_magc(magc, sections, magc_path))
        )
        return Loaded(
            sections,
            report,
            list(pr.get("labelled") or []),
            list(pr.get("edited") or []),
            rejected,
            str(source),
            list(pr.get("checked") or []),
            magc if where is not None else None,
            where,
        )
    if p.is_file():
        if p.suffix.lower() == ".magc":
            magc = read_magc(p)
            return Loaded(
                list(magc.sections), {}, source=str(p), magc=magc, magc_sections=list(range(len(magc.sections)))
            )
        return Loaded(read_sections(p), {}, source=str(p))
    if p.exists():
        raise InputError("neither a file nor a folder", p)
    return Loaded([])


#: px a .magc tissue centre may differ from the labelme / MagC pair one of the same section
MATCH_TOLERANCE = 0.5


def _match_magc(magc, sections: list, path: Path) -> list[int] | None:
    """Index into ``sections`` of each section of ``magc`` (detect writes the paired sections in the
    same order into every file), checked by tissue centre; the ``.magc``'s own per-section keys are
    copied over. None (with a warning: its orders are not kept) when they do not match."""
    paired = [k for k, s in enumerate(sections) if s.tissue is not None and s.magnet is not None]
    ok = len(magc.sections) == len(paired) and all(
        m.tissue is not None and np.hypot(*(np.subtract(m.tissue.centre, sections[k].tissue.centre))) <= MATCH_TOLERANCE
        for m, k in zip(magc.sections, paired)
    )
    if not ok:
        log.warning(
            "%s: its %d sections are not the %d paired ones of the folder's other files; its serial "
            "and stage order are not kept",
            path,
            len(magc.sections),
            len(paired),
        )
        return None
    for m, k in zip(magc.sections, paired):
        for key in ("magc_keys", "magc_magnet_keys"):
            if m.extra.get(key):
                sections[k].extra[key] = m.extra[key]
    return paired


def _read_report(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the detection report: {exc}", path) from None
    return data if isinstance(data, dict) else {}


def _merge_csv(sections: list, path: Path) -> None:
    """Part scores and repairs of ``sections.csv`` into ``sections`` (row ``id`` = index)."""
    from sectionseg.export.outputs import parse_repairs

    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != len(sections):
        log.warning("%s: %d rows for %d sections; scores not read", path, len(rows), len(sections))
        return
    for s, row in zip(sections, rows):
        for key in ("tissue_score", "magnet_score"):
            if row.get(key):
                s.extra[key] = float(row[key])
        s.extra.update(parse_repairs(row.get("repairs") or ""))
        scores = [s.extra.get(k) for k in ("tissue_score", "magnet_score") if s.extra.get(k) is not None]
        if scores and s.score is None:
            s.score = min(scores)


def model_from(loaded: Loaded) -> ProofreadModel:
    return ProofreadModel(
        loaded.sections,
        rejected=loaded.rejected,
        labelled=loaded.labelled,
        edited=loaded.edited,
        checked=loaded.checked,
        magc=loaded.magc,
        magc_sections=loaded.magc_sections,
    )


def save_session(
    folder,
    model: ProofreadModel,
    *,
    report: dict | None = None,
    gray=None,
    gray_path=None,
    fluo_path=None,
    image_size=None,
    session_start: str | None = None,
) -> dict[str, Path]:
    """Write ``model`` into ``folder`` as ``detect`` does (one output set), with the proofreading
    record in ``report.json`` and, when sections are labelled, ``labels.labelme.json``. ``report``:
    the detection's report (its MagC dialect, pair scale and landmarks are used again);
    ``gray``: the wafer image for ``overlay.png`` (None: no overlay). Returns the written paths."""
    from sectionseg.export import write_detection_outputs
    from sectionseg.formats import read_landmarks

    report = json.loads(json.dumps(report or {}))  # a copy
    inputs = report.setdefault("inputs", {})
    if gray_path is not None:
        inputs["gray"] = os.fspath(gray_path)
    if fluo_path is not None:
        inputs["fluo"] = os.fspath(fluo_path)
    if image_size is None and gray is not None:
        image_size = (int(gray.shape[1]), int(gray.shape[0]))
    if image_size is not None:
        inputs["width"], inputs["height"] = int(image_size[0]), int(image_size[1])
    paired, lone = model.sections()
    numbers = model.numbers()
    start = session_start or time.strftime("%Y-%m-%dT%H:%M:%S")
    record = dict(report.get("proofread") or {})
    sessions = [s for s in record.get("sessions") or [] if s.get("started") != start]
    layout = model.magc_layout()
    session = {"started": start, "saved": time.strftime("%Y-%m-%dT%H:%M:%S"), "edits": list(model.log)}
    notes = session_notes(layout)
    if notes:
        session["notes"] = notes
    sessions.append(session)
    labelled = sorted(numbers[e.uid] for e in model.entries if e.labelled and e.paired)
    record.update(
        {
            "sessions": sessions,
            "edited": sorted(numbers[e.uid] for e in model.entries if e.edited),
            "checked": sorted(numbers[e.uid] for e in model.entries if e.checked),
            "labelled": labelled,
            "labels_file": "labels.labelme.json" if labelled else None,
        }
    )
    report["proofread"] = record
    pair = report.get("magc_pair") or {}
    landmarks = layout["landmarks"] or None
    lm_path = inputs.get("landmarks")
    if landmarks is None and lm_path and Path(lm_path).is_file():
        landmarks = read_landmarks(lm_path)
    labels = model.labelled_sections() if labelled else None
    return write_detection_outputs(
        folder,
        paired,
        lone,
        overlay_image=gray,
        report=report,
        magc_dialect=layout["dialect"] or report.get("magc_dialect", "magfinder"),
        image_path=gray_path,
        image_size=image_size,
        landmarks=landmarks,
        pair_scale=float(pair.get("scale", 1.0)),
        pair_integers=bool(pair.get("integers", False)),
        labels=labels,
        serial_order=layout["serial"],
        stage_order=layout["stage"],
        magc_entries=layout["entries"],
    )


def session_notes(layout: dict) -> list[str]:
    """What a save did to the ``.magc`` that a person should check (see the module doc)."""
    notes = []
    n = layout.get("appended") or 0
    if n:
        notes.append(f"serial order: {n} section{'s' if n != 1 else ''} appended at the end; check it")
    n = layout.get("dropped_entries") or 0
    if n:
        notes.append(
            f"sections.magc: {n} numbered entr{'ies' if n != 1 else 'y'} (ROIs, ...) not written: "
            f"the section numbers changed"
        )
    return notes


def write_labels(path, model: ProofreadModel, *, gray_path=None, image_size=None) -> Path:
    """Only the labelled sections, as a labelme file for ``finetune --labels``."""
    from sectionseg.formats import image_path_for, write_sections

    sections = model.labelled_sections()
    if not sections:
        raise InputError("no labelled section with both parts")
    relative = None if gray_path is None else image_path_for(gray_path, path)
    write_sections(path, sections, fmt="labelme", image_path=relative, image_size=image_size)
    return Path(path)
