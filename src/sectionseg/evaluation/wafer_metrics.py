"""Compare the sections found on a wafer with the ground truth (polygons, no masks).

Per part class (tissue, magnet): found and true polygons are matched one-to-one by the Hungarian
assignment on polygon IoU (shapely), pairs kept at IoU >= ``iou_threshold``. Reported: precision,
recall, median/p95 centre error (px, polygon centroids) and angle error (degrees modulo 180, long
axis), median IoU. Pairing: among the true sections whose tissue and magnet were both matched, the
fraction for which the found tissue and magnet belong to the *same* found section.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.optimize import linear_sum_assignment

from sectionseg.geometry import Section
from sectionseg.geometry.polygons import angle_difference, polygon_iou

PART_CLASSES = ("tissue", "magnet")


def _polygons(parts) -> list:
    return [shapely.make_valid(shapely.Polygon(p.polygon)) for p in parts]


def match_polygons(truth: list, found: list, iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(truth_index, found_index, iou)`` of two lists of :class:`Part` by
    polygon IoU (Hungarian assignment), IoU >= ``iou_threshold``."""
    if not truth or not found:
        return []
    tp, fp = _polygons(truth), _polygons(found)
    iou = np.zeros((len(tp), len(fp)))
    tree = shapely.STRtree(fp)
    ti, fi = tree.query(tp, predicate="intersects")  # only overlapping pairs have IoU > 0
    for i, j in zip(ti.tolist(), fi.tolist()):
        iou[i, j] = polygon_iou(tp[i], fp[j])
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c), float(iou[r, c])) for r, c in zip(rows, cols) if iou[r, c] >= iou_threshold]


def _stats(values, name: str) -> dict:
    if not values:
        return {f"{name}_median": None, f"{name}_p95": None}
    arr = np.asarray(values, dtype=np.float64)
    return {f"{name}_median": float(np.median(arr)), f"{name}_p95": float(np.percentile(arr, 95))}


def compare_sections(truth: list[Section], found: list[Section], iou_threshold: float = 0.5) -> dict:
    """Detection quality of ``found`` against ``truth`` (same pixel frame).

    ``found`` may contain unpaired sections (one part); dummies are ignored on both sides.
    Returns ``{"tissue": {...}, "magnet": {...}, "pairing_accuracy", "sections_correct",
    "section_recall", "section_precision", "n_truth", "n_found"}`` (``sections_correct``: true
    sections whose two parts are found, matched and paired together; ``section_recall`` = that / true
    sections; ``section_precision`` = that / found sections with both parts) where each part entry has
    ``n_truth, n_found, n_matched, precision,
    recall, centre_error_median/p95 (px), angle_error_median/p95 (deg), iou_median``.
    """
    result: dict = {"n_truth": len(truth), "n_found": len(found)}
    owner: dict[str, dict[int, int]] = {}  # class -> truth section index -> found section index
    for name in PART_CLASSES:
        t_idx = [i for i, s in enumerate(truth) if getattr(s, name) is not None]
        f_idx = [i for i, s in enumerate(found) if getattr(s, name) is not None]
        t_parts = [getattr(truth[i], name) for i in t_idx]
        f_parts = [getattr(found[i], name) for i in f_idx]
        matches = match_polygons(t_parts, f_parts, iou_threshold)
        centre = [float(np.hypot(*np.subtract(t_parts[a].centre, f_parts[b].centre))) for a, b, _ in matches]
        angle = [angle_difference(t_parts[a].angle, f_parts[b].angle) for a, b, _ in matches]
        n_m = len(matches)
        result[name] = {
            "n_truth": len(t_parts),
            "n_found": len(f_parts),
            "n_matched": n_m,
            "precision": n_m / len(f_parts) if f_parts else (1.0 if not t_parts else 0.0),
            "recall": n_m / len(t_parts) if t_parts else 1.0,
            **_stats(centre, "centre_error"),
            **_stats(angle, "angle_error"),
            "iou_median": float(np.median([m[2] for m in matches])) if matches else None,
        }
        owner[name] = {t_idx[a]: f_idx[b] for a, b, _ in matches}
    both = [i for i in owner["tissue"] if i in owner["magnet"]]
    correct = sum(owner["tissue"][i] == owner["magnet"][i] for i in both)
    result["pairing_accuracy"] = correct / len(both) if both else None
    result["sections_correct"] = correct
    result["section_recall"] = correct / len(truth) if truth else 1.0
    n_paired = sum(s.tissue is not None and s.magnet is not None for s in found)
    result["section_precision"] = correct / n_paired if n_paired else (1.0 if not truth else 0.0)
    result["section_f1"] = _f1(result["section_precision"], result["section_recall"])
    swapped = _swapped(truth, found, iou_threshold)
    result["sections_swapped"] = swapped
    result["swapped_fraction"] = swapped / (correct + swapped) if correct + swapped else 0.0
    any_p = (correct + swapped) / n_paired if n_paired else (1.0 if not truth else 0.0)
    any_r = (correct + swapped) / len(truth) if truth else 1.0
    result["section_f1_any_order"] = _f1(any_p, any_r)
    return result


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _swapped(truth: list[Section], found: list[Section], iou_threshold: float) -> int:
    """True sections found with tissue and magnet exchanged: one found section whose tissue matches
    the true magnet and whose magnet matches the true tissue."""
    owner = {}
    for t_name, f_name in (("tissue", "magnet"), ("magnet", "tissue")):
        t_idx = [i for i, s in enumerate(truth) if getattr(s, t_name) is not None]
        f_idx = [i for i, s in enumerate(found) if getattr(s, f_name) is not None]
        matches = match_polygons(
            [getattr(truth[i], t_name) for i in t_idx], [getattr(found[i], f_name) for i in f_idx], iou_threshold
        )
        owner[t_name] = {t_idx[a]: f_idx[b] for a, b, _ in matches}
    return sum(owner["magnet"].get(i) == j for i, j in owner["tissue"].items())


def format_comparison(metrics: dict, seconds: float | None = None) -> str:
    """A small plain-text table of :func:`compare_sections` results."""

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = [
        f"{'part':8} {'found':>6} {'truth':>6} {'precision':>9} {'recall':>7} "
        f"{'centre err px (med/p95)':>24} {'angle err deg (med/p95)':>24}"
    ]
    for name in PART_CLASSES:
        m = metrics[name]
        lines.append(
            f"{name:8} {m['n_found']:>6} {m['n_truth']:>6} {f(m['precision'], '.3f'):>9} "
            f"{f(m['recall'], '.3f'):>7} "
            f"{f(m['centre_error_median'], '.2f') + ' / ' + f(m['centre_error_p95'], '.2f'):>24} "
            f"{f(m['angle_error_median'], '.2f') + ' / ' + f(m['angle_error_p95'], '.2f'):>24}"
        )
    lines.append(
        f"pairing accuracy: {f(metrics['pairing_accuracy'], '.3f')}; sections found and correctly "
        f"paired: {metrics['sections_correct']} / {metrics['n_truth']} (recall "
        f"{f(metrics['section_recall'], '.3f')}, precision {f(metrics['section_precision'], '.3f')}); "
        f"tissue/magnet swapped: {metrics['sections_swapped']} "
        f"({100 * metrics['swapped_fraction']:.1f} %)"
    )
    if seconds is not None:
        lines.append(f"time: {seconds:.1f} s")
    return "\n".join(lines)


def held_out(
    truth: list[Section], found: list[Section], labelled: list[Section], iou_threshold: float = 0.5
) -> tuple[list[Section], list[Section]]:
    """``truth`` and ``found`` without the ``labelled`` sections (those used for adaptation), so that a
    comparison measures only sections the model was not shown. A section counts as labelled when its
    tissue or its magnet matches a labelled one at ``iou_threshold``."""

    def rest(sections: list[Section]) -> list[Section]:
        seen: set[int] = set()
        for name in PART_CLASSES:
            idx = [i for i, s in enumerate(sections) if getattr(s, name) is not None]
            lab = [getattr(s, name) for s in labelled if getattr(s, name) is not None]
            parts = [getattr(sections[i], name) for i in idx]
            seen.update(idx[a] for a, _, _ in match_polygons(parts, lab, iou_threshold))
        return [s for i, s in enumerate(sections) if i not in seen]

    return rest(truth), rest(found)
