"""Arguments shared by the commands that read a labelled wafer (``tiles``, ``synth``)."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def add_labelled_wafer_arguments(p, image_metavar: str) -> None:
    """Add IMAGE, --labels, --fluo and --scale to parser ``p``."""
    p.add_argument("image", metavar=image_metavar,
                   help="8-bit RGB wafer image (gray, gray, fluo), or the gray image when --fluo is given")
    p.add_argument("--labels", required=True, help="ground truth of the wafer (MagC pair, .magc, labelme, COCO)")
    p.add_argument("--fluo", help="fluorescence image, composed with the gray image as (gray, gray, fluo)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply label coordinates, e.g. 1/3 for full-resolution labels on a downsized image")
    p.add_argument("--overwrite", action="store_true",
                   help="replace what OUT holds (without it a folder holding files is refused)")


def check_labelled_wafer_arguments(args) -> None:
    """The input files exist and OUT is a writable folder that is empty unless --overwrite."""
    from sectionseg.cli._checks import check_empty_or_overwrite, check_image_file, check_input_path, check_output_folder

    check_image_file(args.image, "image file")
    if args.fluo is not None:
        check_image_file(args.fluo, "image file")
    check_input_path(args.labels, "label file")
    check_output_folder(args.out)
    check_empty_or_overwrite(args.out, args.overwrite)


def load_labelled_wafer(args):
    """Return ``(rgb, normalisation record, sections)`` for the arguments added above; a warning
    names the labels that lie outside the image."""
    from sectionseg.datasets.samples import load_wafer_rgb
    from sectionseg.formats import read_sections

    rgb, record = load_wafer_rgb(args.image, args.fluo)
    sections = read_sections(args.labels, scale=args.scale)
    warn_outside(sections, rgb.shape[1], rgb.shape[0], args.labels)
    return rgb, record, sections


def warn_outside(sections, width: int, height: int, path) -> int:
    """Log a warning when sections reach outside the ``width x height`` image (they are clipped or
    dropped); return how many do."""
    import numpy as np

    outside = 0
    for s in sections:
        pts = np.concatenate([p.polygon for p in s.parts().values()])
        outside += bool(pts[:, 0].min() < 0 or pts[:, 1].min() < 0 or pts[:, 0].max() > width
                        or pts[:, 1].max() > height)
    if outside:
        log.warning("%s: %d of %d labelled sections reach outside the %dx%d px image and are clipped or "
                    "dropped (labels of another image size? see --scale)", path, outside, len(sections),
                    width, height)
    return outside
