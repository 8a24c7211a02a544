"""Section geometry: the :class:`Section` type, the :class:`Quad` type and polygon helpers (shapely and
OpenCV based)."""

from sectionseg.geometry.fitting import fit_mask_quad, fit_quadrilateral, refine_quad
from sectionseg.geometry.orientation import canonical_section, canonical_sections, part_direction, section_direction
from sectionseg.geometry.pairing import pair_parts, snap_shared_edge
from sectionseg.geometry.polygons import (
    as_polygon_array,
    long_axis_angle,
    min_area_quad,
    polygon_area,
    polygon_centroid,
)
from sectionseg.geometry.quads import Quad, Side, order_corners
from sectionseg.geometry.section import PART_NAMES, Part, Section

__all__ = [
    "Part",
    "Section",
    "PART_NAMES",
    "Quad",
    "Side",
    "as_polygon_array",
    "long_axis_angle",
    "polygon_area",
    "polygon_centroid",
    "min_area_quad",
    "fit_quadrilateral",
    "order_corners",
    "fit_mask_quad",
    "refine_quad",
    "pair_parts",
    "snap_shared_edge",
    "canonical_section",
    "canonical_sections",
    "section_direction",
    "part_direction",
]
