"""Which half is the tissue, decided per wafer: a wafer-level consensus that corrects single
sections whose tissue and magnet came out swapped.

On a gray-only wafer both halves of a section can look alike, and the model then labels some sections
the wrong way round. But all sections of one wafer come from one block: the tissue half carries the
sample (blobs, striations: more fine texture), the magnet half the bead specks, one half is darker on
average, and with a fluorescence image the magnet is the bright one. For each paired section we
measure these on both halves and take the difference (tissue minus magnet). A feature expresses the
*wafer's relation* when most sections agree on its sign; a section whose differences disagree with
the relation on those features, by a clear margin, has its parts exchanged.

Two features also have a sign known before looking at the wafer (:data:`PRIORS`), by which a wafer
that the model labelled the wrong way round for most sections is turned round as a whole: the
fluorescence (the magnet is the bright part) and, without it, the dark blobs of the embedded sample
(the tissue carries them; a magnet is plain or speckled, and its specks are too small to count).

Sections and quads are in the frame of the :class:`~sectionseg.detection.tiling.WaferSource` given
(the fit frame in the detection, as every repair). Levels are the normalised 0-255 channels the
model sees.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import cv2
import numpy as np

from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import WaferSource
from sectionseg.geometry import Section
from sectionseg.geometry.raster import polygon_mask

FEATURES = ("gray_level", "dark_structure", "specks", "fluo_level")
#: Sign of (tissue - magnet) that a feature has on every MagC wafer, strongest first; the first prior
#: that decides (keep or turn round) decides for the wafer. The magnet is the bright part in
#: fluorescence; the tissue carries the sample's dark blobs (:func:`blob_level`: on the ground truth of
#: eleven simulated styles, tissue above magnet in 72-100 % of the sections of every wafer,
#: ``benchmarks/bench_consensus.py``). Gray level has no prior: either part can be the darker one. Dark
#: structure (a narrower top-hat, not smoothed) and specks were tried as priors and dropped: on
#: simulated wafers whose magnet is dark and speckled, the magnet shows more of them than the tissue.
#: They serve as the wafer's own relation, measured on its sections, by which single sections are
#: exchanged. The blobs only decide whether the whole wafer is turned: counted per section too, they
#: exchanged 0.4-0.6 % more sections on the two real layouts (rendered, gray alone).
PRIORS = {"fluo_level": -1.0, "dark_blobs": 1.0}


def _short_side(quad: np.ndarray) -> float:
    return float(min(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[1])))


def _inner_mask(quad: np.ndarray, reach: float, shape: tuple[int, int], offset: tuple[float, float]) -> np.ndarray:
    """The quad shrunk towards its centre by ``reach`` px (on average), as a mask of ``shape`` whose
    top-left pixel is at ``offset``."""
    centre = quad.mean(axis=0)
    radius = float(np.linalg.norm(quad - centre, axis=1).mean())
    inner = centre + (quad - centre) * max(0.0, 1.0 - reach / max(radius, 1e-6))
    return polygon_mask(inner, shape, offset=offset)


def part_features(
    source: WaferSource, quad: np.ndarray, settings: RepairSettings = RepairSettings()
) -> dict[str, float] | None:
    """Measurements of one part (a quad in ``source``'s frame) or None when it leaves the wafer or is too small.

    ``gray_level``: mean gray; ``dark_structure``: mean black top-hat (dark blobs and striations
    narrower than ``settings.consensus_structure_width`` of the part's short side, specks removed
    by a 3 px median first); ``specks``: share of pixels brighter by more than 3 robust s.d. than a
    5 px median (bead specks); ``fluo_level``: mean fluorescence (absent without one). Levels in the
    normalised 0-255 channels. All inside the quad shrunk by ``settings.consensus_inset`` px and by
    the top-hat's reach.
    """
    box = source.box_around(quad, 3)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    k = max(5, int(settings.consensus_structure_width * _short_side(quad)) | 1)
    inside = _inner_mask(quad, max(settings.consensus_inset, k / 2.0), (y1 - y0, x1 - x0), (x0, y0))
    if inside.sum() < 16:
        return None
    gray8 = source.gray_window(x0, y0, x1, y1)
    gray = gray8.astype(np.float32)
    structure = cv2.morphologyEx(cv2.medianBlur(gray8, 3), cv2.MORPH_BLACKHAT, _disc(k)).astype(np.float32)
    spots = (gray - cv2.medianBlur(gray8, 5).astype(np.float32))[inside]
    mad = float(np.median(np.abs(spots))) * 1.4826 + 1.0
    out = {
        "gray_level": float(gray[inside].mean()),
        "dark_structure": float(structure[inside].mean()),
        "specks": float(np.mean(spots > 3.0 * mad)),
    }
    fluo = source.fluo_window(x0, y0, x1, y1)
    if fluo is not None:
        out["fluo_level"] = float(fluo[inside].mean())
    return out


def blob_level(source: WaferSource, quad: np.ndarray, settings: RepairSettings = RepairSettings()) -> float | None:
    """How strongly one part (a quad in ``source``'s frame) shows dark blobs (the embedded sample), or
    None when it leaves the wafer or is too small. Dark on the gray image as the microscope recorded
    it, whichever way detection reads it (:meth:`~sectionseg.detection.tiling.WaferSource.inverted`):
    the 95th percentile (gray levels 0-255) of a black top-hat ``settings.consensus_blob_width`` of
    the part's short side wide, inside the quad shrunk by the top-hat's reach, on the image with
    specks removed (3 px median) and smoothed by a Gaussian of ``settings.consensus_blob_smoothing``
    of the short side. Measured on the window resampled so that the short side is
    ``settings.consensus_blob_pixels`` px (blobs are coarse; the top-hat's cost grows with its width)."""
    box = source.box_around(quad, 3)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    short = _short_side(quad)
    f = min(1.0, settings.consensus_blob_pixels / max(short, 1e-6))
    recorded = source.inverted() if source.gray_inverted else source
    window = cv2.medianBlur(recorded.gray_window(x0, y0, x1, y1), 3)
    if f < 1.0:
        size = (max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f)))
        window = cv2.resize(window, size, interpolation=cv2.INTER_AREA)
    kb = max(5, int(settings.consensus_blob_width * short * f) | 1)
    local = (quad - (x0, y0)) * f
    inside = _inner_mask(local, kb / 2.0, window.shape[:2], (0.0, 0.0))
    if inside.sum() < 8:
        return None
    sigma = max(0.5, settings.consensus_blob_smoothing * short * f)
    smooth = cv2.GaussianBlur(window.astype(np.float32), (0, 0), sigma)
    blobs = cv2.morphologyEx(smooth, cv2.MORPH_BLACKHAT, _disc(kb))
    return float(np.percentile(blobs[inside], 95))


def _disc(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def tissue_consensus(
    sections: list[Section], source: WaferSource, settings: RepairSettings = RepairSettings()
) -> tuple[list[Section], dict[str, Any]]:
    """Sections (in ``source``'s frame: fit px) with parts exchanged where they disagree with the
    wafer, and a JSON-ready record.

    Three steps. (1) The whole wafer (step ``turn_wafer``): when the first prior of :data:`PRIORS` that
    decides (the fluorescence, when there is one, else the sample's blobs) says that the model's
    labelling is the wrong way round for most sections, every section is exchanged
    (``record["decided_by"]``). (2) Gray alone, labels mixed (step ``orient_by_split``): a feature that
    keeps clear of zero sorts the sections (:func:`_split_turns`). (3) Single sections: a feature
    expresses the wafer's relation when most sections agree on its sign; a section whose weighted vote
    on those features falls below ``settings.consensus_swap_vote`` is exchanged, unless its magnet is
    clearly the brighter half in the fluorescence, or, where the wafer's sections agree on the blobs
    (:func:`_blobs_hold`), its tissue clearly shows more of them (by ``settings.consensus_blob_margin``;
    ``record["kept_by_blobs"]``).
    """
    index, d = _differences(sections, source, settings)
    record: dict[str, Any] = {"sections_measured": len(index), "swapped": 0, "wafer_flipped": False, "features": {}}
    if len(index) < settings.consensus_min_sections:
        record["skipped"] = f"fewer than {settings.consensus_min_sections} measurable paired sections"
        return sections, record
    out = list(sections)
    turned = np.zeros(len(index), bool)  # sections whose labels end up exchanged

    def turn(rows: np.ndarray) -> None:
        for j in rows:
            out[index[j]] = _exchanged(out[index[j]])
        d[rows] = -d[rows]
        turned[rows] = ~turned[rows]

    blobs = _BlobSample([sections[i] for i in index], source, settings)
    if settings.runs("turn_wafer") and _wafer_inverted(d, blobs, record, settings):
        record["wafer_flipped"] = True
        turn(np.arange(len(index)))
    if settings.runs("orient_by_split"):  # the model's labels mixed: one feature sorts the sections
        rows = _split_turns(d, blobs, turned, record, settings)
        turn(rows)
        record["turned_by_split"] = len(rows)
    strong, weak = _votes(d, record, settings)
    # the fluorescence is the one direct reading of which half is the magnet: a section whose magnet
    # is clearly the brighter half there keeps its labels, whatever its gray features say
    fluo = np.nan_to_num(d[:, FEATURES.index("fluo_level")])
    free = fluo > -settings.consensus_fluo_decisive
    if settings.runs("decisive_feature"):  # a feature every section agrees on, clear of zero, has the last word
        free &= _decisive_allows(d, record, settings)
    if strong is None and weak is None:
        record["skipped"] = "no feature separates tissue from magnet on this wafer"
    exchanged = np.zeros(len(index), bool) if strong is None else (strong < settings.consensus_swap_vote) & free
    # the sample's blobs, where they clearly side with the labels, keep them
    if settings.runs("keep_by_blobs") and _blobs_hold(record, settings):
        for j in np.flatnonzero(exchanged):
            if _blob_difference(out[index[j]], source, settings) > settings.consensus_blob_margin:  # NaN: no
                exchanged[j] = False
                record["kept_by_blobs"] = record.get("kept_by_blobs", 0) + 1
    if weak is not None:  # features most sections agree on, short of the bar: only with the blobs' consent
        asked = (weak < settings.consensus_weak_swap_vote) & free & ~exchanged
        for j in np.flatnonzero(asked):
            if _blob_difference(out[index[j]], source, settings) < -settings.consensus_blob_margin:  # NaN: no
                exchanged[j] = True
                record["swapped_with_blobs"] = record.get("swapped_with_blobs", 0) + 1
    turn(np.flatnonzero(exchanged))
    record["swapped"] = int(turned.sum())
    return out, record


class _BlobSample:
    """(tissue - magnet) :func:`blob_level` of up to ``settings.consensus_prior_sample`` of the paired
    ``sections`` (as labelled when given), evenly spread over the list, measured once when first
    asked for: ``rows`` (indices into ``sections``) and ``values`` (NaN where a part is not measurable)."""

    def __init__(self, sections: list[Section], source: WaferSource, settings: RepairSettings):
        self.sections, self.source, self.settings = sections, source, settings
        n = min(len(sections), settings.consensus_prior_sample)
        self.rows = np.unique(np.linspace(0, len(sections) - 1, n).astype(int)) if sections else np.zeros(0, int)

    @cached_property
    def values(self) -> np.ndarray:
        return np.asarray(
            [_blob_difference(self.sections[i], self.source, self.settings) for i in self.rows], dtype=np.float64
        )


def _split_turns(
    d: np.ndarray, blobs: _BlobSample, turned: np.ndarray, record: dict[str, Any], settings: RepairSettings
) -> np.ndarray:
    """Rows of ``d`` to exchange where the model's labels are mixed on a wafer whose sections one feature
    sorts cleanly: gray alone, the first feature of ``settings.consensus_split_features`` whose
    (tissue - magnet) differences keep clear of zero (the ``consensus_split_quantile`` of their sizes at
    least ``consensus_split_gap`` x the median size: two groups of opposite sign, whichever way each
    section was labelled) says which way round each section is. Which group is right is read without
    the labels: from whether its sign goes with or against the blobs' (the tissue carries the sample's
    blobs) across the sections. The feature's reading replaces the labels only where it agrees with the
    blobs more often than the labels do, by ``consensus_split_margin``; sections whose difference is
    below ``consensus_split_near`` x the median size keep their labels. ``turned``: rows exchanged since
    the blobs were measured. ``record["split"]``: each feature looked at, and the one that decided."""
    none = np.zeros(0, int)
    if np.isfinite(d[:, FEATURES.index("fluo_level")]).any():
        return none  # the fluorescence reads each section directly
    b = np.where(turned[blobs.rows], -1.0, 1.0) * blobs.values  # as labelled now
    told = np.isfinite(b) & (np.abs(b) > settings.consensus_blob_margin)
    if told.sum() < settings.consensus_min_sections:
        return none
    labels_agree = float(np.mean(b[told] > 0))  # the blobs' agreement with the labels as they are
    for name in settings.consensus_split_features:
        col = d[:, FEATURES.index(name)]
        spread = _clearance(col, settings, settings.consensus_min_sections)
        if spread is None:
            continue
        median, gap = spread
        sample = col[blobs.rows][told]
        relation = float(np.mean(np.sign(sample) * np.sign(b[told])))  # > 0: the tissue is the higher
        feature_agree = (1.0 + abs(relation)) / 2.0
        record.setdefault("split", {})[name] = {
            "gap": gap,
            "relation_with_blobs": relation,
            "blobs_agree_with_labels": labels_agree,
            "blobs_agree_with_feature": feature_agree,
        }
        if gap < settings.consensus_split_gap or feature_agree < labels_agree + settings.consensus_split_margin:
            continue
        record["split"]["decided_by"] = name
        clear = np.abs(col) >= settings.consensus_split_near * median  # NaN: False
        return np.flatnonzero(clear & (np.sign(col) != np.sign(relation)))
    return none


def _clearance(col: np.ndarray, settings: RepairSettings, min_count: float) -> tuple[float, float] | None:
    """``(median, gap)`` of one feature's (tissue - magnet) differences ``col`` (NaN: not measured): the
    median of their sizes, and their ``settings.consensus_split_quantile`` over that median (how clear
    of zero the sections keep: near 1 when every section shows the same size, about 0.2 for noise
    around zero). None where fewer than ``min_count`` sections show the feature."""
    size = np.abs(col[np.isfinite(col)])
    if size.size < min_count or not np.median(size) > 0:
        return None
    median = float(np.median(size))
    return median, float(np.quantile(size, settings.consensus_split_quantile)) / median


def _decisive_allows(d: np.ndarray, record: dict[str, Any], settings: RepairSettings) -> np.ndarray:
    """Rows of ``d`` that may be exchanged: where a feature's sign is shared by at least
    ``settings.consensus_decisive_agreement`` of the sections and its differences keep clear of zero
    (:func:`_clearance`, as in :func:`_split_turns`), only the sections on which that feature itself disagrees with the
    wafer (the others' votes cannot outweigh it there). All rows where no feature is that clear;
    ``record["decisive"]`` names the features."""
    allowed = np.ones(len(d), bool)
    for k, name in enumerate(FEATURES):
        col = d[:, k]
        spread = _clearance(col, settings, max(settings.consensus_min_sections, 0.5 * len(d)))
        if spread is None:
            continue
        _, gap = spread
        sign = 1.0 if np.sum(np.sign(col[np.isfinite(col)])) >= 0 else -1.0
        agreement = float(np.mean(np.sign(col[np.isfinite(col)]) == sign))
        if agreement >= settings.consensus_decisive_agreement and gap >= settings.consensus_split_gap:
            allowed &= np.isfinite(col) & (np.sign(col) != sign)
            record.setdefault("decisive", []).append(name)
    return allowed


def _votes(
    d: np.ndarray, record: dict[str, Any], settings: RepairSettings
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-section votes (rows of ``d``; negative: the section disagrees with the wafer) of the
    features that express the wafer's relation (agreement at least ``settings.consensus_min_agreement``)
    and of those of ``settings.consensus_weak_features`` short of it but at least
    ``settings.consensus_weak_agreement``; None where no feature qualifies. Each feature's agreement
    and use go to ``record["features"]``."""
    votes = {True: np.zeros(len(d)), False: np.zeros(len(d))}
    weights = {True: 0.0, False: 0.0}
    for k, name in enumerate(FEATURES):
        col = d[:, k]
        signs = _signs(col, settings)
        if signs is None:
            continue
        col = np.nan_to_num(col)
        sign = 1.0 if np.sum(signs) >= 0 else -1.0
        agreement = float(np.mean(signs == sign))
        spread = float(np.median(np.abs(col[col != 0]))) + 1e-6
        full = agreement >= settings.consensus_min_agreement
        short = name in settings.consensus_weak_features and agreement >= settings.consensus_weak_agreement
        used: bool | str = full or ("with blobs" if short else False)
        record["features"][name] = {
            **record["features"].get(name, {}),
            "median_difference": float(np.median(col)),
            "agreement": agreement,
            "used": used,
        }
        if used:
            weight = 2.0 * agreement - 1.0  # 0 at a coin flip, 1 when every section agrees
            votes[full] += weight * sign * np.clip(col / spread, -3.0, 3.0)
            weights[full] += weight
    strong = votes[True] / weights[True] if weights[True] > 0 else None
    weak = votes[False] / weights[False] if weights[False] > 0 else None
    return strong, weak


def _differences(
    sections: list[Section], source: WaferSource, settings: RepairSettings
) -> tuple[list[int], np.ndarray]:
    """Indices of the measurable paired sections and their (tissue - magnet) feature differences
    ``(n, len(FEATURES))`` (NaN for a feature without data)."""
    diffs, index = [], []
    for i, s in enumerate(sections):
        if s.tissue is None or s.magnet is None:
            continue
        ft = part_features(source, s.tissue.polygon, settings)
        fm = part_features(source, s.magnet.polygon, settings)
        if ft is None or fm is None:
            continue
        diffs.append([ft.get(k, np.nan) - fm.get(k, np.nan) for k in FEATURES])
        index.append(i)
    return index, np.asarray(diffs, dtype=np.float64).reshape(-1, len(FEATURES))


def _blob_difference(s: Section, source: WaferSource, settings: RepairSettings) -> float:
    """(tissue - magnet) :func:`blob_level` of a paired section (NaN where a part is not measurable)."""
    assert s.tissue is not None and s.magnet is not None
    t, m = blob_level(source, s.tissue.polygon, settings), blob_level(source, s.magnet.polygon, settings)
    return np.nan if t is None or m is None else t - m


def _wafer_inverted(d: np.ndarray, blobs: _BlobSample, record: dict[str, Any], settings: RepairSettings) -> bool:
    """Whether the first prior feature that decides (in the order of :data:`PRIORS`) says that most
    of the paired sections (rows of ``d``; ``blobs``: their blob differences) are labelled the wrong
    way round; ``record["decided_by"]`` names it."""
    for name in PRIORS:
        if name == "fluo_level":
            col, margin = d[:, FEATURES.index(name)], settings.consensus_fluo_margin
            flip = settings.consensus_flip_agreement
        else:  # measured only where the fluorescence did not decide, on a sample of sections
            col, margin = blobs.values, settings.consensus_blob_margin
            flip = settings.consensus_blob_flip_agreement
        signs = _signs(col, settings, margin=margin)
        if signs is None:
            continue
        along = float(np.mean(signs == PRIORS[name]))  # share labelled as the prior expects
        record["features"][name] = {"agreement_with_prior": along}
        if along >= 1.0 - flip or along <= flip:
            record["decided_by"] = name
            return along <= flip
    return False


def _blobs_hold(record: dict[str, Any], settings: RepairSettings) -> bool:
    """Whether the wafer's sections, as labelled now (after a whole-wafer turn), agree on the blob
    prior's sign on at least ``settings.consensus_min_agreement`` of the sample (gray alone: the
    prior was measured)."""
    along = record["features"].get("dark_blobs", {}).get("agreement_with_prior")
    if along is None:
        return False
    return bool((1.0 - along if record["wafer_flipped"] else along) >= settings.consensus_min_agreement)


def _signs(col: np.ndarray, settings: RepairSettings, margin: float = 0.0) -> np.ndarray | None:
    """Signs of one feature's differences where it has any (not NaN, larger than ``margin`` in
    size), or None when fewer than half of the sections (or than ``consensus_min_sections``) show it:
    e.g. specks on a wafer whose magnets show none, blobs on a wafer without any."""
    shown = col[np.isfinite(col) & (np.abs(col) > margin)]
    if shown.size < max(settings.consensus_min_sections, 0.5 * col.size):
        return None
    signs: np.ndarray = np.sign(shown)
    return signs


def _exchanged(s: Section) -> Section:
    return Section(s.magnet, s.tissue, s.dummy, score=s.score, extra=_swapped_extra(s.extra))


def _swapped_extra(extra: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(extra or {})
    out["tissue_score"], out["magnet_score"] = out.get("magnet_score"), out.get("tissue_score")
    out["swapped_by_consensus"] = not out.get("swapped_by_consensus", False)
    return out
