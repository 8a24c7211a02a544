"""Merge the detections of overlapping tiles so that each part is reported once.

Rules, for detections of the same class coming from *different* tiles whose masks overlap (the
intersection covers more than ``link_fraction`` of the smaller mask — a part cut by a tile side
is a subset of the same part seen whole):

1. a detection that touches an inner tile side (``truncated``) is dropped when an overlapping
   detection from another tile does not touch one: that tile sees the part whole;
2. several untruncated duplicates (overlap regions of 2 or 4 tiles) are reduced by mask IoU
   (> ``iou_threshold``): the one farthest from its tile's border is kept (ties: higher score);
3. a part that no tile sees whole (larger than the overlap) is the union of its truncated pieces.

Masks stay crops (mask + origin); comparisons paste two crops into their common bounding box only.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sectionseg.detection.inference import Detection


def mask_overlap(a: Detection, b: Detection) -> int:
    """Number of working-frame pixels where the two masks overlap."""
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    if x1 <= x0 or y1 <= y0:
        return 0
    ma = a.mask[y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0]
    mb = b.mask[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
    return int(np.count_nonzero(ma & mb))


def mask_iou(a: Detection, b: Detection) -> float:
    """IoU of two crop masks in the working frame."""
    inter = mask_overlap(a, b)
    union = a.area + b.area - inter
    return inter / union if union else 0.0


def union_detection(parts: list[Detection]) -> Detection:
    """One detection whose mask is the union of ``parts`` (same class); score = the best score."""
    boxes = np.array([d.box for d in parts])
    x0, y0 = boxes[:, :2].min(axis=0)
    x1, y1 = boxes[:, 2:].max(axis=0)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for d in parts:
        dx0, dy0, dx1, dy1 = d.box
        mask[dy0 - y0 : dy1 - y0, dx0 - x0 : dx1 - x0] |= d.mask
    return Detection(
        parts[0].label,
        max(d.score for d in parts),
        mask,
        (int(x0), int(y0)),
        -1,
        truncated=False,
        border_distance=max(d.border_distance for d in parts),
        sources=sorted({s for d in parts for s in d.sources}),
    )


def _candidate_pairs(dets: list[Detection]) -> list[tuple[int, int]]:
    """Index pairs of detections whose boxes intersect (shapely STRtree on the boxes)."""
    if len(dets) < 2:
        return []
    boxes = shapely.box(*np.array([d.box for d in dets], dtype=np.float64).T)
    tree = shapely.STRtree(boxes)
    left, right = tree.query(boxes, predicate="intersects")
    keep = left < right
    return list(zip(left[keep].tolist(), right[keep].tolist()))


def _reduce_group(group: list[Detection], iou_threshold: float) -> list[Detection]:
    """Apply rules 1-3 to one group of linked same-class detections."""
    whole = [d for d in group if not d.truncated]
    if not whole:
        return [union_detection(group)]
    whole.sort(key=lambda d: (-d.border_distance, -d.score))
    kept: list[Detection] = []
    for d in whole:
        if all(mask_iou(d, k) <= iou_threshold for k in kept):
            kept.append(d)
    # Truncated pieces are dropped, unless no kept detection covers them (a separate part).
    for d in group:
        if d.truncated and all(mask_overlap(d, k) <= 0.5 * d.area for k in kept):
            kept.append(d)
    return kept


def suppress_overlaps(dets: list[Detection], overlap_fraction: float) -> list[Detection]:
    """Mask NMS over all detections of a class: of two detections whose overlap covers more than
    ``overlap_fraction`` of the smaller one, only the higher-scoring one stays (the model's own NMS
    works on boxes, per tile; e.g. a part and a part-plus-neighbour-strip may both come out)."""
    order = sorted(range(len(dets)), key=lambda i: -dets[i].score)
    rank = {i: r for r, i in enumerate(order)}
    dropped = set()
    pairs = sorted(_candidate_pairs(dets), key=lambda p: sorted((rank[p[0]], rank[p[1]])))
    for i, j in pairs:
        a, b = dets[i], dets[j]
        if a.label != b.label or i in dropped or j in dropped:
            continue
        if mask_overlap(a, b) > overlap_fraction * min(a.area, b.area):
            dropped.add(j if rank[i] < rank[j] else i)
    return [d for k, d in enumerate(dets) if k not in dropped]


def merge_detections(
    dets: list[Detection], *, iou_threshold: float = 0.5, link_fraction: float = 0.5, nms_overlap: float | None = None
) -> list[Detection]:
    """Merge the detections of all tiles (working frame) into one detection per part; with
    ``nms_overlap``, finish with :func:`suppress_overlaps`."""
    merged = _merge(dets, iou_threshold, link_fraction)
    return merged if nms_overlap is None else suppress_overlaps(merged, nms_overlap)


def _merge(dets: list[Detection], iou_threshold: float, link_fraction: float) -> list[Detection]:
    links = []
    for i, j in _candidate_pairs(dets):
        a, b = dets[i], dets[j]
        if a.label != b.label or a.tile == b.tile:
            continue
        if mask_overlap(a, b) > link_fraction * min(a.area, b.area):
            links.append((i, j))
    n = len(dets)
    if not links:
        return list(dets)
    rows, cols = zip(*links)
    graph = coo_matrix((np.ones(len(links)), (rows, cols)), shape=(n, n))
    n_groups, group_of = connected_components(graph, directed=False)
    merged: list[Detection] = []
    for g in range(n_groups):
        members = [dets[i] for i in np.flatnonzero(group_of == g)]
        merged += members if len(members) == 1 else _reduce_group(members, iou_threshold)
    return merged
