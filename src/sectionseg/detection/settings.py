"""Every threshold of detection after the model (and of the scale estimate before it), in one place,
and a switch for each repair step.

:class:`RepairSettings` is passed to the repairs (:mod:`sectionseg.detection.repairs`), the image
evidence (:mod:`sectionseg.detection.evidence`) and recorded whole in ``report.json``. Level thresholds
are *shares of contrasts measured on the wafer itself* (:class:`~sectionseg.detection.evidence.WaferLevels`,
from its confidently paired sections) where the wafer gives enough sections; the fixed values below
are only the fall-back for wafers with too few of them. Lengths are fit-frame px (sections ~130 px
long); areas are relative to the median of the paired parts of the same kind.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: The repair steps, in the order the pipeline runs them (each can be switched off).
STEPS = (
    "scale_bracket",
    "polarity",
    "split_by_shape",
    "rebuild_touching",
    "pair_depths",
    "pair_leftovers",
    "recover_partners",
    "split_tiny",
    "regrow_small",
    "trim_gaps",
    "trim_strips",
    "drop_duplicates",
    "split_merged",
    "drop_implausible",
    "split_unseen",
    "complete_from_image",
    "reserve_sections",
    "consensus",
    "turn_wafer",
    "orient_by_split",
    "decisive_feature",
    "keep_by_blobs",
    "gray_look",
)


@dataclass(frozen=True)
class RepairSettings:
    """Thresholds of the post-processing and the steps that run (``steps``: names from :data:`STEPS`)."""

    # scores
    # detections between this and the score threshold wait in reserve: reported only when they pair
    # with a lone confident part
    reserve_score: float = 0.3
    lone_score: float = 0.9  # a part without a partner needs this score to be reported
    # areas (x the median area of the paired parts of the same kind)
    dummy_area_fraction: float = 0.5  # unpaired tissue smaller than this = dummy strip
    min_area_fraction: float = 0.4  # other parts outside [min, max] are not reported (debris,
    max_area_factor: float = 1.6  # shading, merged junk); paired parts below min are unpaired
    small_area_fraction: float = 0.7  # paired parts smaller than this are regrown if possible
    # touching parts seen as one region: quads fitting their mask worse than this IoU, or larger than
    # this x the median, are rebuilt beside their partners
    suspect_fit_iou: float = 0.8
    suspect_area_factor: float = 1.3
    # pairing: a part whose depth (short side) is this share off its kind's median depth on the wafer
    # costs as much as a gap of a tenth of the edge; a dummy strip detected as a magnet, about half a
    # magnet's depth, then loses to the section's own magnet (step pair_depths switches it off)
    pair_depth_unit: float = 0.2
    # the parts nothing paired are paired among themselves again with a gap up to pair_gap_factor x the
    # pair_gap_quantile of the gaps between the parts paired first, at most pair_lone_gap of the median
    # tissue long side (the first pass: a tenth); a magnet's mask may stop that short of the shared
    # edge (an edge band on real-look wafers); where the first pairs meet, no second pass (on a
    # simulated wafer whose parts meet, the wider gap paired 3 tissues with a neighbour's magnet)
    # (step pair_leftovers)
    pair_lone_gap: float = 0.2
    pair_gap_factor: float = 2.0
    pair_gap_quantile: float = 0.9
    # a partner found on the image may overlap known parts by this share (sections on real wafers
    # overlap their neighbours by up to ~20 %)
    partner_max_overlap: float = 0.3
    # visible outlines (lone parts must show this many sides on the image)
    edge_sides: int = 3
    edge_band: float = 4.0  # px, depth of the bands inside and outside a side
    edge_gap: float = 1.5  # px left out on each side of the edge line (blur, fit error)
    # a side shows when inside and outside differ by edge_share of the wafer's measured
    # part/background contrast and by at least edge_min_levels gray levels (of 255)
    edge_share: float = 0.1
    edge_min_levels: float = 4.0
    # a partner strip differs from the known part by this share of the wafer's measured tissue/magnet
    # contrast (min 3 levels)
    partner_share: float = 0.05
    min_levels_sections: int = 5  # paired sections needed to measure the wafer's levels
    # fall-backs when the wafer's levels cannot be measured (calibrated on the simulator's wafers)
    tissue_edge_ratio: float = 0.93  # tissue side: inside darker than this x outside
    magnet_edge_levels: float = 15.0  # magnet side: fluorescence brighter by this many levels
    partner_tissue_ratio: float = 0.97  # tissue partner at least 3 % darker than its magnet
    partner_fluo_levels: float = 20.0  # magnet partner's fluorescence above the tissue's by this
    # magnets that swallowed the gap to their tissue: the side within gap_touch px of the tissue is
    # searched up to gap_search px inside for a step of gap_min_levels (the magnet/wafer step polarity)
    gap_touch: float = 1.5
    gap_search: float = 8.0
    gap_min_levels: float = 10.0
    # strips merged into a tissue part (a dummy, a neighbour across a thin gap): a tissue deeper than
    # the wafer's median tissue/magnet depth ratio allows by strip_min_excess px and strip_excess_share
    # of its depth has its far side searched strip_edge_search px either side of the expected depth;
    # the ratio is measured on tissues whose far side has bare wafer beyond it (the level outside
    # reaching strip_gap_share of the way from the tissue's to the wafer's)
    strip_min_excess: float = 2.5
    strip_gap_share: float = 0.5
    strip_excess_share: float = 0.06
    strip_edge_search: float = 5.0
    # whole sections seen as one part (:mod:`sectionseg.detection.merged`): lone parts too large for
    # the wafer (max_area_factor; any lone part when nothing is paired) with a straight edge across
    # them, between merged_min_share and 1 - merged_min_share of their depth, on a line (within
    # merged_agreement of the depth) through the steepest steps of 6 pieces along it, merged_min_strength
    # times steeper than the part's median gradient
    merged_min_share: float = 0.25
    merged_agreement: float = 0.03
    merged_min_strength: float = 8.0
    # ... or, without such an edge, shaped like the wafer's whole sections (length and depth within
    # this share of the medians of its parts): cut where its tissue and magnet depths put the shared
    # edge; such parts are set aside before pairing
    merged_shape_tolerance: float = 0.2
    # ... if its halves differ as the wafer's tissues and magnets do (mean gray or dark blobs: one of
    # them by this share of the wafer's median |tissue - magnet|, measured on this many of its paired
    # sections); a patch of mosaic shading is one material
    merged_contrast_share: float = 0.5
    merged_contrast_sample: int = 100
    # which half is the tissue, decided per wafer (:mod:`sectionseg.detection.consensus`)
    consensus_min_sections: int = 8  # fewer measurable paired sections: no wafer relation trusted
    consensus_min_agreement: float = 0.75  # share of sections agreeing on a feature's sign for it to count
    # a feature agreeing on at least this share (short of the above) exchanges a section only where the
    # sample's blobs (:func:`~sectionseg.detection.consensus.blob_level`) say so too: a wafer whose sections
    # the model labels a quarter one way, the rest the other, shows its truest feature at ~0.75
    consensus_weak_agreement: float = 0.65
    # ... of these features only: a half darker on average is one wafer's material; texture (specks,
    # dark structure) is noisier, and as weak features the specks exchanged 6 sections of the
    # real-square benchmark wafer the wrong way (gray alone, BENCHMARKS.md)
    consensus_weak_features: tuple[str, ...] = ("gray_level",)
    consensus_swap_vote: float = -0.5  # a section whose weighted vote is below this is swapped
    # ... on the features short of the bar, with the blobs' consent: below this (real-dark-magnet gray
    # alone, a model that labels 42 % of the sections one way: 22 -> 9 left the wrong way round at -0.25)
    consensus_weak_swap_vote: float = -0.25
    # the whole wafer is exchanged when at most this share of its sections agrees with the fluorescence
    # prior (kept when at least 1 - this share does) ...
    consensus_flip_agreement: float = 0.35
    # ... or, where the fluorescence does not decide, with the blob prior: the blobs have their sign on
    # 72-100 % of the sections of every simulated style, so a wafer the model labels 80 % right shows
    # at least ~0.6 agreement (0.8 x 0.72 + 0.2 x 0.28) and one it labels 70 % wrong at most ~0.4; the
    # majority decides (at 0.45 the real-dark-magnet wafer, 0.39 on 120 of its sections, 0.44 on all,
    # stayed 75 % swapped when one repair step was switched off)
    consensus_blob_flip_agreement: float = 0.5
    # gray alone, where the model labels a wafer's sections now one way now the other: a feature whose
    # (tissue - magnet) differences keep clear of zero (their consensus_split_quantile at least
    # consensus_split_gap x their median size) sorts the sections, oriented by the blobs, where the
    # blobs agree with it more often than with the labels by consensus_split_margin; differences below
    # consensus_split_near x the median size leave a section as labelled (step orient_by_split)
    consensus_split_features: tuple[str, ...] = ("gray_level", "dark_structure")
    consensus_split_quantile: float = 0.1
    consensus_split_gap: float = 0.3
    consensus_split_margin: float = 0.1
    consensus_split_near: float = 0.25
    # a feature whose sign this share of the sections share, and whose differences keep clear of zero
    # (consensus_split_gap), lets only the sections it disagrees on be exchanged (step decisive_feature;
    # a rendered real layout had 8 right sections exchanged by the fine structure and specks against a
    # gray level that all its sections agreed on)
    consensus_decisive_agreement: float = 0.98
    consensus_inset: float = 2.0  # px kept away from a part's outline when measuring it
    # a prior feature's (tissue - magnet) difference counts for turning the wafer round only beyond this
    # size (levels 0-255; below it: noise between two plain halves)
    consensus_fluo_margin: float = 0.0
    consensus_blob_margin: float = 2.0
    # a section whose magnet is brighter than its tissue by this much in the fluorescence (levels 0-255)
    # is never exchanged by the gray features
    consensus_fluo_decisive: float = 10.0
    # widths of the features' top-hats (dark structure; the sample's blobs) and the blobs' smoothing, as
    # shares of the part's short side; the blobs are measured with the short side resampled to
    # consensus_blob_pixels px, on up to consensus_prior_sample sections of a wafer
    # (:mod:`sectionseg.detection.consensus`)
    consensus_structure_width: float = 0.25
    consensus_blob_width: float = 0.5
    consensus_blob_smoothing: float = 0.03
    consensus_blob_pixels: float = 24.0
    consensus_prior_sample: int = 400
    # the scale estimate (:mod:`sectionseg.detection.scale`): candidate scales tried in order (for a
    # model of the reference section size), the search stopping at one where the sample tiles show
    # sections (at least scale_min_pairs touching tissue/magnet pairs and scale_min_paired_share of the
    # detections in them: their long side then measures the section) within scale_accept of the
    # training size; up to scale_refine_rounds measurements at the estimate correct it while off by
    # more than scale_refine_tolerance (log ratio); where the model pairs under scale_bracket_below of
    # its detections there, scale_bracket_step times larger and smaller are tried and one pairing
    # scale_bracket_gain more of them (with as many pairs per wafer area) is taken; a trial with fewer
    # than scale_min_detections detections measures nothing
    scale_candidates: tuple[float, ...] = (1.0, 0.5, 2.0, 0.3)
    # (0.6-1.67: the measurements refined at the estimate correct the rest; 0.75-1.33 made three more
    # trials on most wafers, about 2.5 s, and once ended 2x off: BENCHMARKS.md)
    scale_accept: tuple[float, float] = (0.6, 1.67)
    # ... and where the model pairs at least this share of its detections there (else the next candidates
    # are tried too and the best evidence wins: gray alone 80 % -> 93 % of the estimates within 15 %,
    # worst 0.40 -> 0.82 of the truth; bench_scale.py)
    scale_accept_paired_share: float = 0.5
    scale_min_pairs: int = 3
    scale_min_paired_share: float = 0.3
    scale_refine_rounds: int = 2
    scale_refine_tolerance: float = 0.05
    scale_bracket_below: float = 0.85
    scale_bracket_step: float = 1.15
    scale_bracket_gain: float = 0.1
    # ... or one pairing at least as large a share and this many times the pairs per source area (a model
    # adapted to the alien benchmark wafer: 52 % -> 61 % paired, 1.6 x the pairs per area at 1.15 x
    # the labelled size, where it finds 59 sections right instead of 37; BENCHMARKS.md)
    scale_bracket_pairs_gain: float = 1.3
    # with a fluorescence image an estimated scale is multiplied by this (1: the estimate as it is): read
    # 1.2 x larger than the training size, the bundled model finds more sections on the simulated wafers
    # (section F1 mean of nine 0.982 -> 0.989, held-out four 0.977 -> 0.989; rendered real layouts
    # 0.986 / 1.000 -> 0.983 / 0.998) and the real picture's tissue 4.3 px off instead of 8.7; gray alone
    # it finds fewer (mean of nine 0.886 -> 0.853): BENCHMARKS.md, session 8
    fluo_scale_factor: float = 1.2
    scale_min_detections: int = 4
    # which way round the gray image is read (:func:`sectionseg.detection.scale.choose_polarity`): where
    # the model pairs under scale_bracket_below of its detections at the scale, the sample tiles are
    # seen again dark for light, and that is kept where it pairs polarity_gain times as many detections
    # (per wafer area) in at least scale_min_pairs pairs (bench wafers: the right way pairs 2-10 times
    # as many as the wrong one; sections lighter than the wafer 1.5-2.7 times more inverted)
    polarity_gain: float = 1.3
    # a second, gray-only pass for magnets found alone (:mod:`sectionseg.detection.gray_look`): run when
    # at least gray_look_min_lone magnets and gray_look_share of all magnets found have no tissue; a
    # gray-only section whose part covers a lone magnet with an IoU of gray_look_min_iou gives the tissue
    gray_look_min_lone: int = 3
    gray_look_share: float = 0.25
    gray_look_min_iou: float = 0.5
    steps: tuple[str, ...] = field(default=STEPS)

    def __post_init__(self) -> None:
        unknown = [s for s in self.steps if s not in STEPS]
        if unknown:
            raise ValueError(f"unknown repair steps {unknown}; known: {', '.join(STEPS)}")

    def runs(self, step: str) -> bool:
        """Whether the step named ``step`` is switched on."""
        return step in self.steps

    def without(self, *steps: str) -> RepairSettings:
        """A copy with ``steps`` switched off."""
        return dataclasses.replace(self, steps=tuple(s for s in self.steps if s not in steps))

    def record(self) -> dict[str, Any]:
        """JSON-ready dict (what ``report.json`` keeps)."""
        out = dataclasses.asdict(self)
        out["steps"] = {s: s in self.steps for s in STEPS}
        return out
