"""npe2 reader: a detection folder (``detect`` output, MagC pair, ``sections.magc``), a ``.magc``,
``source_sections_*.txt`` or ``*.labelme.json`` file as Shapes layers.

Plain images (TIFFs included) are not claimed: napari's builtin reader opens them without asking
which plugin to use. (``sectionseg proofread`` shows the wafer as a lazy multiscale pyramid,
:func:`sectionseg.gui.images.wafer_layer_data`, which is what this reader used to offer for TIFFs;
:func:`read_wafer_image` still does it for code that wants it.) A detection folder is still also
claimed by napari's builtin reader, which takes any folder: napari asks once (the choice can be
remembered in its preferences). The Shapes layers are tagged (``metadata["sectionseg"]``: ``role`` ``reader-tissue`` /
``reader-magnet`` / ``reader-links``, ``source``): the proofreading widgets take them over (the
file is loaded into the viewer's session) when they are open or opened later.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sectionseg.gui.layers import SHAPES_TRANSLATE, xy_to_shapes

SECTION_SUFFIXES = (".magc", ".labelme.json")


def _one_path(path):
    if isinstance(path, (list, tuple)):
        return path[0] if len(path) == 1 else None
    return path


def get_reader(path):
    """The reader function for ``path``, or None when it is not ours."""
    from sectionseg.gui.store import is_detection_folder

    path = _one_path(path)
    if path is None:
        return None
    p = Path(os.fspath(path))
    name = p.name.lower()
    if p.is_dir():
        return read_sections_layers if is_detection_folder(p) else None
    if name.endswith(SECTION_SUFFIXES) or (name.startswith("source_sections_") and name.endswith(".txt")):
        return read_sections_layers
    return None  # images (TIFFs too) are napari's builtin reader's


def read_wafer_image(path):
    """A wafer image as a lazy multiscale layer (not offered to napari: see the module doc)."""
    from sectionseg.gui.images import wafer_layer_data

    path = _one_path(path)
    data, kwargs, kind = wafer_layer_data(path, Path(path).stem)
    return [(data, kwargs, kind)]


def sections_layer_data(sections, source: str) -> list[tuple]:
    """Layer data tuples of tissue, magnet and link layers for ``sections``."""
    from sectionseg.geometry.orientation import canonical_sections

    sections = canonical_sections(sections)
    out = []
    links = [
        xy_to_shapes(np.array([s.tissue.centre, s.magnet.centre]))
        for s in sections
        if s.tissue is not None and s.magnet is not None
    ]
    out.append(
        (
            links,
            {
                "name": "links",
                "shape_type": "line",
                "edge_color": "white",
                "edge_width": 1,
                "translate": SHAPES_TRANSLATE,
                "metadata": {"sectionseg": {"role": "reader-links", "source": source}},
            },
            "shapes",
        )
    )
    for role, colour in (("magnet", [1.0, 0.55, 0.0, 0.2]), ("tissue", [0.0, 0.85, 0.95, 0.2])):
        idx = [k for k, s in enumerate(sections) if getattr(s, role) is not None]
        data = [xy_to_shapes(getattr(sections[k], role).polygon) for k in idx]
        labels = [str(k) if role == "tissue" or sections[k].tissue is None else "" for k in idx]
        out.append(
            (
                data,
                {
                    "name": role,
                    "shape_type": "polygon",
                    "edge_color": "yellow",
                    "edge_width": 2,
                    "face_color": colour,
                    "translate": SHAPES_TRANSLATE,
                    "features": {"uid": np.array(idx, int), "label": np.array(labels, dtype=object)},
                    "text": {"string": "{label}", "color": "white", "size": 9},
                    "metadata": {"sectionseg": {"role": f"reader-{role}", "source": source}},
                },
                "shapes",
            )
        )
    return out


def read_sections_layers(path):
    from sectionseg.gui.store import load_annotations

    path = os.fspath(_one_path(path))
    loaded = load_annotations(path)
    return sections_layer_data(loaded.sections, path)
