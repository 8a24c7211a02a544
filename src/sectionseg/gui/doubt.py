"""How much a section needs a look, and why (pure Python + numpy).

From what ``detect`` records per section (``sections.csv``: part scores, ``paired``, ``repairs``;
the same as :class:`~sectionseg.geometry.Section` ``score`` / ``extra``) and the wafer's own sizes:

- an unpaired part (no tissue or no magnet): :data:`UNPAIRED`;
- a low score (below :data:`LOW_SCORE`): 1 + how far below;
- a part rebuilt, regrown, recovered from a low-score detection or found on the image by a repair,
  or a section exchanged by the tissue consensus: :data:`REPAIRED` each;
- an unusual size: a part's area outside [1 / :data:`SIZE_FACTOR`, :data:`SIZE_FACTOR`] x the
  median of its kind over the paired sections: :data:`UNUSUAL_SIZE`.

A section edited by hand has been looked at: its score and repair reasons no longer count (an
unpaired part or an odd size still does). Doubt 0 is fine, up to :data:`LOOK` worth a look, more
is likely wrong; :func:`doubt_colour` gives the edge colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOW_SCORE = 0.85
SIZE_FACTOR = 1.5
UNPAIRED = 3.0
REPAIRED = 1.0
UNUSUAL_SIZE = 1.0
LOOK = 2.0

#: words for the repair keys of ``Section.extra`` (``sectionseg.export.outputs.REPAIR_KEYS``)
REPAIR_WORDS = {
    "rebuilt": "rebuilt beside its partner",
    "recovered": "recovered from a weak detection",
    "regrown": "regrown",
    "gap_trimmed": "magnet trimmed to its tissue",
    "strip_trimmed": "tissue cut back from a strip merged into it",
    "split_from_one_part": "split from one part (whole section seen as one)",
    "swapped_by_consensus": "tissue/magnet exchanged by the wafer consensus",
}

#: RGBA edge colours: fine, worth a look, likely wrong
COLOURS = {"ok": (0.2, 0.85, 0.3, 1.0), "look": (1.0, 0.8, 0.1, 1.0), "bad": (1.0, 0.15, 0.15, 1.0)}


@dataclass
class Doubt:
    value: float
    reasons: list[str]

    @property
    def level(self) -> str:
        return "ok" if self.value <= 0 else ("look" if self.value < LOOK else "bad")


def part_medians(sections) -> dict[str, float]:
    """Median area of tissue and magnet parts over the paired sections (objects with ``tissue`` and
    ``magnet`` polygons ``(N, 2)`` or None)."""
    out = {}
    for name in ("tissue", "magnet"):
        areas = [_area(getattr(s, name)) for s in sections if s.tissue is not None and s.magnet is not None]
        out[name] = float(np.median(areas)) if areas else float("nan")
    return out


def _area(points) -> float:
    p = np.asarray(points, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def section_doubt(tissue, magnet, *, score=None, extra=None, medians=None, edited: bool = False) -> Doubt:
    """Doubt of one section: ``tissue`` / ``magnet`` ``(N, 2)`` x, y or None; ``score`` (the lower part
    score); ``extra`` (``tissue_score``, ``magnet_score``, repair keys); ``medians`` from
    :func:`part_medians`; ``edited``: changed by hand (score and repairs no longer count)."""
    extra = extra or {}
    value, reasons = 0.0, []
    if tissue is None or magnet is None:
        value += UNPAIRED
        reasons.append("no magnet" if magnet is None else "no tissue")
    if not edited:
        scores = [s for s in (extra.get("tissue_score"), extra.get("magnet_score"), score) if s is not None]
        low = min(scores) if scores else None
        if low is not None and low < LOW_SCORE:
            value += 1.0 + (LOW_SCORE - float(low)) * 4.0
            reasons.append(f"low score {float(low):.2f}")
        for key, words in REPAIR_WORDS.items():
            v = extra.get(key)
            if v is None or v is False:
                continue
            value += REPAIRED
            if isinstance(v, str) and v.endswith("from image"):
                reasons.append(f"{v[: -len('from image')].strip()} found on the image")
            elif isinstance(v, str) and v.endswith("alone"):  # gray_look: "tissue from the gray image alone"
                reasons.append(v.replace(" from ", " found on ", 1))
            else:
                reasons.append(words if v is True else f"{v} {words}")
    for name, part in (("tissue", tissue), ("magnet", magnet)):
        median = (medians or {}).get(name)
        if part is None or median is None or not np.isfinite(median) or median <= 0:
            continue
        ratio = _area(part) / median
        if ratio > SIZE_FACTOR or ratio < 1.0 / SIZE_FACTOR:
            value += UNUSUAL_SIZE
            reasons.append(f"{name} {ratio:.1f}x the usual area")
    return Doubt(value, reasons)


def doubt_colour(doubt: Doubt) -> tuple[float, float, float, float]:
    return COLOURS[doubt.level]
