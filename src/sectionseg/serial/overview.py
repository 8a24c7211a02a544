"""Serial order from the wafer overview alone: the beads of each magnetic part in the fluorescence
overview, when the overview resolves them.

Consecutive sections carry nearly the same bead pattern in their magnetic resin (see
:mod:`sectionseg.serial`). Where the overview's pixels are small enough to show single beads, each
detected magnet, cropped and turned upright into its own frame
(:func:`sectionseg.geometry.orientation.magnet_frame`: x along the edge shared with the tissue, y
away from it), is a small bead image; the bead chain (:func:`~sectionseg.serial.order.section_beads`,
:func:`~sectionseg.serial.order.order_sections`) then orders them with settings for small, coarse
images (:func:`overview_settings`). A section that landed upside down shows its pattern mirrored in
that frame, which the alignment handles as for bead images.

Whether the beads are *resolved* is decided on the data, and no order is proposed when they are not
(:class:`OverviewOrder` says why):

- enough strong beads per magnet (median >= ``min_beads``);
- beads spaced apart: the median distance to the nearest strong bead is at least ``min_spacing`` x
  the spot size (the Gaussian sigma of a bead, measured on the crops), so that single beads and not
  blurred clumps are found;
- consecutive magnets really align: at least ``min_aligned`` of the links of the found path have a
  RANSAC alignment (a path through costs of unaligned pairs is arbitrary);
- at least ``min_confident`` of the links are *confident*: aligned and not doubtful (:mod:`.doubts`).

The estimate of reliability (:meth:`OverviewOrder.summary`) is that confident link share and its
band, ``reliability``: ``high`` (>= 0.75), ``medium`` (>= 0.5), ``low`` (below). On simulated wafers
(``benchmarks/bench_overview_order.py``, BENCHMARKS.md) orders with a confident share >= 0.75 had
>= 98 % of the consecutive pairs right, orders below 0.2 about half; unlike with bead images, not
every wrong link is flagged doubtful, so the doubtful links are where to look first, not a
guarantee.

In: the fluorescence overview ``(H, W)`` (memory-mapped is fine: only each magnet's box is read),
the sections (image px). Out: :class:`OverviewOrder` (the order as section indices, the
:class:`~sectionseg.serial.order.OrderResult`, the crops for pictures, the figures above).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from sectionseg.geometry.orientation import magnet_frame
from sectionseg.geometry.section import Section
from sectionseg.serial.order import OrderResult, order_sections, section_beads
from sectionseg.serial.settings import OrderSettings

log = logging.getLogger(__name__)

SOURCE = "overview"


@dataclass(frozen=True)
class OverviewSettings:
    """Parameters of the overview order (lengths in overview px).

    ``upsample``: crops are made at this many px per overview px (the bead chain wants beads a few
    px apart); ``inset_px``: the crop stays this far inside the magnet's outline (its edge against
    the dark wafer is no bead); ``min_sections``: fewer sections with a magnet give no order;
    ``min_beads``, ``min_spacing``, ``min_aligned``, ``min_confident``: when beads count as resolved
    and an order is proposed (module doc);
    ``order``: the bead chain's settings in crop px (:func:`overview_settings` by default).
    """

    upsample: float = 2.0
    inset_px: float = 3.0
    min_sections: int = 3
    min_beads: float = 8.0
    min_spacing: float = 2.0
    min_aligned: float = 0.8
    min_confident: float = 0.25
    order: OrderSettings | None = None

    def order_settings(self) -> OrderSettings:
        return self.order if self.order is not None else overview_settings(self.upsample)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["order"] = self.order_settings().as_dict()
        return d


def overview_settings(upsample: float = 2.0) -> OrderSettings:
    """:class:`OrderSettings` for magnet crops made at ``upsample`` px per overview px: a bead spot
    of about one overview px (blurred), a background estimate and margins that fit crops a few
    dozen px wide, finer constellation bins, matches within about one overview px, no resin mask
    (the crop is all magnet)."""
    u = float(upsample)
    return OrderSettings(
        bead_sigma_px=max(1.0, 1.0 * u),
        background_px=max(4.0, 4.0 * u),
        threshold=4.0,
        weak_threshold=3.0,
        resin_level=0.0,
        bin_px=max(1.0, 0.75 * u),
        rescue_bin_px=max(1.5, 1.25 * u),
        ransac_px=max(1.5, 1.0 * u),
        match_px=max(1.5, 1.0 * u),
        margin_px=max(1.0, 0.75 * u),
        min_matches=5,
        max_strain=0.06,
    )


def magnet_crop(
    image: np.ndarray, section: Section, *, upsample: float = 1.0, inset_px: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The magnetic part of ``section`` cut out of ``image`` and turned upright into its own frame
    (:func:`~sectionseg.geometry.orientation.magnet_frame`), ``upsample`` crop px per image px,
    ``inset_px`` (image px) inside its outline. Returns ``(crop float32 (h, w), A)`` with ``A`` the
    2x3 affine from image px to crop px. Only the magnet's box of ``image`` is read."""
    a, length, width = magnet_frame(section)
    u = float(upsample)
    w = max(int(round((length - 2 * inset_px) * u)), 1)
    h = max(int(round((width - 2 * inset_px) * u)), 1)
    # image -> crop px: frame, minus the inset, times u
    to_crop = np.vstack([a, [0, 0, 1]])
    to_crop = np.array([[u, 0, -u * inset_px], [0, u, -u * inset_px], [0, 0, 1]]) @ to_crop
    poly = np.asarray(section.magnet.polygon, dtype=np.float64)
    x0 = max(int(math.floor(poly[:, 0].min())) - 2, 0)
    y0 = max(int(math.floor(poly[:, 1].min())) - 2, 0)
    x1 = min(int(math.ceil(poly[:, 0].max())) + 2, image.shape[1])
    y1 = min(int(math.ceil(poly[:, 1].max())) + 2, image.shape[0])
    if x1 <= x0 or y1 <= y0:
        return np.zeros((h, w), np.float32), to_crop[:2]
    window = np.asarray(image[y0:y1, x0:x1], dtype=np.float32)
    # pixel-centre convention: cv2 maps pixel centres (integers); ours are at +0.5
    shift_in = np.array([[1, 0, x0 + 0.5], [0, 1, y0 + 0.5], [0, 0, 1]])
    shift_out = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    m = (shift_out @ to_crop @ shift_in)[:2]
    crop = cv2.warpAffine(window, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, to_crop[:2]


@dataclass
class OverviewOrder:
    """The overview order of :func:`overview_order`.

    ``proposed``: whether an order is proposed; ``reason``: why not (None when proposed);
    ``order``: section indices in serial order (None when not proposed); ``result``: the bead
    chain's :class:`OrderResult` (ids = section indices; None when it did not run); ``crops``:
    ``{index: crop}``; ``stats``: the figures of :meth:`summary`."""

    proposed: bool
    reason: str | None
    order: list[int] | None
    result: OrderResult | None
    settings: OverviewSettings
    crops: dict = field(default_factory=dict, repr=False)
    stats: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-ready: ``source``, ``proposed``, ``reason``, ``sections`` (with a magnet),
        ``beads_per_magnet_median``, ``spot_sigma_px`` / ``nearest_bead_px_median`` (overview px),
        ``links``, ``links_aligned``, ``links_doubtful``, ``doubtful_sections``,
        ``confident_link_share`` (aligned and not doubtful), ``reliability`` (high / medium / low,
        None when not proposed), ``seconds``."""
        return {"source": SOURCE, "proposed": self.proposed, "reason": self.reason, **self.stats}


def _spot_sigma(crops: list[np.ndarray], beads: list) -> float:
    """Median Gaussian sigma (crop px) of the strong beads, from the second moments of a 7x7 window
    of the background-subtracted crop (an isolated Gaussian spot of sigma s gives ~s)."""
    sig = []
    for crop, b in zip(crops, beads):
        if b.n_strong == 0:
            continue
        bg = cv2.GaussianBlur(crop, (0, 0), 6.0)
        d = crop - bg
        h, w = d.shape
        for x, y in b.xy[b.strong][:20]:
            c, r = int(x), int(y)
            if not (3 <= c < w - 3 and 3 <= r < h - 3):
                continue
            win = np.clip(d[r - 3 : r + 4, c - 3 : c + 4], 0, None)
            tot = float(win.sum())
            if tot <= 0:
                continue
            yy, xx = np.mgrid[-3:4, -3:4]
            mx, my = float((win * xx).sum() / tot), float((win * yy).sum() / tot)
            var = float((win * ((xx - mx) ** 2 + (yy - my) ** 2)).sum() / tot) / 2
            sig.append(math.sqrt(max(var, 1e-6)))
    return float(np.median(sig)) if sig else float("nan")


def _nearest(beads: list) -> float:
    """Median distance (crop px) from a strong bead to the nearest other strong bead."""
    d = []
    for b in beads:
        xy = b.xy[b.strong]
        if len(xy) < 2:
            continue
        dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
        np.fill_diagonal(dist, np.inf)
        d.extend(dist.min(axis=1).tolist())
    return float(np.median(d)) if d else float("nan")


def reliability_band(confident_share: float) -> str:
    """``high`` (>= 0.75), ``medium`` (>= 0.5) or ``low``."""
    return "high" if confident_share >= 0.75 else "medium" if confident_share >= 0.5 else "low"


def overview_order(
    fluo: np.ndarray, sections: list[Section], settings: OverviewSettings = OverviewSettings()
) -> OverviewOrder:
    """Serial order of ``sections`` (indices into the list) from their magnets' beads in the
    fluorescence overview ``fluo`` (see the module doc). Sections without a magnet are left out of
    the order."""
    t0 = time.perf_counter()
    chain = settings.order_settings().checked()
    u = settings.upsample
    idx = [i for i, s in enumerate(sections) if s.magnet is not None]
    crops = {i: magnet_crop(fluo, sections[i], upsample=u, inset_px=settings.inset_px)[0] for i in idx}
    beads = {i: section_beads([crops[i]], chain) for i in idx}
    strong = [beads[i].n_strong for i in idx]
    stats = {
        "sections": len(idx),
        "left_out": len(sections) - len(idx),
        "beads_per_magnet_median": float(np.median(strong)) if strong else 0.0,
        "spot_sigma_px": None,
        "nearest_bead_px_median": None,
        "links": 0,
        "links_aligned": 0,
        "links_doubtful": 0,
        "doubtful_sections": 0,
        "confident_link_share": None,
        "reliability": None,
        "settings": settings.as_dict(),
    }

    def done(reason: str | None, result: OrderResult | None = None) -> OverviewOrder:
        stats["seconds"] = round(time.perf_counter() - t0, 3)
        if reason is not None:
            log.info("overview order not proposed: %s", reason)
        return OverviewOrder(
            reason is None, reason, None if reason is not None else list(result.order), result, settings, crops, stats
        )

    if len(idx) < settings.min_sections:
        return done(f"{len(idx)} sections with a magnet; an order needs at least {settings.min_sections}")
    sigma = _spot_sigma([crops[i] for i in idx], [beads[i] for i in idx])
    near = _nearest([beads[i] for i in idx])
    stats["spot_sigma_px"] = None if not math.isfinite(sigma) else round(sigma / u, 3)
    stats["nearest_bead_px_median"] = None if not math.isfinite(near) else round(near / u, 3)
    if stats["beads_per_magnet_median"] < settings.min_beads:
        return done(
            f"beads not resolved in the overview: median {stats['beads_per_magnet_median']:g} bead "
            f"spots per magnet (at least {settings.min_beads:g} needed)"
        )
    if math.isfinite(sigma) and math.isfinite(near) and near < settings.min_spacing * sigma:
        return done(
            f"beads not resolved in the overview: bead spots {near / u:.2f} px apart (median to the "
            f"nearest) for a spot sigma of {sigma / u:.2f} px (at least {settings.min_spacing:g} "
            "sigmas needed)"
        )
    result = order_sections(beads, chain)
    aligned = sum(
        1 for a, b in zip(result.order[:-1], result.order[1:]) if (m := result.match(a, b)) is not None and m.ok
    )
    n_links = len(result.links)
    doubtful = len(result.doubtful)
    confident = sum(
        1
        for link, (a, b) in zip(result.links, zip(result.order[:-1], result.order[1:]))
        if not link["doubts"] and (m := result.match(a, b)) is not None and m.ok
    )
    stats.update(
        {
            "links": n_links,
            "links_aligned": aligned,
            "links_doubtful": doubtful,
            "doubtful_sections": len(result.doubtful_sections),
            "confident_link_share": round(confident / max(n_links, 1), 4),
        }
    )
    if aligned < settings.min_aligned * n_links:
        return done(
            f"beads not resolved well enough: only {aligned} of {n_links} links of the path align "
            f"(at least {settings.min_aligned:.0%} needed)",
            result,
        )
    if confident < settings.min_confident * n_links:
        return done(
            f"beads not resolved well enough: only {confident} of {n_links} links of the path are "
            f"aligned and not doubtful (at least {settings.min_confident:.0%} needed)",
            result,
        )
    stats["reliability"] = reliability_band(confident / max(n_links, 1))
    return done(None, result)
