"""Entry point of the ``sectionseg`` console command."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sectionseg import __version__
from sectionseg.errors import InputError

# Order shown in --help. Each name is a module of this package with a ``register`` function.
COMMANDS = ("demo", "detect", "simulate", "convert", "show", "tiles", "synth", "dataset", "train", "finetune",
            "evaluate", "export", "order")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sectionseg",
        description="Find ultrathin serial sections (tissue + magnetic part) on MagC wafer images.",
    )
    parser.add_argument("--version", action="version", version=f"sectionseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"sectionseg.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    try:
        code = args.func(args)
    except InputError as exc:
        print(f"sectionseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
