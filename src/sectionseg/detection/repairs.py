"""After the model: pairing tissue and magnet parts, and the repairs that use the pairing and the
image as extra evidence (touching parts rebuilt beside their partners, low-score partners of lone
parts, partners found on the image, small parts regrown) and the filters of implausible parts
(duplicates, tiny parts, dummies, lone parts with no visible outline). Every threshold comes from a
:class:`~sectionseg.detection.settings.RepairSettings` (``settings``); level thresholds follow the
wafer's own :class:`~sectionseg.detection.evidence.WaferLevels` (``levels``) where it was measured.

One frame: the parts (:class:`~sectionseg.detection.refine.Candidate` before the pairing,
:class:`~sectionseg.geometry.Section` after it) and the image (``source``, a
:class:`~sectionseg.detection.tiling.WaferSource`) are in the fit frame, where sections are about
:data:`~sectionseg.geometry.scale.REFERENCE_SECTION_SIZE` px long; no step converts a part to
another frame (:func:`~sectionseg.detection.pipeline.detect_wafer` brings its result to source px
once, at the end). ``source.scale`` (fit px per source px) serves the pairing only: its px floors
(3 px on the gap limit, 1 px on the cost's length unit) stay *source* px, as they were when the
parts were kept in source px (``pair_parts(..., pixel=source.scale)``); they bind only on parts
under ~30 source px long.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from functools import partial

import numpy as np
import shapely

from sectionseg.detection.evidence import WaferLevels, mean_level, quarters, side_levels, sides_shown
from sectionseg.detection.inference import Detection
from sectionseg.detection.refine import Candidate, crop_around, fit_part, mask_points, refined_on_image, short_side
from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import WaferSource
from sectionseg.geometry import Part, Quad, Section, order_corners
from sectionseg.geometry.beside import strip_beside
from sectionseg.geometry.fitting import refine_side
from sectionseg.geometry.pairing import DEFAULT_GAP_SHARE, edge_gap, pair_parts


def rebuild_touching(
    parts: list[Candidate],
    partners: list[Candidate],
    source: WaferSource,
    kind: str = "tissue",
    refine: bool = True,
    settings: RepairSettings = RepairSettings(),
) -> tuple[list[Candidate], int]:
    """Replace suspect fits of one kind by strips beside the partners left without a part of that kind.

    ``parts``: the candidates of one kind (``kind``: "tissue" or "magnet"); ``partners``: those of the
    other kind; all in fit px, the frame of ``source``. Suspects (fit IoU below ``settings.suspect_fit_iou``, area above
    ``settings.suspect_area_factor`` x the median) are usually two touching parts seen as one region;
    every partner that the other parts do not pair with gets a part rebuilt from the suspects' mask
    pixels in front of its long side (:func:`strip_beside`), refined on the image. Returns
    ``(candidates, number rebuilt)``: the good ones, the rebuilt ones (without a detection) and the
    suspects that gave no rebuilt part, as they were.
    """
    if len(parts) < 5:
        return list(parts), 0
    median_area = float(np.median([c.part.area for c in parts]))
    # (a part without a detection, made by a repair, has no mask to rebuild from: never a suspect)
    is_suspect = [
        c.detection is not None
        and (
            c.fit_iou is not None
            and c.fit_iou < settings.suspect_fit_iou
            or c.part.area > settings.suspect_area_factor * median_area
        )
        for c in parts
    ]
    good = [c for c, bad in zip(parts, is_suspect) if not bad]
    suspects = [c for c, bad in zip(parts, is_suspect) if bad]
    if not suspects or len(good) < 3:
        return list(parts), 0
    width = float(np.median([short_side(c.part) for c in good]))
    own, other = [c.part for c in good], [c.part for c in partners]
    if kind == "tissue":
        _, _, lone = pair_parts(own, other, pixel=source.scale)  # magnets without a tissue
    else:
        _, lone, _ = pair_parts(other, own, pixel=source.scale)  # tissues without a magnet
    dets = [c.detection for c in suspects if c.detection is not None]
    points = [mask_points(det) for det in dets]
    boxes = np.array([det.box for det in dets], dtype=np.float64)
    used: set[int] = set()
    rebuilt: list[Candidate] = []
    for j in lone:
        anchor = partners[j].part.polygon
        lo, hi = anchor.min(axis=0) - 1.5 * width, anchor.max(axis=0) + 1.5 * width
        near = np.flatnonzero(
            (boxes[:, 0] < hi[0]) & (boxes[:, 2] > lo[0]) & (boxes[:, 1] < hi[1]) & (boxes[:, 3] > lo[1])
        )
        if near.size == 0:
            continue
        quad = strip_beside(anchor, np.concatenate([points[k] for k in near]), width)
        if quad is None:
            continue
        if refine:
            quad = refined_on_image(source, quad)
        used.update(int(k) for k in near)
        rebuilt.append(Candidate(Part(quad), max(suspects[k].score for k in near)))
    kept = [c for k, c in enumerate(suspects) if k not in used]
    return good + rebuilt + kept, len(rebuilt)


def recover_partners(
    unpaired: list[Section], reserve: list[Detection], source: WaferSource, refine: bool = True
) -> tuple[list[Section], list[Section]]:
    """Pair lone confident parts with reserve (low-score) detections of the other class.

    ``unpaired``: one-part sections; ``reserve``: merged detections below the score threshold; both
    in fit px, the frame of ``source``. Returns ``(new sections, still unpaired)``; reserve parts
    that pair with nothing are dropped.
    """
    lone_t = [s for s in unpaired if s.tissue is not None]
    lone_m = [s for s in unpaired if s.magnet is not None]
    if not reserve or not unpaired:
        return [], unpaired
    centres = np.array([s.parts()["tissue" if s.tissue is not None else "magnet"].centre for s in unpaired])
    reach = 2.0 * max(float(np.sqrt(s.parts()["tissue" if s.tissue is not None else "magnet"].area)) for s in unpaired)
    fitted: dict[int, list[Candidate]] = {1: [], 2: []}
    for det in reserve:
        wanted = 2 if det.label == 2 else 1
        if not (lone_t if wanted == 2 else lone_m):
            continue
        x0, y0, x1, y1 = det.box
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        if np.min(np.hypot(*(centres - centre).T)) > reach:
            continue
        quad = fit_part(det, source, refine=refine)
        if quad is not None:
            fitted[det.label].append(Candidate(Part(quad), det.score, det))
    new: list[Section] = []
    used_t: set[int] = set()
    used_m: set[int] = set()
    pairs, _, _ = pair_parts([_only(s.tissue) for s in lone_t], [c.part for c in fitted[2]], pixel=source.scale)
    for i, j in pairs:
        part, score = fitted[2][j].part, fitted[2][j].score
        new.append(
            Section(
                lone_t[i].tissue,
                part,
                score=min(_scored(lone_t[i]), score),
                extra={**lone_t[i].extra, "magnet_score": score, "recovered": "magnet"},
            )
        )
        used_t.add(i)
    pairs, _, _ = pair_parts([c.part for c in fitted[1]], [_only(s.magnet) for s in lone_m], pixel=source.scale)
    for i, j in pairs:
        part, score = fitted[1][i].part, fitted[1][i].score
        new.append(
            Section(
                part,
                lone_m[j].magnet,
                score=min(_scored(lone_m[j]), score),
                extra={**lone_m[j].extra, "tissue_score": score, "recovered": "tissue"},
            )
        )
        used_m.add(j)
    rest = [s for k, s in enumerate(lone_t) if k not in used_t] + [s for k, s in enumerate(lone_m) if k not in used_m]
    return new, rest


def _sides_beside(quad: np.ndarray, width: float) -> list[np.ndarray]:
    """The two strips ``width`` px wide beside the long sides of a quad (outside it; fit px)."""
    return [np.array([p0, p1, p1 + width * n, p0 + width * n]) for p0, p1, n, _ in Quad.clockwise(quad).long_sides()]


def partner_from_image(
    part: Part,
    kind: str,
    source: WaferSource,
    width: float,
    refine: bool = True,
    levels: WaferLevels | None = None,
    settings: RepairSettings = RepairSettings(),
) -> Part | None:
    """The missing partner of a lone part, found on the image beside one of its long sides.

    ``kind``: what is missing (``"tissue"`` or ``"magnet"``); ``width``: the wafer's typical short side
    of that kind (fit px, as ``part`` and ``source``). Where it is looked for: a magnet in the
    fluorescence (the brighter strip: the resin's beads) when there is one; otherwise in gray, after
    the wafer's measured levels (``levels``: either part may be the darker one): the strip nearest the
    wafer's level of that kind, on the same side of the known part, differing from it by
    ``settings.partner_share`` of the tissue/magnet contrast and nearer that kind's level than the
    bare wafer's. Without ``levels`` a tissue is the darker strip (``settings.partner_tissue_ratio``).
    The strip is refined on the gray image. None when neither side clearly shows the partner all
    along it; the part found is in fit px.
    """
    quad = part.polygon
    rule = _partner_rule(kind, source, levels, settings)
    if rule is None:
        return None
    channel, rank, accepts = rule
    own = mean_level(source, quad, channel)
    measured = [(mean_level(source, strip, channel), strip) for strip in _sides_beside(quad, width)]
    beside = [(level, strip) for level, strip in measured if level is not None]
    if own is None or not beside:
        return None
    level, strip = max(beside, key=lambda t: rank(t[0]))
    # along the whole strip, not on average (a strip half on a neighbour's part is no partner)
    for quarter in [strip] + quarters(strip):
        quarter_level = mean_level(source, quarter, channel)
        if quarter_level is None or not accepts(quarter_level, own):
            return None
    if refine:
        strip = refined_on_image(source, strip)
    return Part(order_corners(strip))


def _only(part: Part | None) -> Part:
    """The part a lone section of that kind has (its kind was chosen by having it)."""
    assert part is not None
    return part


def _scored(s: Section) -> float:
    """The score of a detected section (detections always carry one)."""
    assert s.score is not None
    return s.score


#: how a missing part shows beside its partner: ``(channel, rank(level), accepts(level, own))``
PartnerRule = tuple[str, Callable[[float], float], Callable[[float, float], bool]]


def _partner_rule(
    kind: str, source: WaferSource, levels: WaferLevels | None, settings: RepairSettings
) -> PartnerRule | None:
    """``(channel, rank(level), accepts(level, own))``: how a missing ``kind`` part shows beside its
    partner: the channel, the preference between the two side strips, and the test of one strip's
    level against the partner's own level; None when this wafer gives no way to see it."""
    if kind == "magnet" and source.fluo is not None:
        return "fluo", lambda level: level, lambda level, own: level >= own + settings.partner_fluo_levels
    if levels is not None:
        expected = levels.magnet if kind == "magnet" else levels.tissue
        known = levels.tissue if kind == "magnet" else levels.magnet
        gap = expected - known
        if abs(gap) < 3.0:
            return None  # the two halves look alike in gray on this wafer
        need = max(3.0, settings.partner_share * abs(gap))
        sign = 1.0 if gap > 0 else -1.0

        def accepts(level: float, own: float) -> bool:
            return sign * (level - own) >= need and abs(level - expected) < abs(level - levels.background)

        return "gray", lambda level: -abs(level - expected), accepts
    if kind == "tissue":
        return "gray", lambda level: -level, lambda level, own: level <= settings.partner_tissue_ratio * own
    return None


def _overlaps_known(
    poly: shapely.Polygon,
    shapes: list[shapely.Polygon],
    tree: shapely.STRtree,
    max_overlap: float,
    skip: Container[int] = (),
) -> bool:
    """True when ``poly`` (a part found on the image) covers more than ``max_overlap`` of its area
    with one of ``shapes`` (known parts, indexed by ``tree``) other than those in ``skip``."""
    return any(poly.intersection(shapes[i]).area > max_overlap * poly.area for i in tree.query(poly) if i not in skip)


def complete_from_image(
    sections: list[Section],
    unpaired: list[Section],
    source: WaferSource,
    refine: bool = True,
    known: list[Section] | None = None,
    levels: WaferLevels | None = None,
    settings: RepairSettings = RepairSettings(),
) -> tuple[list[Section], list[Section]]:
    """Give lone parts their partner found on the image (:func:`partner_from_image`), unless the
    strip overlaps a known part (of either kind; ``known``: default all of ``sections`` and
    ``unpaired``) by more than ``settings.partner_max_overlap`` of its area. Sections and ``source``
    in fit px. Returns ``(new sections, still unpaired)``."""
    new, rest = [], []
    known = sections + unpaired if known is None else known
    for kind, have in (("tissue", "magnet"), ("magnet", "tissue")):
        found = [getattr(s, kind) for s in known if getattr(s, kind) is not None]
        lone = [s for s in unpaired if getattr(s, have) is not None and getattr(s, kind) is None]
        if len(found) < 3:
            rest += lone
            continue
        width = float(np.median([short_side(p) for p in found]))
        # every part known (the lone part itself only touches the strip)
        shapes = [shapely.Polygon(p.polygon) for s in known for p in (s.tissue, s.magnet) if p is not None]
        tree = shapely.STRtree(shapes)
        for s in lone:
            part = partner_from_image(getattr(s, have), kind, source, width, refine, levels, settings)
            if part is None or _overlaps_known(
                shapely.Polygon(part.polygon), shapes, tree, settings.partner_max_overlap
            ):
                rest.append(s)
                continue
            new.append(
                Section(
                    **{have: getattr(s, have), kind: part},
                    score=s.score,
                    extra={**s.extra, "recovered": f"{kind} from image"},
                )
            )
    return new, rest


def drop_duplicates(sections: list[Section], unpaired: list[Section], overlap: float = 0.5) -> list[Section]:
    """Lone parts that mostly overlap a paired part of the same kind (a duplicate the merge missed)
    are dropped; returns the unpaired parts that remain."""
    keep = []
    for kind in ("tissue", "magnet"):
        shapes = [shapely.Polygon(getattr(s, kind).polygon) for s in sections]
        tree = shapely.STRtree(shapes) if shapes else None
        for s in unpaired:
            part = getattr(s, kind)
            if part is None:
                continue
            poly = shapely.Polygon(part.polygon)
            hits = [] if tree is None else tree.query(poly)
            if not any(poly.intersection(shapes[i]).area > overlap * min(poly.area, shapes[i].area) for i in hits):
                keep.append(s)
    return keep


def pair_sections(
    tissues: list[Candidate],
    magnets: list[Candidate],
    source: WaferSource,
    settings: RepairSettings = RepairSettings(),
) -> tuple[list[Section], list[Section]]:
    """Pair tissue and magnet candidates (fit px, the frame of ``source``;
    :func:`sectionseg.geometry.pairing.pair_parts`, its px floors in source px; step ``pair_depths``:
    with at least ``settings.min_levels_sections`` parts of each kind, a part's depth far from its
    kind's median costs, in units of ``settings.pair_depth_unit`` of it; step ``pair_leftovers``: the
    parts left unpaired are paired among themselves again with the gaps the first pairs show,
    :func:`_leftover_gap`):
    ``(paired sections, unpaired sections)`` with scores (fit px); a part a repair made (no
    detection) is named in ``extra["rebuilt"]``."""
    depths = None
    if min(len(tissues), len(magnets)) >= settings.min_levels_sections and settings.runs("pair_depths"):
        depths = (_median_depth(tissues), _median_depth(magnets))
    how = partial(pair_parts, pixel=source.scale, depths=depths, depth_unit=settings.pair_depth_unit)
    pairs, lone_t, lone_m = how([c.part for c in tissues], [c.part for c in magnets])
    reach = _leftover_gap(pairs, tissues, magnets, settings) if lone_t and lone_m else None
    if reach is not None:  # the parts left: a second pass, with the gaps this wafer's pairs show
        more, still_t, still_m = how(
            [tissues[i].part for i in lone_t], [magnets[j].part for j in lone_m], max_gap=reach
        )
        pairs += [(lone_t[i], lone_m[j]) for i, j in more]
        lone_t, lone_m = [lone_t[i] for i in still_t], [lone_m[j] for j in still_m]
    sections = []
    for i, j in pairs:
        t, m = tissues[i], magnets[j]
        sections.append(
            _rebuilt(
                Section(
                    t.part,
                    m.part,
                    score=min(t.score, m.score),
                    extra={"tissue_score": t.score, "magnet_score": m.score},
                ),
                t,
                m,
            )
        )
    unpaired = [
        _rebuilt(
            Section(tissues[i].part, None, score=tissues[i].score, extra={"tissue_score": tissues[i].score}),
            tissues[i],
            None,
        )
        for i in lone_t
    ]
    unpaired += [
        _rebuilt(
            Section(None, magnets[j].part, score=magnets[j].score, extra={"magnet_score": magnets[j].score}),
            None,
            magnets[j],
        )
        for j in lone_m
    ]
    return sections, unpaired


def _leftover_gap(
    pairs: list[tuple[int, int]], tissues: list[Candidate], magnets: list[Candidate], settings: RepairSettings
) -> float | None:
    """The largest gap (px) for pairing the parts left over (step ``pair_leftovers``):
    ``settings.pair_gap_factor`` x the ``settings.pair_gap_quantile`` of the gaps (shares of the
    tissue's edge) between the parts paired first, at most ``settings.pair_lone_gap``, times the
    median tissue edge; None where that is no wider than the first pass's tenth (a wafer whose parts
    meet: default and crowded simulated wafers) or too few pairs were made to tell."""
    if not settings.runs("pair_leftovers") or len(pairs) < settings.min_levels_sections:
        return None
    edge = float(np.median([Quad.around(c.part.polygon).size()[0] for c in tissues]))
    gaps = [edge_gap(tissues[i].part, magnets[j].part, max_gap=settings.pair_lone_gap * edge) for i, j in pairs]
    share = min(
        settings.pair_lone_gap, settings.pair_gap_factor * float(np.nanquantile(gaps, settings.pair_gap_quantile))
    )
    return share * edge if share > DEFAULT_GAP_SHARE else None


def _median_depth(candidates: list[Candidate]) -> float:
    """Median short side (px) of the candidates' quads."""
    return float(np.median([Quad.around(c.part.polygon).size()[1] for c in candidates]))


def _rebuilt(section: Section, tissue: Candidate | None, magnet: Candidate | None) -> Section:
    """``section`` with ``extra["rebuilt"]`` naming its parts that a repair made (no detection)."""
    kinds = [kind for kind, c in (("tissue", tissue), ("magnet", magnet)) if c is not None and c.detection is None]
    if kinds:
        section.extra["rebuilt"] = "+".join(kinds)
    return section


def regrow_small(
    sections: list[Section],
    source: WaferSource,
    refine: bool = True,
    levels: WaferLevels | None = None,
    settings: RepairSettings = RepairSettings(),
) -> tuple[list[Section], int]:
    """Paired parts much smaller than their kind's median (``settings.small_area_fraction``: the model saw
    only part of a faint tissue, or stopped at a shading seam) are replaced by the strip of typical
    width beside their partner (:func:`partner_from_image`), when that strip lies on the small part's
    side, shows the part's contrast all along and overlaps no other part. Sections and ``source`` in
    fit px. Returns ``(sections, number of parts replaced)``."""
    if len(sections) < 3:
        return sections, 0
    out, n = list(sections), 0
    for kind, have in (("tissue", "magnet"), ("magnet", "tissue")):
        areas = [getattr(s, kind).area for s in out]
        median = float(np.median(areas))
        width = float(np.median([short_side(getattr(s, kind)) for s in out]))
        shapes = [shapely.Polygon(p.polygon) for s in out for p in s.pair()]
        tree = shapely.STRtree(shapes)
        for k, s in enumerate(out):
            small = getattr(s, kind)
            if small.area >= settings.small_area_fraction * median:
                continue
            part = partner_from_image(getattr(s, have), kind, source, width, refine, levels, settings)
            if part is None:
                continue
            poly, own = shapely.Polygon(part.polygon), shapely.Polygon(small.polygon)
            if poly.intersection(own).area < 0.5 * own.area:
                continue  # the strip is on the other side: not this part
            # (any overlap but with its own parts)
            if _overlaps_known(poly, shapes, tree, settings.partner_max_overlap, skip=(2 * k, 2 * k + 1)):
                continue
            out[k] = Section(**{have: getattr(s, have), kind: part}, score=s.score, extra={**s.extra, "regrown": kind})
            n += 1
    return out, n


def split_tiny(
    sections: list[Section], settings: RepairSettings = RepairSettings()
) -> tuple[list[Section], list[Section]]:
    """Unpair sections with a part smaller than ``settings.min_area_fraction`` x its kind's median (a
    dummy strip or a speck paired with a magnet, or junk pairs nested in a real section): the tiny
    part is dropped and the other one becomes a lone part, judged as such later. Returns
    ``(sections kept, lone parts)``."""
    if len(sections) < 3:
        return sections, []
    median = {k: float(np.median([getattr(s, k).area for s in sections])) for k in ("tissue", "magnet")}
    kept, lone = [], []
    for s in sections:
        tiny = {k for k in ("tissue", "magnet") if getattr(s, k).area < settings.min_area_fraction * median[k]}
        if not tiny:
            kept.append(s)
        elif len(tiny) == 1:
            k = "magnet" if "tissue" in tiny else "tissue"
            score = s.extra.get(f"{k}_score", s.score)
            lone.append(
                Section(**{"tissue": None, "magnet": None, k: getattr(s, k)}, score=score, extra={f"{k}_score": score})
            )
    return kept, lone


def split_unseen(
    unpaired: list[Section],
    source: WaferSource,
    levels: WaferLevels | None = None,
    settings: RepairSettings = RepairSettings(),
) -> tuple[list[Section], list[Section]]:
    """Lone parts whose outline shows on the image on at least ``settings.edge_sides`` sides
    (:func:`~sectionseg.detection.evidence.sides_shown`), and the others: a darker patch of mosaic
    shading taken for tissue has no edges of its own. Sections and ``source`` in fit px. Returns
    ``(seen, unseen)``."""
    seen: list[Section] = []
    unseen: list[Section] = []
    for s in unpaired:
        kind = "tissue" if s.tissue is not None else "magnet"
        shown = sides_shown(source, getattr(s, kind).polygon, kind, levels, settings)
        (seen if shown is None or shown >= settings.edge_sides else unseen).append(s)
    return seen, unseen


def drop_implausible(
    unpaired: list[Section],
    sections: list[Section],
    settings: RepairSettings = RepairSettings(),
    reasons: dict[int, str] | None = None,
) -> tuple[list[Section], int, int]:
    """Remove lone parts scoring below ``settings.lone_score`` (no pairing evidence) or whose area is far
    from the paired parts' of their kind: tissue smaller than ``settings.dummy_area_fraction`` x the
    median (dummy strips), or any part outside [``min_area_fraction``, ``max_area_factor``] x
    the median (shading, debris, merged junk). Returns ``(kept, dummies, others)`` (others: all the
    rest removed); ``reasons``, when given, receives ``{id(section): reason}`` of each part removed:
    ``"low score"``, ``"dummy-like"`` or ``"implausible size"``."""
    if not sections:
        return unpaired, 0, 0
    median = {k: float(np.median([getattr(s, k).area for s in sections])) for k in ("tissue", "magnet")}
    keep, dummies, other = [], 0, 0
    for s in unpaired:
        kind = "tissue" if s.tissue is not None else "magnet"
        area = getattr(s, kind).area
        if s.score is not None and s.score < settings.lone_score:
            other += 1
            why = "low score"
        elif kind == "tissue" and area < settings.dummy_area_fraction * median[kind]:
            dummies += 1
            why = "dummy-like"
        elif area < settings.min_area_fraction * median[kind] or area > settings.max_area_factor * median[kind]:
            other += 1
            why = "implausible size"
        else:
            keep.append(s)
            continue
        if reasons is not None:
            reasons[id(s)] = why
    return keep, dummies, other


def trim_gaps(
    sections: list[Section], source: WaferSource, settings: RepairSettings = RepairSettings()
) -> tuple[list[Section], int]:
    """Magnets that reach their tissue across a thin strip of bare wafer get the side facing the
    tissue moved onto their own edge: the strongest step inside that side whose polarity is the
    magnet's against the wafer beyond its far side. Parts that truly touch show no such step and
    keep their side. Sections and ``source`` in fit px. Returns ``(sections, number of magnets
    trimmed)``."""
    out, n = [], 0
    for s in sections:
        tissue, magnet = s.pair()
        quad = _gap_trimmed(magnet.polygon, tissue.polygon, source, settings)
        if quad is None:
            out.append(s)
            continue
        out.append(
            Section(
                tissue=s.tissue,
                magnet=Part(quad),
                dummy=s.dummy,
                score=s.score,
                extra={**s.extra, "gap_trimmed": True},
            )
        )
        n += 1
    return out, n


def _gap_trimmed(
    magnet: np.ndarray, tissue: np.ndarray, source: WaferSource, settings: RepairSettings
) -> np.ndarray | None:
    """The magnet quad (fit px) with its tissue-facing side on the magnet's own edge, or None."""
    quad = Quad.clockwise(magnet)
    k, gap = quad.facing(tissue)
    if gap > settings.gap_touch:
        return None  # a visible gap already: the model resolved it
    p0, p1, n, _ = quad.sides()[(k + 2) % 4]  # the far side: magnet against bare wafer
    inner, outer = side_levels(source, p0, p1, n, settings=settings)
    if inner is None or outer is None or abs(outer - inner) < settings.gap_min_levels:
        return None
    crop = crop_around(source, magnet)
    if crop is None:
        return None
    image, origin = crop
    # an edge blurred over ~2 px: a step of gap_min_levels has a derivative of about a quarter of it
    found = refine_side(
        quad.corners - origin,
        image,
        k,
        search=settings.gap_search,
        search_out=-0.5,
        polarity=1 if outer > inner else -1,
        min_peak=settings.gap_min_levels / 4,
    )
    return None if found is None else found + origin
