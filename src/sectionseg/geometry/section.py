"""The one :class:`Section` type of the package.

A MagC section has a *tissue* part (the resin block with brain tissue), a *magnetic* part (magnetic
resin sharing one long edge with the tissue) and often a small *dummy* strip that must be ignored.
Each part is a :class:`Part`: a polygon in image pixels (see :mod:`sectionseg.geometry.polygons`
for the coordinate and angle conventions) with derived centre, area and angle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from sectionseg.geometry.polygons import (
    as_polygon_array,
    long_axis_angle,
    polygon_area,
    polygon_centroid,
)

PART_NAMES = ("tissue", "magnet", "dummy")


@dataclass(frozen=True, eq=False)
class Part:
    """One polygonal part of a section.

    ``polygon``: ``(N, 2)`` float64 array of x, y pixel coordinates (N >= 3, usually 4 corners).
    """

    polygon: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "polygon", as_polygon_array(self.polygon))

    @cached_property
    def centre(self) -> tuple[float, float]:
        """Area centroid ``(x, y)`` in pixels."""
        return polygon_centroid(self.polygon)

    @cached_property
    def area(self) -> float:
        """Area in px^2."""
        return polygon_area(self.polygon)

    @cached_property
    def angle(self) -> float:
        """Long-axis orientation, degrees in [0, 180), counter-clockwise on screen from +x.

        An axis, independent of the vertex order; the *direction* written to files (first edge of the
        canonical corner order) is :func:`sectionseg.geometry.orientation.part_direction`.
        """
        return long_axis_angle(self.polygon)

    def transformed(self, scale: float = 1.0, offset: npt.ArrayLike = (0.0, 0.0)) -> Part:
        """Return ``polygon * scale + offset`` as a new Part."""
        return Part(self.polygon * scale + np.asarray(offset, dtype=np.float64))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Part)
            and self.polygon.shape == other.polygon.shape
            and bool(np.allclose(self.polygon, other.polygon, atol=1e-6))
        )


@dataclass(eq=True)
class Section:
    """A section: tissue part, magnetic part, optional dummy strip, optional detection score.

    ``tissue`` or ``magnet`` may be None only for unpaired detections; annotation formats that need
    both (the MagC pair) refuse such sections. ``score`` is the detection confidence in [0, 1].
    """

    tissue: Part | None
    magnet: Part | None
    dummy: Part | None = None
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in PART_NAMES:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Part):
                setattr(self, name, Part(value))
        if self.tissue is None and self.magnet is None:
            raise ValueError("a Section needs at least a tissue or a magnet part")

    @classmethod
    def from_arrays(
        cls,
        tissue: npt.ArrayLike | None,
        magnet: npt.ArrayLike | None,
        dummy: npt.ArrayLike | None = None,
        score: float | None = None,
    ) -> Section:
        """Build from plain ``(N, 2)`` point arrays (or None)."""
        tissue_part, magnet_part, dummy_part = (
            None if p is None else Part(np.asarray(p)) for p in (tissue, magnet, dummy)
        )
        return cls(tissue_part, magnet_part, dummy_part, score=score)

    def pair(self) -> tuple[Part, Part]:
        """``(tissue, magnet)`` of a paired section; ValueError when either part is missing."""
        if self.tissue is None or self.magnet is None:
            raise ValueError("the section is not paired (a tissue or a magnet part is missing)")
        return self.tissue, self.magnet

    def parts(self) -> dict[str, Part]:
        """The parts that are present, by name (``tissue``, ``magnet``, ``dummy``)."""
        return {n: getattr(self, n) for n in PART_NAMES if getattr(self, n) is not None}

    def transformed(self, scale: float = 1.0, offset: npt.ArrayLike = (0.0, 0.0)) -> Section:
        """Scale then shift every part: ``p * scale + offset`` (e.g. full resolution -> downsized)."""
        parts = {n: p.transformed(scale, offset) for n, p in self.parts().items()}
        return Section(parts.get("tissue"), parts.get("magnet"), parts.get("dummy"), self.score, dict(self.extra))


def sections_bounds(sections: list[Section]) -> tuple[float, float, float, float]:
    """``(xmin, ymin, xmax, ymax)`` over all parts of all sections."""
    pts = np.concatenate([p.polygon for s in sections for p in s.parts().values()])
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())
