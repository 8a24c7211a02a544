"""``sectionseg show IMAGE ANNOTATIONS --out overlay.png``: draw annotations over an image."""

from __future__ import annotations

from sectionseg.formats import read_sections
from sectionseg.io.images import IMAGE_WRITE_SUFFIXES, read_image, write_image
from sectionseg.visualize import draw_overlay


def register(sub) -> None:
    p = sub.add_parser(
        "show",
        help="draw annotations over an image (tissue, magnet, dummy, indices)",
        description="Draw the sections of ANNOTATIONS (any supported format) over IMAGE "
        "and write a PNG. Tissue: cyan, magnet: orange, dummy: magenta.",
    )
    p.add_argument("image", help="gray, fluorescence or RGB image (.tif, .png, .jpg)")
    p.add_argument("annotations", help="MagC pair (folder or file), .magc, labelme or COCO .json")
    p.add_argument("--out", required=True, help="output image: .png (or .jpg, .tif)")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply annotation coordinates (e.g. 0.3333 for full-resolution MagC files)",
    )
    p.add_argument("--max-side", type=int, default=2000, help="downsample so the longest side is at most this")
    p.add_argument("--fill", type=float, default=0.0, help="opacity of part fills (0 = outlines only)")
    p.add_argument("--no-labels", action="store_true", help="do not write section indices")
    p.set_defaults(func=run, check=check_args)


def check_args(args) -> None:
    """The input files exist; OUT is an image name (its extension tells the format) in a writable place."""
    from sectionseg.cli._checks import check_image_file, check_input_path, check_output_file

    check_image_file(args.image, "image file")
    check_input_path(args.annotations, "annotation file or folder")
    check_output_file(args.out, IMAGE_WRITE_SUFFIXES)


def run(args) -> int:
    from sectionseg.workflows.labelled import warn_outside

    image = read_image(args.image, expect_gray=False)
    sections = read_sections(args.annotations, scale=args.scale)
    warn_outside(sections, image.shape[1], image.shape[0], args.annotations)
    picture = draw_overlay(image, sections, max_side=args.max_side, labels=not args.no_labels, fill_alpha=args.fill)
    write_image(args.out, picture)
    print(f"{len(sections)} sections drawn over {args.image} -> {args.out}")
    return 0
