"""The serial order of a folder of bead images (``sectionseg order``), as one call."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sectionseg.errors import InputError
from sectionseg.serial.settings import OrderSettings

if TYPE_CHECKING:
    from sectionseg.serial.order import OrderResult

log = logging.getLogger(__name__)


def order_bead_folder(
    beads_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    settings: OrderSettings | None = None,
    sections: str | os.PathLike | None = None,
    first: int | None = None,
    pictures: str = "doubtful",
) -> tuple[OrderResult, Path | None]:
    """Find the serial (cutting) order of the sections from images of their fluorescent beads.

    Parameters
    ----------
    beads_dir : path
        MagC's folder layout (``section_NNNN/section_NNNN_channel_CCC_tileId_00-00-mag.tif``, one or
        two channels) or a plain folder of one image per section
        (:func:`sectionseg.serial.find_bead_images`).
    out_dir : path
        Output folder (created): ``serial_order.txt`` (section ids, one a line), ``order_report.json``
        (links, costs, doubtful links), distance matrix and pictures
        (:func:`sectionseg.serial.report.write_order_outputs`).
    settings : OrderSettings, optional
        Bead detection and matching settings (checked; default :class:`~sectionseg.serial.OrderSettings`).
    sections : path, optional
        A detection folder (its ``sections.magc``) or ``.magc`` file whose sections are the folder's
        ids: its serial order is replaced by the one found, everything else kept.
    first : int, optional
        Section id to start the order from (default: the path end with the smaller id; beads cannot
        tell the cutting direction).
    pictures : str
        Which links get a side-by-side picture (:data:`sectionseg.serial.report.PICTURES`).

    Returns
    -------
    (OrderResult, Path or None)
        The order (:func:`sectionseg.serial.order_sections`) and the ``.magc`` file written, if any.

    Raises
    ------
    InputError
        Fewer than 2 sections with images, channel images of different sizes, ids that are not the
        ``.magc``'s, or no two sections aligned (not bead images, or bead settings far off).
    """
    from sectionseg.io.images import read_image
    from sectionseg.serial import find_bead_images, order_sections, section_beads
    from sectionseg.serial.magc import check_ids, magc_path, set_serial_order
    from sectionseg.serial.report import write_order_outputs

    settings = (settings or OrderSettings()).checked()
    files = find_bead_images(beads_dir)
    if len(files) < 2:
        raise InputError(f"{len(files)} section with bead images; an order needs at least 2", beads_dir)
    if sections is not None:
        check_ids(sections, files)

    def load(section_id: int):
        images = [read_image(path) for _, path in sorted(files[section_id].items())]
        if len({im.shape for im in images}) > 1:
            raise InputError(
                f"section {section_id}: its channel images differ in size",
                next(iter(files[section_id].values())).parent,
            )
        return images

    beads = {}
    for sid in files:
        beads[sid] = section_beads(load(sid), settings)
        if len(beads[sid]) == 0:
            log.warning("%s: no beads found", next(iter(files[sid].values())))
    result = order_sections(beads, settings, first=first)
    if not any(m.ok for m in result.matches.values()):
        strong = sorted(b.n_strong for b in beads.values())
        raise InputError(
            f"no two sections could be aligned (median {strong[len(strong) // 2]} beads found per "
            f"section): are these bead images? try --bead-sigma or --threshold",
            beads_dir,
        )
    extra = {"beads_dir": str(beads_dir), "channels": sorted(next(iter(files.values())))}
    written = None
    if sections is not None:
        extra["magc_updated"] = str(magc_path(sections))
    write_order_outputs(out_dir, result, settings=settings, load_images=load, pictures=pictures, extra=extra)
    if sections is not None:
        written = set_serial_order(sections, result.order)
    return result, written
