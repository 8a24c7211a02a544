"""Section geometry: the :class:`Section` type and polygon helpers (shapely and OpenCV based)."""
from sectionseg.geometry.section import Part, Section, PART_NAMES
from sectionseg.geometry.polygons import (
    as_polygon_array,
    long_axis_angle,
    polygon_area,
    polygon_centroid,
    min_area_quad,
)

__all__ = [
    "Part", "Section", "PART_NAMES", "as_polygon_array", "long_axis_angle",
    "polygon_area", "polygon_centroid", "min_area_quad",
]
