"""Write the outputs of a wafer detection into one folder, every file atomically.

Every section is first put into the canonical corner order of
:mod:`sectionseg.geometry.orientation` (tissue clockwise on screen, first edge short and pointing
away from the magnet), so all files list the same corners in the same order and agree on each
section's direction (the magnet-to-tissue direction MagFinder and SBEMimage read from the first edge).

- ``source_sections_tissue.txt`` + ``source_sections_mag.txt``: the MagC pair, paired sections
  only, line i = section i (:mod:`sectionseg.formats.magc_pair`); ``pair_scale`` multiplies its
  coordinates and ``pair_integers`` rounds them (as the original full-resolution MagC files);
- ``sections.magc``: the same sections; serial order = section index order unless given; stage order
  = a short path through the tissue centres (:func:`sectionseg.export.ordering.stage_order`) unless
  given; ``landmarks`` (image px) and ``magc_entries`` (kept entries of a read ``.magc``) when given;
- ``sections.labelme.json``: paired sections, then the unpaired parts, each as its own group;
  ``imagePath`` relative to the JSON and the image's true size (to correct them in labelme);
- ``sections.coco.json``: the same parts with their detection ``score`` (loads as COCO results),
  ``file_name`` the image relative to the JSON as for labelme;
- ``sections.csv``: one row per paired section (``paired = 1``), then one per unpaired part
  (``paired = 0``, empty fields for the missing part); columns :data:`CSV_COLUMNS`; centres in px,
  areas in px^2, ``tissue_angle`` / ``magnet_angle`` the part's direction (angle of its first edge,
  degrees counter-clockwise on screen from +x, in (-180, 180]: for a paired section the
  magnet-to-tissue direction, as stored in ``sections.magc``; for a lone part an axis, pointing up);
  per-part scores from ``section.extra["tissue_score"]`` / ``["magnet_score"]`` (else empty);
  ``repairs``: the repairs of detection that made or changed the section (:func:`repairs_text`,
  e.g. ``recovered=magnet;gap_trimmed``; empty for a section as the model found it), the last
  column, so readers of the older columns are unaffected;
- ``overlay.png``: the wafer (downsampled to at most ``overlay_max_side`` px) with every part
  outlined; unpaired parts are drawn too (labelled after the paired ones);
- ``report.json``: the caller's ``report`` dict plus ``counts`` and the output file names; with
  ``rejected`` also ``rejected_parts`` (the lone parts detection dropped: part name, score,
  polygon and ``reason``, from ``Section.extra["rejected"]``: ``dummy-like``, ``implausible
  size``, ``low score``, ``no visible outline`` or ``duplicate``), for people to look at;
- ``labels.labelme.json``, only with ``labels``: hand-labelled sections for ``finetune --labels``
  (``sectionseg proofread`` writes it).

The set is written as one unit (:mod:`sectionseg.io.outset`): a hidden marker
``.sectionseg-set.json`` lists its files; a folder flagged ``.sectionseg-incomplete`` is being
replaced and must not be read.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import cv2
import numpy as np

from sectionseg.export.ordering import stage_order as short_stage_path
from sectionseg.formats import image_path_for, write_sections
from sectionseg.formats.magc_pair import MAGNET_NAME, TISSUE_NAME
from sectionseg.geometry.orientation import canonical_sections, part_direction
from sectionseg.geometry.section import Section
from sectionseg.io.atomic import atomic_path, write_text
from sectionseg.io.jsontext import dumps as strict_json
from sectionseg.io.outset import output_set
from sectionseg.visualize import draw_overlay

#: file of each output kind, in the order they are listed
OUTPUT_NAMES = {
    "tissue": TISSUE_NAME,
    "magnet": MAGNET_NAME,
    "magc": "sections.magc",
    "labelme": "sections.labelme.json",
    "coco": "sections.coco.json",
    "csv": "sections.csv",
    "overlay": "overlay.png",
    "report": "report.json",
}
CSV_COLUMNS = (
    "id",
    "tissue_x",
    "tissue_y",
    "tissue_angle",
    "tissue_area",
    "magnet_x",
    "magnet_y",
    "magnet_angle",
    "magnet_area",
    "tissue_score",
    "magnet_score",
    "paired",
    "repairs",
)
#: keys of ``Section.extra`` naming a repair of detection, in the order written to ``repairs``
REPAIR_KEYS = (
    "rebuilt",
    "recovered",
    "regrown",
    "gap_trimmed",
    "strip_trimmed",
    "split_from_one_part",
    "swapped_by_consensus",
)
LABELS_NAME = "labels.labelme.json"
OVERLAY_MAX_SIDE = 3000


def _num(value, digits: int = 3) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def _csv_row(index: int, section: Section, paired: bool) -> list[str]:
    row = [str(index)]
    for name in ("tissue", "magnet"):
        part = getattr(section, name)
        if part is None:
            row += ["", "", "", ""]
        else:
            row += [_num(part.centre[0]), _num(part.centre[1]), _num(part_direction(part)), _num(part.area, 1)]
    row += [_num(section.extra.get("tissue_score"), 4), _num(section.extra.get("magnet_score"), 4)]
    return row + ["1" if paired else "0", repairs_text(section.extra)]


def repairs_text(extra: dict) -> str:
    """The repairs named in a section's ``extra`` as ``key`` or ``key=value`` joined by ``;`` (a value
    of True is left out; spaces become ``_``)."""
    items = []
    for key in REPAIR_KEYS:
        value = extra.get(key)
        if value is None or value is False:
            continue
        items.append(key if value is True else f"{key}={str(value).replace(' ', '_')}")
    return ";".join(items)


def parse_repairs(text: str) -> dict:
    """Inverse of :func:`repairs_text`: ``{key: value or True}``."""
    out: dict = {}
    for item in (text or "").split(";"):
        key, sep, value = item.strip().partition("=")
        if key:
            out[key] = value.replace("_", " ") if sep else True
    return out


def sections_csv(sections: list[Section], unpaired: list[Section]) -> str:
    """CSV text: header :data:`CSV_COLUMNS`, paired sections (ids 0..n-1), then unpaired parts.

    Sections must be in the canonical corner order (the angles are their parts' first edges).
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for i, s in enumerate(sections):
        writer.writerow(_csv_row(i, s, True))
    for k, s in enumerate(unpaired):
        writer.writerow(_csv_row(len(sections) + k, s, False))
    return buf.getvalue()


def _write_overlay(
    path: Path, image: np.ndarray, sections: list[Section], unpaired: list[Section], max_side: int
) -> None:
    picture = draw_overlay(image, list(sections) + list(unpaired), max_side=max_side)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")


def _counts(sections: list[Section], unpaired: list[Section]) -> dict:
    return {
        "sections": len(sections),
        "unpaired_tissue": sum(s.magnet is None for s in unpaired),
        "unpaired_magnet": sum(s.tissue is None for s in unpaired),
    }


def write_detection_outputs(
    out_dir: str | os.PathLike,
    sections: list[Section],
    unpaired: list[Section],
    *,
    overlay_image: np.ndarray | None,
    report: dict,
    magc_dialect: str = "magfinder",
    serial_order=None,
    overlay_max_side: int = OVERLAY_MAX_SIDE,
    image_path=None,
    image_size=None,
    landmarks=None,
    pair_scale: float = 1.0,
    pair_integers: bool = False,
    rejected=(),
    labels=None,
    stage_order=None,
    magc_entries=(),
    extra_files=None,
) -> dict[str, Path]:
    """Write the detection outputs (see the module doc) into ``out_dir`` (created if needed) as one
    set: the files are written into a staging folder beside ``out_dir`` and swapped in at the end
    (:func:`sectionseg.io.outset.output_set`), so ``out_dir`` holds either the previous complete set
    or the new one, whatever interrupts the writing.

    ``sections``: paired sections (tissue and magnet) in wafer px, in the order to number them;
    ``unpaired``: sections with one part only; ``overlay_image``: the wafer image (2-D gray or RGB,
    any size, downsampled here) or None for no overlay; ``report``: JSON-serialisable dict (written
    as strict JSON: non-finite numbers become null);
    ``serial_order``: section indices in cutting order for the ``.magc`` file (default identity);
    ``stage_order``: section indices in stage order (default: a short path, see the module doc);
    ``magc_entries``: :class:`~sectionseg.formats.MagcEntry` kept from a read ``.magc``;
    ``image_path``: the wafer image file (as given on the command line; the JSON files refer to it
    relative to themselves); ``image_size``: ``(width, height)`` px, default the overlay image's;
    ``landmarks``: ``(x, y)`` image px for ``sections.magc``; ``pair_scale``, ``pair_integers``: for
    the MagC pair only; ``rejected``: lone parts detection dropped (into ``report.json``);
    ``labels``: labelled sections, written to ``labels.labelme.json`` when not None;
    ``extra_files(stage)``: writes more entries into the set's staging folder ``stage`` and returns
    their names (e.g. ``["order"]``), listed under ``outputs`` in the report. Returns the written
    paths by kind: ``tissue``, ``magnet``, ``magc``, ``labelme``, ``coco``, ``csv``, ``overlay``,
    ``report`` (and ``labels``, and the extra entries).
    """
    out = Path(out_dir)
    sections, unpaired = canonical_sections(sections), canonical_sections(unpaired)
    bad = [i for i, s in enumerate(sections) if s.tissue is None or s.magnet is None]
    if bad:
        raise ValueError(f"sections {bad[:5]} lack a part; pass them as unpaired")
    if image_size is None and overlay_image is not None:
        image_size = (int(overlay_image.shape[1]), int(overlay_image.shape[0]))
    names = dict(OUTPUT_NAMES)
    if overlay_image is None:
        del names["overlay"]
    if labels is not None:
        names["labels"] = LABELS_NAME
    with output_set(out, "detect") as stage:
        paths = {k: stage / name for k, name in names.items()}
        write_sections(stage, sections, fmt="magc-pair", pair_scale=pair_scale, pair_integers=pair_integers)
        centres = np.array([s.tissue.centre for s in sections]).reshape(-1, 2)
        write_sections(
            paths["magc"],
            sections,
            fmt="magc",
            magc_dialect=magc_dialect,
            serial_order=serial_order,
            stage_order=short_stage_path(centres) if stage_order is None else [int(i) for i in stage_order],
            landmarks=landmarks,
            magc_entries=magc_entries,
        )
        for kind in ("labelme", "coco"):  # the image relative to the file's final place
            relative = None if image_path is None else image_path_for(image_path, out / names[kind])
            write_sections(paths[kind], sections + unpaired, fmt=kind, image_path=relative, image_size=image_size)
        write_text(paths["csv"], sections_csv(sections, unpaired))
        if labels is not None:
            relative = None if image_path is None else image_path_for(image_path, out / names["labels"])
            write_sections(paths["labels"], list(labels), fmt="labelme", image_path=relative, image_size=image_size)
        if overlay_image is not None:
            _write_overlay(paths["overlay"], overlay_image, sections, unpaired, overlay_max_side)
        full = dict(report)
        full["counts"] = {**full.get("counts", {}), **_counts(sections, unpaired)}
        full["outputs"] = dict(names)
        if rejected:
            full["rejected_parts"] = [_rejected_record(s) for s in rejected]
        if extra_files is not None:
            for name in extra_files(stage):
                full["outputs"][name] = name + ("/" if (stage / name).is_dir() else "")
                paths[name] = stage / name
                names[name] = name
        write_text(paths["report"], strict_json(full, indent=2, default=_json_default) + "\n")
    return {k: out / name for k, name in names.items()}


def _rejected_record(section: Section) -> dict:
    name, part = next(iter((n, p) for n, p in section.parts().items() if n != "dummy"))
    return {
        "part": name,
        "score": section.score,
        "polygon": part.polygon.tolist(),
        "reason": section.extra.get("rejected"),
    }


def _json_default(value):
    """numpy scalars/arrays and paths in the report become plain JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
