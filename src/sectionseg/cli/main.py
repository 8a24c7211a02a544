"""Entry point of the ``sectionseg`` console command.

Exit codes: 0 done; 2 a bad argument or input file (one line naming it, nothing written); 1 the
machine ran out of something (memory, disk space, a killed worker: one line) or a bug (traceback);
130 interrupted by Ctrl-C, 143 stopped by SIGTERM (one line; outputs are left as they were or
complete, see :mod:`sectionseg.io.outset`).

Every command registers ``func`` (the work) and may register ``check`` (argument and input-file
checks that import nothing heavy and write nothing); :func:`main` runs the shared range checks of
:mod:`sectionseg.cli._checks`, then ``check``, then ``func``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import importlib
import logging
import os
import signal
import sys

from sectionseg import __version__
from sectionseg.errors import InputError, ResourceError
from sectionseg.io.interrupts import blocked_signals

# Order shown in --help. Each name (``-`` read as ``_``) is a module of this package with a ``register`` function
# (which may add aliases: ``export`` for ``export-model``).
COMMANDS = (
    "demo",
    "detect",
    "detect-batch",
    "simulate",
    "convert",
    "show",
    "tiles",
    "synth",
    "dataset",
    "train",
    "finetune",
    "evaluate",
    "export-model",
    "order",
    "proofread",
)

#: OSError numbers that say the machine (disk, permissions, quota), not sectionseg, is at fault
_PLACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENAMETOOLONG}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every clean-up that handles Ctrl-C handles it too."""


class _OneLineParser(argparse.ArgumentParser):
    """argparse's own errors (unknown option, a value outside ``choices``...) as one line, exit 2,
    like every other user error of the program (argparse prints the usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="sectionseg",
        description="Find ultrathin serial sections (tissue + magnetic part) on MagC wafer images.",
    )
    parser.add_argument("--version", action="version", version=f"sectionseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_OneLineParser)
    for name in COMMANDS:
        importlib.import_module(f"sectionseg.cli.{name.replace('-', '_')}").register(sub)
    return parser


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_stops():
    """SIGTERM raises :class:`Terminated` in the main thread while the command runs."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    name = "sectionseg"
    try:
        with _sigterm_stops():
            parser = build_parser()
            args = parser.parse_args(argv)
            name = f"sectionseg {args.command}"
            logging.basicConfig(
                level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s"
            )
            return _run(args)
    except BrokenPipeError:  # the reader of our output went away (``| head``): not an error of ours
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Terminated:
        print(f"{name}: stopped (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130


def _run(args) -> int:
    """Checks, then the command; user and machine errors become one line and an exit code."""
    from sectionseg.cli._checks import check_options

    def fail(message: str, code: int) -> int:
        one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
        print(f"sectionseg {args.command}: error: {one_line}", file=sys.stderr)
        return code

    try:
        check_options(args)
        if getattr(args, "check", None) is not None:
            args.check(args)
        code = args.func(args)
    except InputError as exc:
        return fail(str(exc), 2)
    except ResourceError as exc:
        return fail(str(exc), 1)
    except MemoryError:
        return fail(
            "out of memory: the machine has too little free memory for this run (a smaller "
            "image, --tile-size, --workers or --batch-size needs less)",
            1,
        )
    except OSError as exc:
        if exc.errno not in _PLACE_ERRNOS:
            raise
        where = exc.filename if exc.filename is not None else ""
        return fail(f"{where}{': ' if where else ''}{exc.strerror or exc}", 1)
    return int(code or 0)


def console() -> None:
    """The ``sectionseg`` program: :func:`main`, then a prompt exit.

    The interpreter's own shutdown is skipped (``os._exit`` once the exit functions ran and the
    streams are flushed):
    every output is closed and in place when :func:`main` returns, tearing torch down takes about a
    second, and a Ctrl-C during that second would kill the process without a word."""
    try:
        code = main()
    except KeyboardInterrupt:  # after the command, before the exit
        print("sectionseg: interrupted", file=sys.stderr)
        code = 130
    with blocked_signals():
        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()  # what registered itself (logging, multiprocessing's semaphores) runs
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
