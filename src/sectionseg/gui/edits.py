"""The proofreading edit model: the single source of truth of a session, with undo (pure Python).

A :class:`ProofreadModel` holds :class:`Entry` objects (a section or a lone part: tissue, magnet
and dummy corners ``(4, 2)`` x, y in our convention, score, detection ``extra``, flags), each with
a stable ``uid``. The napari Shapes layers are views of it (:mod:`sectionseg.gui.viewer`). Every
edit goes through a method here: the whole state is copied before it (undo / redo stacks) and the
edit is recorded in :attr:`ProofreadModel.log` (written to ``report.json`` on save).

Corner order: every part is stored in the project's canonical order
(:func:`sectionseg.geometry.orientation.canonical_section`), whatever order the user clicked:
four corners are first put around their centre (a convex outline), a polygon of another number
of points becomes its minimum-area rectangle.

Numbering: the number of a section is its ``id`` in the files saved (``sections.csv``): paired
sections first, in the model's order, then the lone parts.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np

from sectionseg.geometry import Section
from sectionseg.geometry.orientation import canonical_section
from sectionseg.gui.doubt import Doubt, part_medians, section_doubt

ROLES = ("tissue", "magnet")
#: magnet width / tissue width when the wafer has no paired section to measure it on
DEFAULT_MAGNET_RATIO = 0.6
#: screen directions a proposed magnet may lie in (x, y; y down)
SIDES = {"up": (0.0, -1.0), "down": (0.0, 1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0)}
MAX_UNDO = 200
#: decimals of the coordinates kept (those of the files written, ``formats.common.fmt_num``)
DECIMALS = 3


@dataclass
class Entry:
    uid: int
    tissue: np.ndarray | None
    magnet: np.ndarray | None
    dummy: np.ndarray | None = None
    score: float | None = None
    extra: dict = field(default_factory=dict)
    labelled: bool = False
    edited: bool = False

    @property
    def paired(self) -> bool:
        return self.tissue is not None and self.magnet is not None

    def part(self, role: str) -> np.ndarray | None:
        return getattr(self, role)

    def section(self) -> Section:
        return Section(self.tissue, self.magnet, self.dummy, self.score, dict(self.extra))


def quad_of(points) -> np.ndarray:
    """Four corners from what the user gave: 4 points put around their centre (any click order),
    other polygons their minimum-area rectangle. ValueError for a degenerate outline."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) < 3:
        raise ValueError("a part needs at least 3 points")
    if len(p) == 4:
        c = p.mean(axis=0)
        q = p[np.argsort(np.arctan2(p[:, 1] - c[1], p[:, 0] - c[0]))]
    else:
        import cv2

        q = cv2.boxPoints(cv2.minAreaRect(p.astype(np.float32))).astype(np.float64)
    x, y = q[:, 0], q[:, 1]
    if 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) < 1.0:
        raise ValueError("the outline has no area")
    return q


def _canonical(entry: Entry) -> None:
    """Put ``entry``'s parts into the canonical corner order (in place), coordinates rounded to the
    :data:`DECIMALS` the files keep, so that what is shown is what a save writes and reads back."""
    if entry.tissue is None and entry.magnet is None:
        return
    s = canonical_section(Section(entry.tissue, entry.magnet, entry.dummy, entry.score, dict(entry.extra)))
    for name in ("tissue", "magnet", "dummy"):
        part = getattr(s, name)
        setattr(entry, name, None if part is None else np.round(part.polygon, DECIMALS) + 0.0)


def _long_sides(quad: np.ndarray):
    """The two long edges ``(p0, p1, outward normal, length)`` of a clockwise-on-screen quad."""
    edges = []
    for i in range(4):
        p0, p1 = quad[i], quad[(i + 1) % 4]
        d = p1 - p0
        length = float(np.hypot(*d))
        normal = np.array([d[1], -d[0]]) / max(length, 1e-12)  # outward for clockwise-on-screen (y down)
        edges.append((p0, p1, normal, length))
    edges.sort(key=lambda e: -e[3])
    return edges[:2]


def _short_side(quad: np.ndarray) -> float:
    sides = np.hypot(*(np.roll(quad, -1, axis=0) - quad).T)
    return float(np.sort(sides)[:2].mean())


def propose_magnet(tissue: np.ndarray, side, width: float) -> np.ndarray:
    """A magnet ``width`` px wide along the long side of ``tissue`` (4 corners) that faces ``side``:
    a screen direction name of :data:`SIDES` or an ``(x, y)`` vector."""
    from sectionseg.geometry.orientation import clockwise

    q = clockwise(quad_of(tissue))
    want = np.asarray(SIDES[side] if isinstance(side, str) else side, dtype=np.float64)
    p0, p1, n, _ = max(_long_sides(q), key=lambda e: float(e[2] @ want))
    return np.array([p1, p0, p0 + n * width, p1 + n * width])


class ProofreadModel:
    """Sections of one wafer under proofreading (see the module doc)."""

    def __init__(self, sections=(), *, rejected=(), labelled=(), edited=()):
        """``sections``: :class:`~sectionseg.geometry.Section` objects (paired or lone parts), in
        order; ``rejected``: lone parts detection dropped (shown apart, read-only); ``labelled`` /
        ``edited``: indices into ``sections`` with those flags."""
        self.entries: list[Entry] = []
        self._next = 0
        for k, s in enumerate(sections):
            e = self._new_entry(s.tissue, s.magnet, s.dummy, s.score, dict(s.extra))
            e.labelled, e.edited = k in set(labelled), k in set(edited)
        self.rejected = [np.asarray(p.polygon if hasattr(p, "polygon") else p, dtype=np.float64)
                         for p in rejected]
        self.log: list[dict] = []
        self._undo: list[tuple] = []
        self._redo: list[tuple] = []
        self.listeners: list = []

    # -- reading ------------------------------------------------------------------------------
    def _new_entry(self, tissue, magnet, dummy=None, score=None, extra=None) -> Entry:
        def arr(p):
            return None if p is None else np.asarray(getattr(p, "polygon", p), dtype=np.float64).copy()

        e = Entry(self._next, arr(tissue), arr(magnet), arr(dummy), score, dict(extra or {}))
        self._next += 1
        _canonical(e)
        self.entries.append(e)
        return e

    def entry(self, uid: int) -> Entry:
        for e in self.entries:
            if e.uid == uid:
                return e
        raise KeyError(f"no section with uid {uid}")

    def ordered(self) -> list[Entry]:
        """Entries in file order: paired ones, then lone parts."""
        return [e for e in self.entries if e.paired] + [e for e in self.entries if not e.paired]

    def numbers(self) -> dict[int, int]:
        """``{uid: number}``: the section ids of the saved files."""
        return {e.uid: k for k, e in enumerate(self.ordered())}

    def sections(self) -> tuple[list[Section], list[Section]]:
        """``(paired sections, lone parts)`` as saved."""
        return [e.section() for e in self.entries if e.paired], [e.section() for e in self.entries if not e.paired]

    def labelled_sections(self) -> list[Section]:
        return [e.section() for e in self.ordered() if e.labelled and e.paired]

    def doubts(self) -> dict[int, Doubt]:
        medians = part_medians(self.entries)
        return {e.uid: section_doubt(e.tissue, e.magnet, score=e.score, extra=e.extra, medians=medians,
                                     edited=e.edited) for e in self.entries}

    def by_doubt(self) -> list[tuple[Entry, Doubt]]:
        """Entries, most doubtful first (then by number)."""
        doubts, numbers = self.doubts(), self.numbers()
        return sorted(((e, doubts[e.uid]) for e in self.entries),
                      key=lambda t: (-t[1].value, numbers[t[0].uid]))

    def magnet_ratio(self) -> float:
        ratios = [_short_side(e.magnet) / max(_short_side(e.tissue), 1e-9) for e in self.entries if e.paired]
        return float(np.median(ratios)) if ratios else DEFAULT_MAGNET_RATIO

    def usual_side(self) -> np.ndarray:
        """The wafer's usual tissue-to-magnet direction (x, y unit vector), down when unknown."""
        vs = [np.mean(e.magnet, axis=0) - np.mean(e.tissue, axis=0) for e in self.entries if e.paired]
        if not vs:
            return np.array(SIDES["down"])
        v = np.median(np.array(vs) / np.maximum(np.linalg.norm(vs, axis=1, keepdims=True), 1e-12), axis=0)
        n = float(np.hypot(*v))
        return v / n if n > 1e-9 else np.array(SIDES["down"])

    # -- editing -------------------------------------------------------------------------------
    def _begin(self) -> None:
        self._undo.append(self._state())
        del self._undo[:-MAX_UNDO]
        self._redo.clear()

    def _state(self) -> tuple:
        return copy.deepcopy(self.entries), self._next, list(self.log)

    def _restore(self, state: tuple) -> None:
        self.entries, self._next, self.log = copy.deepcopy(state[0]), state[1], list(state[2])

    def _done(self, op: str, uids, **details) -> None:
        numbers = self.numbers()
        record = {"op": op, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "sections": [numbers.get(u) for u in uids], **details}
        self.log.append(record)
        self._notify()

    def _notify(self) -> None:
        for listener in list(self.listeners):
            listener()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self._state())
        self._restore(self._undo.pop())
        self._notify()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self._state())
        self._restore(self._redo.pop())
        self._notify()
        return True

    def set_part(self, uid: int, role: str, points) -> bool:
        """Replace a part's outline (any corner order; see :func:`quad_of`). Returns False (and
        records nothing) when the outline is the same as before."""
        q = quad_of(points)
        trial = copy.deepcopy(self.entry(uid))
        setattr(trial, role, q)
        _canonical(trial)
        old = self.entry(uid).part(role)
        if old is not None and old.shape == trial.part(role).shape and np.allclose(old, trial.part(role), atol=1e-9):
            return False
        self._begin()
        e = self.entry(uid)
        setattr(e, role, q)
        e.edited = True
        _canonical(e)
        self._done("edit part", [uid], part=role)
        return True

    def move_corner(self, uid: int, role: str, index: int, xy) -> bool:
        """Move corner ``index`` (of the canonical order) of a part to ``xy``."""
        q = self.entry(uid).part(role).copy()
        q[index] = np.asarray(xy, dtype=np.float64)
        return self.set_part(uid, role, q)

    def delete_part(self, uid: int, role: str) -> None:
        number = self.numbers().get(uid)
        self._begin()
        e = self.entry(uid)
        setattr(e, role, None)
        e.edited = True
        if e.tissue is None and e.magnet is None:
            self.entries.remove(e)
        else:
            _canonical(e)
        self.log.append({"op": "delete part", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                         "sections": [number], "part": role})
        self._notify()

    def delete_section(self, uid: int) -> None:
        number = self.numbers().get(uid)
        self._begin()
        self.entries.remove(self.entry(uid))
        self.log.append({"op": "delete section", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                         "sections": [number]})
        self._notify()

    def add_section(self, tissue_points, side="auto", magnet_points=None, *, labelled: bool = False) -> int:
        """A new section from its tissue (4 clicks in any order); its magnet is ``magnet_points`` or
        proposed along the tissue's long side facing ``side`` (a name of :data:`SIDES`, an ``(x, y)``
        vector, ``"auto"``: the wafer's usual side, or None: no magnet). Returns its uid."""
        tissue = quad_of(tissue_points)
        if magnet_points is not None:
            magnet = quad_of(magnet_points)
        elif side is None:
            magnet = None
        else:
            want = self.usual_side() if isinstance(side, str) and side == "auto" else side
            magnet = propose_magnet(tissue, want, self.magnet_ratio() * _short_side(tissue))
        self._begin()
        e = self._new_entry(tissue, magnet)
        e.edited, e.labelled = True, labelled
        self._done("add section", [e.uid], proposed_magnet=magnet_points is None and magnet is not None)
        return e.uid

    def add_part(self, role: str, points) -> int:
        """A new lone part (drawn on the tissue or magnet layer). Returns its uid."""
        q = quad_of(points)
        self._begin()
        e = self._new_entry(q if role == "tissue" else None, q if role == "magnet" else None)
        e.edited = True
        self._done("add part", [e.uid], part=role)
        return e.uid

    def pair(self, tissue_uid: int, magnet_uid: int) -> int:
        """Give the tissue of ``tissue_uid`` the magnet of ``magnet_uid``; their former partners become
        lone parts. Returns the uid of the paired section."""
        t, m = self.entry(tissue_uid), self.entry(magnet_uid)
        if t.tissue is None or m.magnet is None:
            raise ValueError("pairing needs a section with a tissue and one with a magnet")
        if t is m:
            return t.uid
        self._begin()
        t, m = self.entry(tissue_uid), self.entry(magnet_uid)
        if t.magnet is not None:
            self._new_entry(None, t.magnet, score=None, extra={"magnet_score": t.extra.get("magnet_score")}).edited = True
        t.magnet = m.magnet
        t.extra["magnet_score"] = m.extra.get("magnet_score")
        scores = [v for v in (t.extra.get("tissue_score"), t.extra.get("magnet_score")) if v is not None]
        t.score = min(scores) if scores else None
        m.magnet = None
        if m.tissue is None:
            self.entries.remove(m)
        else:
            m.edited = True
            _canonical(m)
        t.edited = True
        _canonical(t)
        self._done("pair", [t.uid])
        return t.uid

    def unpair(self, uid: int) -> int:
        """Split a section into a lone tissue and a lone magnet. Returns the magnet's uid."""
        e = self.entry(uid)
        if not e.paired:
            raise ValueError("the section is not paired")
        self._begin()
        e = self.entry(uid)
        m = self._new_entry(None, e.magnet, extra={"magnet_score": e.extra.get("magnet_score")})
        m.edited = True
        e.magnet, e.edited = None, True
        _canonical(e)
        self._done("unpair", [uid, m.uid])
        return m.uid

    def swap_parts(self, uid: int) -> None:
        """Exchange which part is the tissue and which the magnet."""
        self._begin()
        e = self.entry(uid)
        e.tissue, e.magnet = e.magnet, e.tissue
        e.extra["tissue_score"], e.extra["magnet_score"] = e.extra.get("magnet_score"), e.extra.get("tissue_score")
        e.edited = True
        _canonical(e)
        self._done("swap parts", [uid])

    def set_labelled(self, uids, labelled: bool = True) -> None:
        uids = list(uids)
        self._begin()
        for u in uids:
            self.entry(u).labelled = labelled
        self._done("label" if labelled else "unlabel", uids)

    def part_at(self, xy, roles=ROLES) -> tuple[int, str] | None:
        """``(uid, role)`` of the part containing the point ``xy``, the smallest one when several."""
        from matplotlib.path import Path as MplPath

        best = None
        for e in self.entries:
            for role in roles:
                q = e.part(role)
                if q is not None and MplPath(q).contains_point(tuple(xy)):
                    area = abs(float(np.cross(q[2] - q[0], q[3] - q[1]))) / 2
                    if best is None or area < best[0]:
                        best = (area, e.uid, role)
        return None if best is None else (best[1], best[2])

    def centre(self, uid: int) -> np.ndarray:
        e = self.entry(uid)
        return np.mean(np.concatenate([p for p in (e.tissue, e.magnet) if p is not None]), axis=0)

    def extent(self, uid: int) -> float:
        e = self.entry(uid)
        pts = np.concatenate([p for p in (e.tissue, e.magnet) if p is not None])
        return float(math.hypot(*(pts.max(axis=0) - pts.min(axis=0))))
