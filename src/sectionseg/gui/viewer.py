"""The proofreading session in a napari viewer: the edit model shown as Shapes layers, and the
layers' edits turned into model edits (imports napari; see :mod:`sectionseg.gui` for the pure parts).

Layers (their ``metadata["sectionseg"]["role"]`` says which): ``tissue`` and ``magnet`` (editable:
move corners in the direct-select mode, move, delete or draw parts), ``links`` (paired parts
joined centre to centre), ``dummies`` and ``rejected`` (dummy strips of the file and lone parts
detection dropped, shown apart, not edited), and while adding a section the clicked ``corners``.
Edge colours give the doubt (green fine, yellow worth a look, red likely wrong), tissue faces are
cyan, magnet faces orange, labelled sections green; each tissue (or lone magnet) shows its number,
each rejected part why detection dropped it.

The model is the source of truth: a layer edit becomes a model edit, then every layer is drawn
again from the model (so corner order, numbering and colours always follow the project's
conventions). One :class:`Session` per viewer (:func:`session_for`).
"""

from __future__ import annotations

import logging
import time
import weakref
from pathlib import Path

import numpy as np

from sectionseg.gui.doubt import doubt_colour
from sectionseg.gui.edits import ROLES, ProofreadModel
from sectionseg.gui.layers import SHAPES_TRANSLATE, shapes_to_xy, world_to_xy, xy_to_shapes, xy_to_world
from sectionseg.gui.store import Loaded, load_annotations, model_from, save_session, session_notes

log = logging.getLogger(__name__)

FACE = {"tissue": (0.0, 0.85, 0.95, 0.18), "magnet": (1.0, 0.55, 0.0, 0.18)}
LABELLED_FACE = (0.1, 1.0, 0.3, 0.45)
SELECTED_EDGE_WIDTH = 3
EDGE_WIDTH = 2
_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer, create: bool = True) -> Session | None:
    """The proofreading session of ``viewer`` (created, adopting layers the sectionseg reader opened,
    on first use)."""
    s = _SESSIONS.get(viewer)
    if s is None and create:
        s = Session(viewer)
        _SESSIONS[viewer] = s
        s.adopt_reader_layers()
    return s


def _role(layer) -> str | None:
    meta = getattr(layer, "metadata", {}) or {}
    info = meta.get("sectionseg") if isinstance(meta, dict) else None
    return info.get("role") if isinstance(info, dict) else None


class Session:
    """A viewer, its edit model and the layers showing it."""

    def __init__(self, viewer, model: ProofreadModel | None = None):
        self.viewer = viewer
        self.model = model or ProofreadModel()
        self.model.listeners.append(self._model_changed)
        self.folder: Path | None = None
        self.report: dict = {}
        self.gray_path: str | None = None
        self.fluo_path: str | None = None
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.side = "auto"  # where a new section's magnet is proposed
        self.labelling = False  # new sections are marked labelled
        self.layers: dict = {}
        self._rows: dict[str, list[int]] = {"tissue": [], "magnet": []}
        self._drawing = False
        self._in_event = False
        self._refresh_pending = False
        self._clicks: list[np.ndarray] | None = None
        self.listeners: list = []  # called after every redraw (the table)
        self.status = ""
        self._make_layers()
        viewer.layers.events.inserted.connect(self._layer_inserted)

    # -- layers ---------------------------------------------------------------------------------
    def _make_layers(self) -> None:
        v = self.viewer
        common = {"translate": SHAPES_TRANSLATE, "shape_type": "polygon", "edge_width": EDGE_WIDTH}
        self.layers["rejected"] = v.add_shapes(
            name="rejected",
            edge_color="magenta",
            face_color=[0, 0, 0, 0],
            opacity=0.8,
            metadata={"sectionseg": {"role": "rejected"}},
            features={"reason": np.zeros(0, str)},
            text={"string": "{reason}", "color": "magenta", "size": 8, "anchor": "upper_left"},
            **common,
        )
        self.layers["dummies"] = v.add_shapes(
            name="dummies",
            edge_color="violet",
            face_color=[0, 0, 0, 0],
            metadata={"sectionseg": {"role": "dummies"}},
            **common,
        )
        self.layers["links"] = v.add_shapes(
            name="links",
            edge_color="white",
            opacity=0.7,
            metadata={"sectionseg": {"role": "links"}},
            translate=SHAPES_TRANSLATE,
            edge_width=1,
        )
        text = {"string": "{label}", "color": "white", "size": 9, "anchor": "center"}
        for role in ("magnet", "tissue"):
            layer = v.add_shapes(
                name=role,
                features={"uid": np.zeros(0, int), "label": np.zeros(0, str)},
                text=text,
                face_color=list(FACE[role]),
                metadata={"sectionseg": {"role": role}},
                **common,
            )
            layer.events.data.connect(lambda event, role=role: self._on_data(role, event))
            self.layers[role] = layer
        self.refresh()

    def refresh(self) -> None:
        """Draw every layer again from the model."""
        self._refresh_pending = False
        self._drawing = True
        try:
            numbers, doubts = self.model.numbers(), self.model.doubts()
            for role in ROLES:
                entries = [e for e in self.model.ordered() if e.part(role) is not None]
                layer = self.layers[role]
                layer.selected_data = set()
                edge = [doubt_colour(doubts[e.uid]) for e in entries]
                face = [LABELLED_FACE if e.labelled else FACE[role] for e in entries]
                show = [role == "tissue" or e.tissue is None for e in entries]
                labels = [str(numbers[e.uid]) if s else "" for e, s in zip(entries, show)]
                _set_polygons(
                    layer,
                    [e.part(role) for e in entries],
                    {"uid": np.array([e.uid for e in entries], int), "label": np.array(labels, dtype=object)},
                    edge,
                    face,
                )
                self._rows[role] = [e.uid for e in entries]
            links = [
                np.array([np.mean(e.tissue, axis=0), np.mean(e.magnet, axis=0)])
                for e in self.model.ordered()
                if e.paired
            ]
            _set_lines(self.layers["links"], links)
            _set_polygons(self.layers["dummies"], [e.dummy for e in self.model.entries if e.dummy is not None])
            _set_polygons(
                self.layers["rejected"],
                self.model.rejected,
                {"reason": np.array(self.model.rejected_reasons, dtype=object)},
            )
        finally:
            self._drawing = False
        for listener in list(self.listeners):
            listener()

    def _model_changed(self) -> None:
        if self._in_event:  # napari is still inside its own edit: draw once it is done
            if not self._refresh_pending:
                self._refresh_pending = True
                from qtpy.QtCore import QTimer

                QTimer.singleShot(0, self.refresh)
        else:
            self.refresh()

    def _on_data(self, role: str, event) -> None:
        """A finished edit of the tissue or magnet layer -> model edits."""
        if self._drawing:
            return
        action = str(getattr(event.action, "value", event.action))
        if action not in ("added", "removed", "changed"):
            return
        layer = self.layers[role]
        rows = self._rows[role]
        self._in_event = True
        try:
            if action == "changed":
                for i in sorted(set(int(i) for i in (event.data_indices or ()))):
                    if 0 <= i < len(rows) and i < len(layer.data):
                        self._try(self.model.set_part, rows[i], role, shapes_to_xy(layer.data[i], layer.translate))
            elif action == "removed":
                removed = [rows[int(i)] for i in (event.data_indices or ()) if 0 <= int(i) < len(rows)]
                for uid in removed:
                    self._try(self.model.delete_part, uid, role)
                if not removed:
                    self._model_changed()
            else:  # added: the new shapes are the last ones
                new = layer.data[len(rows) :]
                for points in new:
                    xy = shapes_to_xy(points, layer.translate)
                    if role == "tissue":
                        self._try(
                            self.model.add_section,
                            xy,
                            None if self.side == "none" else self.side,
                            labelled=self.labelling,
                        )
                    else:
                        self._try(self.model.add_part, role, xy)
                if not len(new):
                    self._model_changed()
        finally:
            self._in_event = False

    def _try(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ValueError, KeyError) as exc:
            self.say(f"not done: {exc}")
            self._model_changed()  # show the model again (drops the layer's bad shape)
            return None

    def say(self, text: str) -> None:
        self.status = text
        try:
            self.viewer.status = text
        except Exception:  # pragma: no cover - status is cosmetic
            pass

    # -- loading and saving ---------------------------------------------------------------------
    def load(self, path, *, gray_path=None, fluo_path=None) -> None:
        """Show the sections of a detection folder or annotation file (a missing folder: none)."""
        loaded = load_annotations(path)
        self._use(loaded, Path(path) if (Path(path).is_dir() or not Path(path).exists()) else None)
        inputs = loaded.report.get("inputs") or {}
        self.gray_path = str(gray_path) if gray_path else (self.gray_path or inputs.get("gray"))
        self.fluo_path = str(fluo_path) if fluo_path else (self.fluo_path or inputs.get("fluo"))

    def _use(self, loaded: Loaded, folder: Path | None) -> None:
        self.model.listeners.remove(self._model_changed)
        self.model = model_from(loaded)
        self.model.listeners.append(self._model_changed)
        self.report = loaded.report
        self.folder = folder
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.refresh()
        self.say(f"{len(self.model.entries)} sections from {loaded.source or folder}")

    def gray_image(self):
        """The wafer image (memory-mapped when possible) for the overlay, or None."""
        from sectionseg.io.images import read_image

        if self.gray_path and Path(self.gray_path).is_file():
            return read_image(self.gray_path)
        layer = self.image_layer()
        if layer is None:
            return None
        data = layer.data[0] if layer.multiscale else layer.data
        return np.asarray(data) if data.ndim == 2 else None

    def image_layer(self):
        for layer in self.viewer.layers:
            if layer.__class__.__name__ == "Image" and _role(layer) != "fluo":
                return layer
        return None

    def image_size(self):
        layer = self.image_layer()
        if layer is not None:
            shape = (layer.data[0] if layer.multiscale else layer.data).shape
            return int(shape[1]), int(shape[0])
        inputs = self.report.get("inputs") or {}
        if inputs.get("width") and inputs.get("height"):
            return int(inputs["width"]), int(inputs["height"])
        return None

    def save(self, folder=None) -> dict:
        """Write the session as ``detect`` writes its outputs (see :func:`store.save_session`)."""
        folder = Path(folder) if folder is not None else self.folder
        if folder is None:
            raise ValueError("no folder to save into")
        if self.gray_path is None:
            layer = self.image_layer()
            path = (_role(layer) and layer.metadata["sectionseg"].get("path")) if layer is not None else None
            self.gray_path = path or (getattr(getattr(layer, "source", None), "path", None) if layer else None)
        paths = save_session(
            folder,
            self.model,
            report=self.report,
            gray=self.gray_image(),
            gray_path=self.gray_path,
            fluo_path=self.fluo_path,
            image_size=self.image_size(),
            session_start=self.started,
        )
        self.folder = folder
        self.report = load_annotations(folder).report
        notes = session_notes(self.model.magc_layout())
        self.say(f"saved {len(self.model.entries)} sections to {folder}" + "".join(f"; {n}" for n in notes))
        return paths

    def adopt_reader_layers(self) -> None:
        """Layers the sectionseg reader opened (a detection folder or annotation file): their file
        is loaded into the session and they are removed (the session's own layers replace them)."""
        for layer in list(self.viewer.layers):
            self._adopt(layer)

    def _adopt(self, layer) -> None:
        meta = (getattr(layer, "metadata", None) or {}).get("sectionseg") or {}
        if layer in self.layers.values() or meta.get("role") not in ("reader-tissue", "reader-magnet", "reader-links"):
            return
        source = meta.get("source")
        self.viewer.layers.remove(layer)
        for role, own in self.layers.items():  # names napari had to make unique while both were there
            if own.name != role and own in self.viewer.layers:
                own.name = role
        if meta.get("role") == "reader-tissue" and source:
            self.load(source)

    def _layer_inserted(self, event) -> None:
        layer = event.value
        if _role(layer) in ("reader-tissue", "reader-magnet", "reader-links"):
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, lambda: self._adopt(layer) if layer in self.viewer.layers else None)

    # -- navigation and edits ---------------------------------------------------------------------
    def centre_on(self, uid: int) -> None:
        """Centre the view on a section, zoomed so that it fills about a third of the canvas, and
        select its parts."""
        centre = self.model.centre(uid)
        self.viewer.camera.center = tuple(xy_to_world(centre))
        size = getattr(self.viewer, "_canvas_size", None) or (600, 600)
        self.viewer.camera.zoom = max(min(size) / max(3.0 * self.model.extent(uid), 1.0), 1e-3)
        self.select(uid)
        self.current = uid

    def select(self, uid: int) -> None:
        for role in ROLES:
            rows = self._rows[role]
            self.layers[role].selected_data = {rows.index(uid)} if uid in rows else set()

    def selected(self, role: str | None = None) -> list[int]:
        """uids of the selected parts (of ``role``, or both layers)."""
        out = []
        for r in ROLES if role is None else (role,):
            rows = self._rows[r]
            out += [rows[i] for i in sorted(self.layers[r].selected_data) if i < len(rows)]
        return list(dict.fromkeys(out))

    def next_doubtful(self) -> int | None:
        """Centre on the next unchecked doubtful section in doubt order after the current one (wraps);
        None when none is left to look at."""
        order = [e.uid for e in self.model.to_look_at()]
        if not order:
            self.say("no unchecked doubtful section left")
            return None
        current = getattr(self, "current", None)
        uid = order[(order.index(current) + 1) % len(order)] if current in order else order[0]
        self.centre_on(uid)
        return uid

    def delete_selected_sections(self) -> int:
        uids = self.selected()
        for uid in uids:
            self.model.delete_section(uid)
        return len(uids)

    def pair_selected(self) -> int | None:
        t, m = self.selected("tissue"), self.selected("magnet")
        if len(t) != 1 or len(m) != 1:
            self.say("select one tissue part and one magnet part to pair them")
            return None
        return self._try(self.model.pair, t[0], m[0])

    def check_selected(self, checked: bool = True) -> int:
        """Mark the selected sections (or the one centred on) as looked at."""
        uids = self.selected()
        current = getattr(self, "current", None)
        if not uids and current is not None and current in [e.uid for e in self.model.entries]:
            uids = [current]
        if uids:
            self.model.set_checked(uids, checked)
        return len(uids)

    def label_selected(self, labelled: bool = True) -> int:
        uids = self.selected()
        if uids:
            self.model.set_labelled(uids, labelled)
        return len(uids)

    # -- adding a section by 4 clicks -------------------------------------------------------------
    def start_adding(self) -> None:
        """The next 4 clicks on the canvas are a new section's tissue corners (any order)."""
        self._clicks = []
        layer = self.layers.get("corners")
        if layer is None or layer not in self.viewer.layers:
            layer = self.viewer.add_points(
                name="corners", size=6, face_color="yellow", metadata={"sectionseg": {"role": "corners"}}
            )
            self.layers["corners"] = layer
        layer.data = np.zeros((0, 2))
        for role in ROLES:
            self.layers[role].mode = "pan_zoom"
        if self._on_mouse not in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.append(self._on_mouse)
        self.say("click the 4 corners of the tissue part")

    def _on_mouse(self, viewer, event):
        if self._clicks is None or getattr(event, "button", 1) != 1 or event.type != "mouse_press":
            return
        self.click(world_to_xy(event.position))

    def click(self, xy) -> int | None:
        """One corner of a section being added; the 4th adds it. Returns its uid then."""
        if self._clicks is None:
            return None
        self._clicks.append(np.asarray(xy, dtype=np.float64))
        corners = self.layers.get("corners")
        if corners is not None:
            corners.data = np.array([xy_to_shapes([c])[0] + SHAPES_TRANSLATE for c in self._clicks])
        if len(self._clicks) < 4:
            self.say(f"corner {len(self._clicks)} of 4")
            return None
        points, self._clicks = np.array(self._clicks), None
        self.stop_adding()
        uid = self._try(
            self.model.add_section, points, None if self.side == "none" else self.side, labelled=self.labelling
        )
        if uid is not None:
            self.current = uid
            self.select(uid)
            self.say(f"section {self.model.numbers()[uid]} added; its magnet can be edited")
        return uid

    def stop_adding(self) -> None:
        self._clicks = None
        if self._on_mouse in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_mouse)
        corners = self.layers.pop("corners", None)
        if corners is not None and corners in self.viewer.layers:
            self.viewer.layers.remove(corners)
        self.viewer.layers.selection.active = self.layers["tissue"]


def _set_polygons(layer, polygons, features=None, edge=None, face=None) -> None:
    """Replace a Shapes layer's shapes by ``polygons`` (x, y in our convention)."""
    layer.selected_data = set()
    data = [(xy_to_shapes(p), "polygon") for p in polygons]
    if features is not None:
        layer.feature_defaults = {k: (-1 if k == "uid" else "") for k in features}
    layer.data = data
    if features is not None:
        import pandas as pd

        layer.features = pd.DataFrame(features)
    if data and edge is not None:
        layer.edge_color = np.array(edge, dtype=float)
    if data and face is not None:
        layer.face_color = np.array(face, dtype=float)
    if features is not None:
        layer.refresh_text()


def _set_lines(layer, lines) -> None:
    layer.selected_data = set()
    layer.data = [(xy_to_shapes(p), "line") for p in lines]
