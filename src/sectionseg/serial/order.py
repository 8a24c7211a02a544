"""Section order retrieval, the whole chain: beads -> constellations -> candidate pairs -> alignment
and cost (a second chance for sections with few aligned partners or damage) -> cheapest path ->
doubtful sections and links.

In: section ids and their bead images (one or more channels each, same field of view) or detected
:class:`~sectionseg.serial.beads.Beads`. Out: :class:`OrderResult` with the ids in serial order,
each link's score and doubts, the cost matrix (NaN where a pair was not compared: it was no
candidate) and the pair matches.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from sectionseg.errors import InputError
from sectionseg.serial.beads import Beads, detect_beads, merge_channels
from sectionseg.serial.constellations import Constellations, candidate_pairs, constellations
from sectionseg.serial.doubts import link_doubts, section_doubts
from sectionseg.serial.match import PairMatch, match_pair
from sectionseg.serial.path import cheapest_path
from sectionseg.serial.settings import OrderSettings

log = logging.getLogger(__name__)


@dataclass
class OrderResult:
    """``ids``: section ids as given; ``order``: the ids in serial order; ``links``: per consecutive
    pair of ``order`` a dict (``from``, ``to``, ``cost``, ``doubts``, match fields); ``cost``:
    ``(n, n)`` matrix indexed like ``ids``; ``matches``: ``{(a, b): PairMatch}`` by index, ``a < b``;
    ``beads``: per id; ``sections``: per id, ``{"aligned": partners aligned, "beads": strong beads,
    "doubts": reasons}`` (:func:`~sectionseg.serial.doubts.section_doubts`); ``timings``: seconds
    per step."""

    ids: list[int]
    order: list[int]
    links: list[dict]
    cost: np.ndarray
    matches: dict = field(default_factory=dict)
    beads: dict = field(default_factory=dict)
    sections: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def doubtful(self) -> list[dict]:
        """The doubtful links."""
        return [link for link in self.links if link["doubts"]]

    @property
    def doubtful_sections(self) -> list[int]:
        """Ids of the doubtful sections."""
        return [s for s in self.order if self.sections.get(s, {}).get("doubts")]

    def match(self, a: int, b: int) -> PairMatch | None:
        """The match of sections with ids ``a`` and ``b`` (oriented from ``a`` to ``b``), or None."""
        ia, ib = self.ids.index(a), self.ids.index(b)
        m = self.matches.get((min(ia, ib), max(ia, ib)))
        if m is None or ia < ib or not m.ok:
            return m
        from sectionseg.serial.match import invert

        flipped = PairMatch(**{**m.__dict__, "i": ia, "j": ib})
        flipped.matrix = invert(m.matrix)
        flipped.pairs = m.pairs[:, ::-1]
        return flipped


def section_beads(images: list[np.ndarray], settings: OrderSettings = OrderSettings()) -> Beads:
    """Beads of one section from its channel images.

    ``images``: one 2-D array per channel (uint8 / uint16 / float, all the same size, px); returns
    :class:`~sectionseg.serial.beads.Beads` (centres in px of those images, ``x, y`` from the top-left
    corner, brightness relative to the median strong bead, the channel index of each bead).
    """
    parts = [detect_beads(img, settings, channel=c) for c, img in enumerate(images)]
    return merge_channels(parts)


def strong_constellations(
    beads: Beads, settings: OrderSettings = OrderSettings(), *, brightest: int | None = None
) -> Constellations:
    """Constellations of a section's strong beads (or of its ``brightest`` beads, strong or weak,
    with ``rescue_neighbours`` and ``rescue_bin_px``), their members indexing all of ``beads``."""
    index = np.flatnonzero(beads.strong)
    neighbours, bin_px = settings.neighbours, settings.bin_px
    if brightest is not None:
        index = np.argsort(-beads.flux, kind="stable")[:brightest]
        neighbours, bin_px = settings.rescue_neighbours, settings.rescue_bin_px
    c = constellations(beads.xy[index], neighbours, bin_px)
    return Constellations(c.keys, index[c.members], c.parity)


def _aligned(n: int, matches: dict) -> np.ndarray:
    """Number of aligned partners per section."""
    ok = np.zeros(n, int)
    for (a, b), m in matches.items():
        ok[a] += m.ok
        ok[b] += m.ok
    return ok


def _rescue(ids, beads, matches, cost, settings) -> list[int]:
    """Second chance for sections with fewer than ``rescue_below`` aligned partners or with damage
    (:func:`~sectionseg.serial.doubts.section_doubts`: blurred, few beads, partly off resin): their
    ``rescue_brightest`` beads' coarser constellations pick ``candidates`` more partners to align.
    Updates ``matches`` and ``cost`` in place; returns the sections tried (indices)."""
    n = len(ids)
    ok = _aligned(n, matches)
    damaged = section_doubts([beads[s] for s in ids], np.full(n, 2), settings)
    lonely = np.flatnonzero((ok < settings.rescue_below) | np.array([bool(d) for d in damaged]))
    if not len(lonely):
        return []
    bright = [strong_constellations(beads[s], settings, brightest=settings.rescue_brightest) for s in ids]
    _, bright_votes = candidate_pairs([c.keys for c in bright], settings.candidates, settings.min_votes)
    for a in lonely:
        order = np.argsort(-bright_votes[a], kind="stable")
        tried = 0
        for b in order:
            if b == a or bright_votes[a, b] < settings.min_votes or tried >= settings.candidates:
                break
            key = (min(a, b), max(a, b))
            tried += 1
            if key in matches and matches[key].ok:
                continue
            i, j = key
            m = match_pair(i, j, beads[ids[i]], beads[ids[j]], bright[i], bright[j], settings)
            if m.ok or key not in matches:
                matches[key] = m
                cost[i, j] = cost[j, i] = m.cost
    return [int(a) for a in lonely]


def order_sections(
    beads: dict[int, Beads], settings: OrderSettings = OrderSettings(), *, first: int | None = None
) -> OrderResult:
    """Serial order of sections from their beads ``{section id: Beads}`` (see the module doc).

    ``first``: the id to start the order from (its end of the path); default the end with the
    smaller id. Needs at least 2 sections.
    """
    settings = settings.checked()
    ids = sorted(beads)
    n = len(ids)
    if n < 2:
        raise InputError(f"section order needs at least 2 sections, got {n}")
    if first is not None and first not in beads:
        raise InputError(f"--first {first}: no such section id")
    timings = {}
    t0 = time.perf_counter()
    cons = [strong_constellations(beads[s], settings) for s in ids]
    pairs, votes = candidate_pairs([c.keys for c in cons], settings.candidates, settings.min_votes)
    timings["candidates"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cost = np.full((n, n), np.nan)
    np.fill_diagonal(cost, 0.0)
    matches = {}
    for a, b in pairs:
        m = match_pair(int(a), int(b), beads[ids[a]], beads[ids[b]], cons[a], cons[b], settings)
        matches[(int(a), int(b))] = m
        cost[a, b] = cost[b, a] = m.cost
    rescued = _rescue(ids, beads, matches, cost, settings) if settings.rescue_brightest else []
    timings["matching"] = time.perf_counter() - t0
    log.info(
        "order: %d sections, %d candidate pairs of %d, %d sections rescued",
        n,
        len(pairs),
        n * (n - 1) // 2,
        len(rescued),
    )
    t0 = time.perf_counter()
    path = cheapest_path(cost, runs=settings.tsp_runs, first=None if first is None else ids.index(first))
    timings["path"] = time.perf_counter() - t0
    link_matches = [matches.get((min(a, b), max(a, b))) for a, b in zip(path[:-1], path[1:])]
    aligned = _aligned(n, matches)
    section_why = section_doubts([beads[s] for s in ids], aligned, settings)
    doubts = link_doubts(cost, path, link_matches, settings, [k for k in range(n) if section_why[k]])
    links = []
    for (a, b), m, why in zip(zip(path[:-1], path[1:]), link_matches, doubts):
        link = {
            "from": ids[a],
            "to": ids[b],
            "cost": None if not np.isfinite(cost[a, b]) else float(cost[a, b]),
            "votes": int(votes[a, b]),
            "doubts": why,
        }
        if m is not None:
            link.update({k: v for k, v in m.summary().items() if k not in ("i", "j", "cost", "votes")})
        links.append(link)
    sections = {
        s: {"aligned": int(aligned[k]), "beads": beads[s].n_strong, "doubts": section_why[k]} for k, s in enumerate(ids)
    }
    return OrderResult(ids, [ids[k] for k in path], links, cost, matches, dict(beads), sections, timings)
