"""Section order retrieval (MagC "SOR"): which section came after which, from fluorescent-bead images.

Consecutive ~50 nm sections cut through the same ~1 um beads, so they show nearly the same bead
pattern, turned, shifted and sometimes mirrored. One module per step:

- :mod:`.folder`: find the bead images (MagC's ``section_NNNN/..._channel_CCC_tileId_00-00-mag.tif``
  or a plain folder);
- :mod:`.beads`: bead centres and brightness per image;
- :mod:`.constellations`: rotation/flip-invariant 4-bead constellations, candidate pairs by shared
  constellations (no n^2 alignment);
- :mod:`.match`: RANSAC alignment of a candidate pair and its cost;
- :mod:`.path`: the cheapest open path (LKH via ``elkai``);
- :mod:`.doubts`: links a person should check;
- :mod:`.order`: the chain (:func:`order_sections`); :mod:`.report`: JSON and pictures;
- :mod:`.metrics`: a found order against the truth; :mod:`.settings`: every threshold;
- :mod:`.overview`: without bead images, the same chain on the magnets cut out of the fluorescence
  overview, when the overview resolves their beads (``detect --serial-order overview``).
"""

from sectionseg.serial.beads import Beads, detect_beads, merge_channels
from sectionseg.serial.folder import find_bead_images
from sectionseg.serial.metrics import order_metrics, wrong_links
from sectionseg.serial.order import OrderResult, order_sections, section_beads
from sectionseg.serial.settings import OrderSettings

__all__ = [
    "Beads",
    "detect_beads",
    "merge_channels",
    "find_bead_images",
    "order_metrics",
    "wrong_links",
    "OrderResult",
    "order_sections",
    "section_beads",
    "OrderSettings",
]
