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

Checked: a section marked as looked at (:meth:`ProofreadModel.set_checked`, or any edit of it)
sorts after the unchecked ones of its doubt level and is skipped by "next doubtful".

Serial and stage order: the orders of a loaded ``.magc`` (:class:`MagcKept`) are kept by section
identity (uid), not by number: a deleted section leaves them, the others keep their relative order;
a section added (or paired) by hand is appended at the end of the serial order (the save notes
it) and put into the stage order where it lengthens the stage path least
(:meth:`ProofreadModel.magc_layout`).
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from sectionseg.geometry import Quad, Section
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
    checked: bool = False

    @property
    def paired(self) -> bool:
        return self.tissue is not None and self.magnet is not None

    def part(self, role: str) -> np.ndarray | None:
        return getattr(self, role)

    def section(self) -> Section:
        return Section(self.tissue, self.magnet, self.dummy, self.score, dict(self.extra))


def _numbered(header: str) -> bool:
    """Whether a ``.magc`` entry header is numbered (``roi.0003``): it may refer to a section number."""
    tail = header.rsplit(".", 1)[-1]
    return "." in header and tail.isdigit()


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


def _short_side(quad: np.ndarray) -> float:
    return float(np.sort(Quad(quad).lengths())[:2].mean())


def propose_magnet(tissue: np.ndarray, side, width: float) -> np.ndarray:
    """A magnet ``width`` px wide along the long side of ``tissue`` (4 corners) that faces ``side``:
    a screen direction name of :data:`SIDES` or an ``(x, y)`` vector."""
    from sectionseg.geometry.orientation import clockwise

    q = clockwise(quad_of(tissue))
    want = np.asarray(SIDES[side] if isinstance(side, str) else side, dtype=np.float64)
    p0, p1, n, _ = max(Quad(q).long_sides(), key=lambda side: float(side.normal @ want))
    return np.array([p1, p0, p0 + n * width, p1 + n * width])


@dataclass
class MagcKept:
    """What a loaded ``.magc`` holds besides its sections: ``uids``: the model uid of each of the
    file's sections (None: not among the model's sections); ``serial`` / ``stage``: its orders (file
    section indices); ``landmarks`` (image px), kept ``entries``
    (:class:`~sectionseg.formats.MagcEntry`) and ``dialect``."""

    uids: list
    serial: list[int]
    stage: list[int]
    landmarks: list = field(default_factory=list)
    entries: list = field(default_factory=list)
    dialect: str = "magfinder"


def _cheapest_insert(path: list[int], k: int, points: np.ndarray) -> None:
    """Insert ``k`` into ``path`` (indices into ``points``, in place) where it adds the least length."""
    if not path:
        path.append(k)
        return
    p = points[k]
    cost = [float(np.hypot(*(p - points[path[0]])))]  # before the first
    for a, b in itertools.pairwise(path):
        cost.append(float(np.hypot(*(p - points[a])) + np.hypot(*(p - points[b])) - np.hypot(*(points[a] - points[b]))))
    cost.append(float(np.hypot(*(p - points[path[-1]]))))  # after the last
    path.insert(int(np.argmin(cost)), k)


class ProofreadModel:
    """Sections of one wafer under proofreading (see the module doc)."""

    def __init__(self, sections=(), *, rejected=(), labelled=(), edited=(), checked=(), magc=None, magc_sections=None):
        """``sections``: :class:`~sectionseg.geometry.Section` objects (paired or lone parts), in
        order; ``rejected``: lone parts detection dropped (shown apart, read-only): polygons, or
        ``(polygon, reason)`` pairs; ``labelled`` / ``edited`` / ``checked``: indices into
        ``sections`` with those flags; ``magc``: a read :class:`~sectionseg.formats.MagcFile` whose
        orders, landmarks and entries are kept, with ``magc_sections`` the index into ``sections``
        of each of its sections (None: not there; default: the same index)."""
        self.entries: list[Entry] = []
        self._next = 0
        labelled, edited, checked = set(labelled), set(edited), set(checked)
        for k, s in enumerate(sections):
            e = self._new_entry(s.tissue, s.magnet, s.dummy, s.score, dict(s.extra))
            e.labelled, e.edited, e.checked = k in labelled, k in edited, k in checked or k in edited
        self.rejected: list[np.ndarray] = []
        self.rejected_reasons: list[str] = []
        for r in rejected:
            polygon, reason = r if isinstance(r, tuple) else (r, "")
            self.rejected.append(np.asarray(getattr(polygon, "polygon", polygon), dtype=np.float64))
            self.rejected_reasons.append(reason or "")
        self.magc: MagcKept | None = None
        if magc is not None:
            n = len(self.entries)
            where = list(range(len(magc.sections))) if magc_sections is None else list(magc_sections)
            uids = [self.entries[k].uid if k is not None and 0 <= k < n else None for k in where]
            self.magc = MagcKept(
                uids,
                [int(i) for i in magc.serial_order],
                [int(i) for i in magc.stage_order],
                list(magc.landmarks),
                list(magc.entries),
                magc.dialect,
            )
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
        return {
            e.uid: section_doubt(e.tissue, e.magnet, score=e.score, extra=e.extra, medians=medians, edited=e.edited)
            for e in self.entries
        }

    def by_doubt(self) -> list[tuple[Entry, Doubt]]:
        """Entries, most doubtful level first; within a level (:attr:`Doubt.level`) the unchecked
        ones first, each group by doubt then number."""
        doubts, numbers = self.doubts(), self.numbers()
        rank = {"bad": 0, "look": 1, "ok": 2}
        return sorted(
            ((e, doubts[e.uid]) for e in self.entries),
            key=lambda t: (rank[t[1].level], t[0].checked, -t[1].value, numbers[t[0].uid]),
        )

    def to_look_at(self) -> list[Entry]:
        """Unchecked entries with some doubt, in :meth:`by_doubt` order."""
        return [e for e, d in self.by_doubt() if d.value > 0 and not e.checked]

    def magc_layout(self) -> dict:
        """The ``.magc`` orders and passengers for a save: ``serial`` / ``stage`` (indices of the
        paired sections as numbered, None when no ``.magc`` was loaded: the writer's defaults),
        ``appended`` (sections put at the end of the serial order), ``landmarks``, ``entries``
        (numbered ones, e.g. ``[roi.0003]``, only while every section of the file keeps its number:
        they are dropped, and counted in ``dropped_entries``, when the numbers changed), ``dialect``."""
        kept = self.magc
        if kept is None:
            return {
                "serial": None,
                "stage": None,
                "appended": 0,
                "landmarks": None,
                "entries": [],
                "dropped_entries": 0,
                "dialect": None,
            }
        paired = [e for e in self.entries if e.paired]
        index = {e.uid: k for k, e in enumerate(paired)}

        def mapped(order):
            uids = [kept.uids[i] for i in order if 0 <= i < len(kept.uids)]
            return list(dict.fromkeys(index[u] for u in uids if u in index))

        serial, stage = mapped(kept.serial), mapped(kept.stage)
        listed = set(serial)
        new = [k for k in range(len(paired)) if k not in listed]
        serial += new
        centres = np.array([np.mean(e.tissue, axis=0) for e in paired]).reshape(-1, 2)
        for k in [k for k in range(len(paired)) if k not in set(stage)]:
            _cheapest_insert(stage, k, centres)
        same_numbers = [index.get(u) for u in kept.uids] == list(range(len(kept.uids)))
        entries = [e for e in kept.entries if same_numbers or not _numbered(e.header)]
        return {
            "serial": serial,
            "stage": stage,
            "appended": len(new),
            "landmarks": list(kept.landmarks),
            "entries": entries,
            "dropped_entries": len(kept.entries) - len(entries),
            "dialect": kept.dialect,
        }

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
        record = {
            "op": op,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "sections": [numbers.get(u) for u in uids],
            **details,
        }
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
        e.edited = e.checked = True
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
        e.edited = e.checked = True
        if e.tissue is None and e.magnet is None:
            self.entries.remove(e)
        else:
            _canonical(e)
        self.log.append(
            {"op": "delete part", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "sections": [number], "part": role}
        )
        self._notify()

    def delete_section(self, uid: int) -> None:
        number = self.numbers().get(uid)
        self._begin()
        self.entries.remove(self.entry(uid))
        self.log.append({"op": "delete section", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "sections": [number]})
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
        e.edited, e.checked, e.labelled = True, True, labelled
        self._done("add section", [e.uid], proposed_magnet=magnet_points is None and magnet is not None)
        return e.uid

    def add_part(self, role: str, points) -> int:
        """A new lone part (drawn on the tissue or magnet layer). Returns its uid."""
        q = quad_of(points)
        self._begin()
        e = self._new_entry(q if role == "tissue" else None, q if role == "magnet" else None)
        e.edited = e.checked = True
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
            lone = self._new_entry(None, t.magnet, score=None, extra={"magnet_score": t.extra.get("magnet_score")})
            lone.edited = lone.checked = True
        t.magnet = m.magnet
        t.extra["magnet_score"] = m.extra.get("magnet_score")
        scores = [v for v in (t.extra.get("tissue_score"), t.extra.get("magnet_score")) if v is not None]
        t.score = min(scores) if scores else None
        m.magnet = None
        if m.tissue is None:
            self.entries.remove(m)
        else:
            m.edited = m.checked = True
            _canonical(m)
        t.edited = t.checked = True
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
        m.edited = m.checked = True
        e.magnet, e.edited, e.checked = None, True, True
        _canonical(e)
        self._done("unpair", [uid, m.uid])
        return m.uid

    def swap_parts(self, uid: int) -> None:
        """Exchange which part is the tissue and which the magnet."""
        self._begin()
        e = self.entry(uid)
        e.tissue, e.magnet = e.magnet, e.tissue
        e.extra["tissue_score"], e.extra["magnet_score"] = e.extra.get("magnet_score"), e.extra.get("tissue_score")
        e.edited = e.checked = True
        _canonical(e)
        self._done("swap parts", [uid])

    def set_checked(self, uids, checked: bool = True) -> None:
        """Mark sections as looked at (or not) without changing them."""
        uids = list(uids)
        self._begin()
        for u in uids:
            self.entry(u).checked = checked
        self._done("check" if checked else "uncheck", uids)

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
