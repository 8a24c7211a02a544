"""Model classes and instance rasterisation shared by the dataset writers and the torch Dataset.

The model knows two classes, ``tissue`` (1) and ``magnet`` (2); 0 is background. A section's dummy
strip is *not* a class: it stays in the annotation files (labelme ``dummy`` shapes) but is
background for the model.
"""

from __future__ import annotations

import numpy as np

from sectionseg.geometry.raster import fill_polygon
from sectionseg.geometry.section import Section

CLASSES = ("tissue", "magnet")
CLASS_IDS = {name: i + 1 for i, name in enumerate(CLASSES)}


def instances(sections: list[Section]) -> list[tuple[int, np.ndarray]]:
    """Model instances of ``sections`` as ``(class id, polygon (N, 2) x,y px)``, tissue before magnet.

    Dummy parts are left out (background for the model).
    """
    out = []
    for section in sections:
        for name in CLASSES:
            part = getattr(section, name)
            if part is not None:
                out.append((CLASS_IDS[name], part.polygon))
    return out


def instance_id_image(sections: list[Section], height: int, width: int) -> np.ndarray:
    """uint16 ``(height, width)`` image: 0 background, ``k`` (1-based) for the k-th model instance.

    Instance order is that of :func:`instances`; where polygons overlap the later one wins.
    """
    out = np.zeros((height, width), dtype=np.uint16)
    for k, (_, polygon) in enumerate(instances(sections), start=1):
        fill_polygon(out, polygon, int(k))
    return out
