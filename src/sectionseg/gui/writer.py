"""npe2 writer: tissue and magnet Shapes layers -> sections files.

``*.magc`` -> ``.magc``; ``*.json`` -> labelme; anything else -> a folder with every output of
``detect`` (:func:`sectionseg.export.write_detection_outputs`, no overlay). Parts are paired by
the ``uid`` feature that sectionseg's layers carry, else geometrically
(:func:`sectionseg.geometry.pairing.pair_parts`). A layer is a magnet layer when its
``metadata["sectionseg"]["role"]`` or its name says so, a tissue layer otherwise; link, dummy and
rejected layers are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sectionseg.gui.layers import shapes_to_xy

SKIPPED = ("links", "dummies", "rejected", "corners")


def _role(meta: dict) -> str | None:
    info = (meta.get("metadata") or {}).get("sectionseg") or {}
    role = str(info.get("role") or meta.get("name") or "").lower().replace("reader-", "")
    if any(s in role for s in SKIPPED):
        return None
    return "magnet" if "mag" in role else "tissue"


def sections_from_layers(layer_data) -> tuple[list, list]:
    """``(paired sections, lone parts)`` from napari layer data tuples."""
    from sectionseg.geometry import Part, Section
    from sectionseg.geometry.pairing import pair_parts

    parts = {"tissue": [], "magnet": []}  # (uid or None, Part)
    for data, meta, kind in layer_data:
        role = _role(meta) if kind == "shapes" else None
        if role is None:
            continue
        features = meta.get("features")
        uids = None
        if features is not None and "uid" in features and len(features["uid"]) == len(data):
            uids = [int(u) for u in np.asarray(features["uid"])]
        translate = meta.get("translate", (0.0, 0.0))
        for k, shape in enumerate(data):
            if len(shape) >= 3:
                parts[role].append(
                    (None if uids is None or uids[k] < 0 else uids[k], Part(shapes_to_xy(shape, translate)))
                )
    paired, lone = [], []
    by_uid = {u: p for u, p in parts["magnet"] if u is not None}
    used_t, used_m = set(), set()
    for i, (u, t) in enumerate(parts["tissue"]):
        if u is not None and u in by_uid:
            paired.append(Section(t, by_uid[u]))
            used_t.add(i)
            used_m.add(next(j for j, (v, _) in enumerate(parts["magnet"]) if v == u))
    rest_t = [i for i in range(len(parts["tissue"])) if i not in used_t]
    rest_m = [j for j in range(len(parts["magnet"])) if j not in used_m]
    pairs, lone_t, lone_m = pair_parts([parts["tissue"][i][1] for i in rest_t], [parts["magnet"][j][1] for j in rest_m])
    paired += [Section(parts["tissue"][rest_t[a]][1], parts["magnet"][rest_m[b]][1]) for a, b in pairs]
    lone += [Section(parts["tissue"][rest_t[a]][1], None) for a in lone_t]
    lone += [Section(None, parts["magnet"][rest_m[b]][1]) for b in lone_m]
    return paired, lone


def write_sections(path, layer_data) -> list[str]:
    from sectionseg.export import write_detection_outputs
    from sectionseg.formats import write_sections as write_file

    paired, lone = sections_from_layers(layer_data)
    p = Path(os.fspath(path))
    name = p.name.lower()
    if name.endswith(".magc"):
        write_file(p, paired + [s for s in lone if s.tissue is not None], fmt="magc")
    elif name.endswith(".json"):
        write_file(p, paired + lone, fmt="labelme")
    else:
        write_detection_outputs(p, paired, lone, overlay_image=None, report={"written_by": "napari"})
    return [os.fspath(p)]
