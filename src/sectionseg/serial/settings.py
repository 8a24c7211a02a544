"""Every threshold of section order retrieval in one place (:class:`OrderSettings`), recorded in the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from sectionseg.errors import InputError

COSTS = ("flux", "count")


@dataclass(frozen=True)
class OrderSettings:
    """Parameters of :func:`sectionseg.serial.order_sections` (lengths in bead-image px).

    Beads (:mod:`.beads`): ``bead_sigma_px`` (Gaussian sigma of a bead spot), ``background_px``
    (sigma of the background estimate), ``threshold`` (level of strong beads, in noise s.d.),
    ``weak_threshold`` (level of weak beads, matched but not used to align), ``max_beads`` (strong
    beads kept per channel, brightest first), ``max_flux`` (brightness cap, in median beads: dust
    blobs must not weigh like many beads), ``resin_level`` (the section's resin is where the smooth
    background exceeds this share of its median; 0: everywhere).
    Candidates (:mod:`.constellations`): ``neighbours`` (nearest neighbours of a bead that form its
    4-bead constellations), ``bin_px`` (quantisation of constellation distances), ``candidates``
    (partners kept per section, by shared constellations), ``min_votes``; sections aligned with
    fewer than ``rescue_below`` partners get a second chance from the constellations of their ``rescue_brightest``
    beads (``rescue_neighbours``, ``rescue_bin_px``; 0: no second chance).
    Matching (:mod:`.match`): ``ransac_px`` (RANSAC reprojection threshold), ``match_px`` (bead
    match radius after alignment), ``min_matches`` (matched beads for a valid alignment),
    ``max_strain`` (largest stretch or shrink of the affine alignment, as a fraction),
    ``margin_px`` (beads this close to the other image's border are not counted), ``cost``
    (``flux``: brightness-weighted share of bead signal that does not match, ``count``: share of
    beads that do not match).
    Path (:mod:`.path`): ``tsp_runs`` (LKH runs).
    Doubts (:mod:`.doubts`): ``doubt_mad`` (a link costlier than the median link by this many
    robust s.d. is doubtful), ``doubt_ratio`` (... and this many times the median),
    ``doubt_margin`` (a link is doubtful when a section has a partner off the path that costs less
    than ``(1 + doubt_margin)`` times the link), ``doubt_gap`` (a link costlier than this times the
    median of the links around it is doubtful), ``doubt_beads`` (a section with fewer strong beads
    than this times the median section is doubtful), ``doubt_sharpness`` (a section whose beads are
    less sharp than this times the median section's is doubtful), ``doubt_reach`` (links this close
    to a doubtful section's links or to a link without a match are doubtful), ``doubt_swap`` (a
    link whose two sections could swap places for less than this times the median link is
    doubtful).
    """

    bead_sigma_px: float = 1.0
    background_px: float = 10.0
    threshold: float = 4.0
    weak_threshold: float = 3.0
    max_beads: int = 3000
    max_flux: float = 4.0
    resin_level: float = 0.6
    neighbours: int = 5
    bin_px: float = 2.0
    candidates: int = 10
    min_votes: int = 3
    rescue_below: int = 4
    rescue_brightest: int = 40
    rescue_neighbours: int = 4
    rescue_bin_px: float = 3.0
    ransac_px: float = 2.0
    match_px: float = 2.0
    min_matches: int = 6
    max_strain: float = 0.04
    margin_px: float = 3.0
    cost: str = "flux"
    profile_weight: float = 1.0
    tsp_runs: int = 10
    doubt_mad: float = 5.0
    doubt_ratio: float = 1.5
    doubt_margin: float = 0.0
    doubt_swap: float = 0.25
    doubt_gap: float = 1.35
    doubt_beads: float = 0.6
    doubt_reach: int = 2
    doubt_sharpness: float = 0.85

    def checked(self) -> OrderSettings:
        """Self, or InputError for a value out of range."""
        if self.cost not in COSTS:
            raise InputError(f"unknown order cost {self.cost!r}; choose one of {', '.join(COSTS)}")
        for name in ("bead_sigma_px", "background_px", "threshold", "bin_px", "ransac_px", "match_px"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.neighbours < 3:
            raise InputError(f"neighbours must be >= 3, got {self.neighbours}")
        if self.candidates < 2:
            raise InputError(f"candidates must be >= 2, got {self.candidates}")
        return self

    def with_(self, **changes) -> OrderSettings:
        return replace(self, **changes).checked()

    def as_dict(self) -> dict:
        return asdict(self)
