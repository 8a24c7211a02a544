"""Which links of the found order a person should check.

In: the cost matrix ``(n, n)`` (NaN: not compared), the path (indices) and each link's
:class:`~sectionseg.serial.match.PairMatch` (or None when the pair was never compared). A link is
doubtful for any of these reasons (all are listed):

- ``no match``: the two sections could not be aligned (the path had to jump);
- ``high cost``: its cost is above ``median + doubt_mad x 1.4826 MAD`` of the path's links and above
  ``doubt_ratio x median`` (a lost section in between, a damaged section, or a wrong link);
- ``gap``: its cost is above ``doubt_gap`` times the median of the (up to) four links around it: a
  section may be missing between the two (lost, or its image absent), or one of them is damaged;
- ``better partner``: one of its two sections has a compared partner that is not its neighbour on
  the path and costs less than the link (times ``1 + doubt_margin``): the data would rather put it
  elsewhere;
- ``swap``: the two sections could trade places for little: the path with them swapped costs less
  than ``doubt_swap x median link`` more (at a path end, the end section is taken to pay its
  cheapest link, as in :mod:`.path`).

- ``near unplaced``: within ``doubt_reach`` links of a ``no match`` link or of a doubtful section's
  links: a section that could not be aligned well with its neighbours was put where it costs least,
  and the place it left (a link that skips it) is often near, looking like an ordinary link.

Out: a list, per link, of reasons (empty: no doubt).

:func:`section_doubts` flags sections themselves (damaged ones, whose place is less sure even when
their links look fine): ``few beads`` (fewer strong beads than ``doubt_beads`` x the median
section), ``partly off resin`` (the resin mask covers less than 90 % of the field: torn, folded),
``few partners`` (aligned with fewer than 2 sections), ``blurred`` (bead sharpness below
``doubt_sharpness`` x the median section's: out of focus).
"""

from __future__ import annotations

import numpy as np

from sectionseg.serial.settings import OrderSettings


def link_doubts(
    cost: np.ndarray, path: list[int], matches: list, settings: OrderSettings = OrderSettings(), doubtful=()
) -> list[list[str]]:
    """Reasons of doubt per link ``path[k] -> path[k+1]`` (see the module doc); ``doubtful``: indices
    of doubtful sections."""
    c = np.asarray(cost, dtype=np.float64)
    links = np.array([c[a, b] for a, b in zip(path[:-1], path[1:])], np.float64)
    out: list[list[str]] = [[] for _ in links]
    if not len(links):
        return out
    finite = links[np.isfinite(links)]
    med = float(np.median(finite)) if len(finite) else 1.0
    mad = 1.4826 * float(np.median(np.abs(finite - med))) if len(finite) else 0.0
    high = max(med + settings.doubt_mad * mad, settings.doubt_ratio * med)
    for k, (lk, m) in enumerate(zip(links, matches)):
        if m is None or not m.ok or not np.isfinite(lk):
            out[k].append("no match")
        elif lk > high:
            out[k].append("high cost")
        around = links[max(0, k - 2) : k].tolist() + links[k + 1 : k + 3].tolist()
        around = [v for v in around if np.isfinite(v)]
        if np.isfinite(lk) and around and lk > settings.doubt_gap * float(np.median(around)):
            out[k].append("gap")
    _swap_doubts(c, path, out, settings.doubt_swap * med)
    # links near a jump, or near a doubtful section (its own links are at p-1 and p)
    near = [(j, j) for j, why in enumerate(out) if "no match" in why]
    position = {s: k for k, s in enumerate(path)}
    near += [(position[x] - 1, position[x]) for x in doubtful]
    for k in range(len(out)):
        if any(lo - settings.doubt_reach <= k <= hi + settings.doubt_reach and not lo <= k <= hi for lo, hi in near):
            out[k].append("near unplaced")
    position = {s: k for k, s in enumerate(path)}
    for k, s in enumerate(path):
        row = c[s].copy()
        row[s] = np.nan
        neighbours = [path[k - 1]] if k > 0 else []
        neighbours += [path[k + 1]] if k + 1 < len(path) else []
        for nb in neighbours:
            row[nb] = np.nan
        if not np.isfinite(row).any():
            continue
        best = float(np.nanmin(row))
        for nb in neighbours:
            link = min(position[s], position[nb])
            if np.isfinite(c[s, nb]) and best * (1 + settings.doubt_margin) < c[s, nb]:
                reason = "better partner"
                if reason not in out[link]:
                    out[link].append(reason)
    return out


def _swap_doubts(c: np.ndarray, path: list[int], out: list[list[str]], limit: float) -> None:
    """Add ``swap`` to links whose two sections could trade places for less than ``limit``."""
    from sectionseg.serial.path import UNKNOWN

    def cost(a, b):
        v = c[a, b]
        return v if np.isfinite(v) else UNKNOWN

    off = np.where(np.isfinite(c), c, np.inf) + np.diag(np.full(len(c), np.inf))
    end = off.min(1)
    end = np.where(np.isfinite(end), end, UNKNOWN)
    n = len(path)
    for k in range(n - 1):
        a, b = path[k], path[k + 1]
        before = end[a] if k == 0 else cost(path[k - 1], a)
        after = end[b] if k + 1 == n - 1 else cost(b, path[k + 2])
        swapped_before = end[b] if k == 0 else cost(path[k - 1], b)
        swapped_after = end[a] if k + 1 == n - 1 else cost(a, path[k + 2])
        if swapped_before + swapped_after - before - after < limit:
            out[k].append("swap")


def section_doubts(beads: list, aligned: np.ndarray, settings: OrderSettings = OrderSettings()) -> list[list[str]]:
    """Reasons of doubt per section: ``beads`` (:class:`~sectionseg.serial.beads.Beads` per section),
    ``aligned`` (number of partners each was aligned with); see the module doc."""
    strong = np.array([b.n_strong for b in beads], float)
    typical = float(np.median(strong)) if len(strong) else 0.0
    sharp = np.array([b.sharpness for b in beads], float)
    typical_sharp = float(np.nanmedian(sharp)) if np.isfinite(sharp).any() else np.nan
    out = []
    for b, n_strong, n_ok in zip(beads, strong, aligned):
        why = []
        if np.isfinite(b.sharpness) and b.sharpness < settings.doubt_sharpness * typical_sharp:
            why.append("blurred")
        if n_strong < settings.doubt_beads * typical:
            why.append("few beads")
        if b.resin is not None and b.resin.mean() < 0.9:
            why.append("partly off resin")
        if n_ok < 2:
            why.append("few partners")
        out.append(why)
    return out
