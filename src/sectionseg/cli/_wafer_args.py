"""Arguments shared by the commands that read a labelled wafer (``tiles``, ``synth``)."""

from __future__ import annotations


def add_labelled_wafer_arguments(p, image_metavar: str) -> None:
    """Add IMAGE, --labels, --fluo and --scale to parser ``p``."""
    p.add_argument(
        "image",
        metavar=image_metavar,
        help="8-bit RGB wafer image (gray, gray, fluo), or the gray image when --fluo is given",
    )
    p.add_argument("--labels", required=True, help="ground truth of the wafer (MagC pair, .magc, labelme, COCO)")
    p.add_argument("--fluo", help="fluorescence image, composed with the gray image as (gray, gray, fluo)")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply label coordinates, e.g. 1/3 for full-resolution labels on a downsized image",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace what OUT holds (without it a folder holding files is refused)"
    )


def check_labelled_wafer_arguments(args) -> None:
    """The input files exist and OUT is a writable folder that is empty unless --overwrite."""
    from sectionseg.cli._checks import check_empty_or_overwrite, check_image_file, check_input_path, check_output_folder

    check_image_file(args.image, "image file")
    if args.fluo is not None:
        check_image_file(args.fluo, "image file")
    check_input_path(args.labels, "label file")
    check_output_folder(args.out)
    check_empty_or_overwrite(args.out, args.overwrite)
