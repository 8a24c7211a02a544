"""Arguments shared by the commands that read a labelled wafer (``tiles``, ``synth``)."""
from __future__ import annotations


def add_labelled_wafer_arguments(p, image_metavar: str) -> None:
    """Add IMAGE, --labels, --fluo and --scale to parser ``p``."""
    p.add_argument("image", metavar=image_metavar,
                   help="8-bit RGB wafer image (gray, gray, fluo), or the gray image when --fluo is given")
    p.add_argument("--labels", required=True, help="ground truth of the wafer (MagC pair, .magc, labelme, COCO)")
    p.add_argument("--fluo", help="fluorescence image, composed with the gray image as (gray, gray, fluo)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply label coordinates, e.g. 1/3 for full-resolution labels on a downsized image")


def load_labelled_wafer(args):
    """Return ``(rgb, normalisation record, sections)`` for the arguments added above."""
    from sectionseg.datasets.samples import load_wafer_rgb
    from sectionseg.formats import read_sections

    rgb, record = load_wafer_rgb(args.image, args.fluo)
    return rgb, record, read_sections(args.labels, scale=args.scale)
