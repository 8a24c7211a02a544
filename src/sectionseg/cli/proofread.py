"""``sectionseg proofread``: check and fix a wafer's sections (and label some) in napari."""

from __future__ import annotations

import argparse
from pathlib import Path

from sectionseg.cli._checks import check_input_file
from sectionseg.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "proofread",
        help="check, fix and label a wafer's sections in napari (needs sectionseg[gui])",
        description="Open napari with the wafer (lazily, multiscale), its fluorescence and the sections "
        "of DIR (a detect output folder, a MagC pair or a .magc; a missing or empty "
        "folder starts with none). Colours and a table sorted by doubt show what needs a "
        "look; corners can be moved, parts and sections deleted, added (4 clicks) and "
        "re-paired, with undo. Save writes what detect writes into DIR, with a record of "
        "the edits in report.json; sections marked labelled also go to "
        "DIR/labels.labelme.json for 'finetune --labels'. Needs the optional GUI extra: "
        "pip install 'sectionseg[gui]'.",
    )
    p.add_argument("gray", help="brightfield (gray) wafer image: TIFF (memory-mapped), PNG or JPEG")
    p.add_argument("dir", help="detection folder (detect --out), MagC pair folder or .magc file; created on save")
    p.add_argument("--fluo", help="fluorescence image of the same pixels (a second layer)")
    p.set_defaults(func=run, check=check_args)


def check_args(args) -> None:
    from sectionseg.gui import GUI_EXTRA_HINT, gui_available

    if not gui_available():
        raise InputError(GUI_EXTRA_HINT)
    check_input_file(args.gray, "image file")
    if args.fluo is not None:
        check_input_file(args.fluo, "image file")
    d = Path(args.dir)
    if d.exists() and not d.is_dir() and not d.name.lower().endswith((".magc", ".json", ".txt")):
        raise InputError("expected a detection folder, a MagC pair or a .magc file", d)


def run(args: argparse.Namespace) -> int:
    from sectionseg.gui.launch import launch

    return launch(args.gray, args.dir, fluo=args.fluo)
