"""Argument checks shared by the commands; each raises InputError with one clear line.

:data:`OPTION_RANGES` is the one place that says which values every numeric option takes;
:func:`check_options` applies it to the parsed arguments of any command before the command runs
(so a bad value is refused before any work and before torch is imported). Checks that relate
several options, or need the input files, live in the commands' own ``check`` functions, built
from the helpers here (:func:`check_output_folder`, :func:`check_output_file`,
:func:`check_input_file`, :func:`check_memory` ...). None of them imports anything heavy or
writes anything.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sectionseg.errors import InputError

SEED_MAX = 2**32 - 1
#: file systems that cannot hold outputs, whatever their permissions say
PSEUDO_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


@dataclass(frozen=True)
class Range:
    """Allowed values of an option: ``lo <= v <= hi`` (``<`` on an open side), always finite."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)

    def __str__(self) -> str:
        lo = "-inf" if self.lo is None else _num(self.lo)
        hi = "inf" if self.hi is None else _num(self.hi)
        return f"{'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


POSITIVE_SCALE = Range(0, 1000, lo_open=True)

#: ``{option dest: Range}`` for every command, and ``{(command, dest): Range}`` where a command's
#: option of the same name means something else. Options of several values (``nargs``) are checked
#: value by value. (The simulator's sizes and counts are its own: ``simulation.wafer.check_request``.)
OPTION_RANGES: dict = {
    "seed": Range(0, SEED_MAX),
    "score_threshold": Range(0, 1),
    "mask_threshold": Range(0, 1, lo_open=True, hi_open=True),
    "batch_size": Range(1, 64),
    "workers": Range(1, 256),
    "local_workers": Range(1, 1024),
    "threads_per_wafer": Range(1, 1024),
    "proposals": Range(1, 5000),
    "tile_size": Range(64, 4096),
    "overlap": Range(0, 4096),
    "section_size": Range(8, 20000),
    "pair_scale": POSITIVE_SCALE,
    "scale": POSITIVE_SCALE,
    "layout_scale": POSITIVE_SCALE,
    "max_side": Range(16, 100000),
    "fill": Range(0, 1),
    "image_size": Range(1, 1000000),
    "size": Range(16, 8192),
    "min_area": Range(0, 1e9),
    "count": Range(0, 1000000),
    "sections_per_image": Range(0, 1000),
    "margin": Range(1, 1000),
    "wafers": Range(1, 10000),
    "wafer_size": Range(64, 100000),
    "synthetic": Range(0, 10000000),
    "split": Range(0, 10000000),
    "fractions": Range(0, 1),
    "patch_size": Range(16, 8192),
    "jobs": Range(1, 256),
    "epochs": Range(1, 100000),
    "lr": Range(0, 10, lo_open=True),
    "max_iters_per_epoch": Range(0, 10**9),
    "val": Range(0, 100000),
    ("demo", "size"): Range(256, 20000),
    ("dataset", "scale"): Range(0, 4, lo_open=True),
    ("finetune", "image_size"): Range(64, 4096),
    ("finetune", "synthetic"): Range(1, 1000000),
    ("finetune", "max_iters_per_epoch"): Range(1, 10**9),
    ("order", "first"): Range(0, 10**7),
    ("order", "bead_sigma"): Range(0, 100, lo_open=True),
    ("order", "threshold"): Range(0, 1000, lo_open=True),
    ("order", "candidates"): Range(1, 10000),
    ("simulate", "bead_damaged"): Range(0, 0.5),
    ("simulate", "bead_missing"): Range(0, 0.5),
    ("simulate", "overview_beads"): Range(0, 1000, lo_open=True),
}


def option_range(command: str, dest: str) -> Range | None:
    """The range of option ``dest`` of ``command`` (None: not a checked option)."""
    return OPTION_RANGES.get((command, dest), OPTION_RANGES.get(dest))


def flag(dest: str) -> str:
    """``--tile-size`` for ``tile_size``."""
    return "--" + dest.replace("_", "-")


def check_options(args) -> None:
    """Check every option of ``args`` (parsed, with ``command``) against :data:`OPTION_RANGES`."""
    command = getattr(args, "command", "")
    for dest, value in vars(args).items():
        rng = option_range(command, dest)
        if rng is None or value is None or isinstance(value, (bool, str, os.PathLike)):
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(v, (int, float)) or not rng.contains(float(v)):
                raise InputError(f"{flag(dest)} must be in {rng}, got {v}")


# ----------------------------------------------------------------------------- devices
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def check_device(device: str) -> None:
    """``cpu``, ``cuda`` or ``cuda:N``; a CUDA device must be available (torch is imported only then)."""
    if not _DEVICE.match(str(device)):
        raise InputError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    if str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: no CUDA device is available")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: only {torch.cuda.device_count()} CUDA devices")


# ----------------------------------------------------------------------------- inputs
def check_input_file(path, what: str = "file") -> Path:
    """``path`` must be an existing, readable file; returns it as a Path."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"no such {what}", p)
    if p.is_dir():
        raise InputError(f"{what} expected, but this is a folder", p)
    if not os.access(p, os.R_OK):
        raise InputError(f"{what} is not readable (permissions)", p)
    return p


def check_image_file(path, what: str = "image file") -> Path:
    """An image file, or a Zarr / OME-Zarr folder (read by :func:`sectionseg.io.images.read_image`)."""
    from sectionseg.io.images import is_zarr  # numpy + tifffile only

    if is_zarr(path):
        if not os.access(path, os.R_OK | os.X_OK):
            raise InputError(f"{what} is not readable (permissions)", path)
        return Path(path)
    return check_input_file(path, what)


def check_input_path(path, what: str = "file or folder") -> Path:
    """``path`` (a file, or a folder such as a MagC pair) must exist."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"no such {what}", p)
    return p


def check_model_file(path) -> Path:
    """``--model FILE`` or, when None, the bundled model: an existing file (read later)."""
    if path is None:
        from sectionseg.model import default_model_path  # torch-free (sectionseg.model.files)

        bundled = default_model_path()
        if not bundled.is_file():
            raise InputError("the bundled model is missing from this installation; pass --model FILE", bundled)
        return bundled
    return check_input_file(path, "model file")


def check_dataset_folder(path) -> Path:
    """A dataset folder (with ``manifest.json``)."""
    p = Path(path)
    if not p.is_dir():
        raise InputError("no such dataset folder" if not p.exists() else "dataset folder expected, not a file", p)
    return p


# ----------------------------------------------------------------------------- outputs
def _nearest_existing(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(folder: Path, shown: Path) -> None:
    """Create and delete a file in ``folder``: the only test that a file system (read-only mounts,
    /proc, quotas, root squash...) really takes a new file; ``shown`` names the output in errors."""
    for root in PSEUDO_ROOTS:
        if folder == root or root in folder.parents:
            raise InputError(f"cannot write under {root} (a system file system)", shown)
    try:
        fd, probe = tempfile.mkstemp(prefix=".sectionseg-probe-", dir=folder)
    except OSError as exc:
        raise InputError(f"cannot write in {folder}: {exc.strerror or exc}", shown) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_output_folder(out) -> Path:
    """The output folder may exist (as a folder) or be creatable, and must take new files; returns
    it as a Path. Nothing is left behind."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", out)
    base = _nearest_existing(out)
    if not base.is_dir():
        raise InputError(f"cannot create the output folder: {base} is a file", out)
    _probe_writable(base, out)
    return out


def check_output_file(path, suffixes: tuple[str, ...] | None = None) -> Path:
    """The output file may exist (as a file, replaced) or be creatable in a writable folder;
    ``suffixes``: the accepted extensions (lower case, with the dot)."""
    p = Path(path)
    if p.is_dir():
        raise InputError("output path is a folder; a file name is expected", p)
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise InputError(f"output file must end in {', '.join(suffixes)}, got {p.suffix or 'no extension'!r}", p)
    base = _nearest_existing(p.parent)
    if not base.is_dir():
        raise InputError(f"cannot create the output's folder: {base} is a file", p)
    _probe_writable(base, p)
    from sectionseg.io.atomic import remove_stale_temps

    if p.parent.is_dir():
        remove_stale_temps(p.parent)
    return p


def check_empty_or_overwrite(out, overwrite: bool, what: str = "output folder") -> None:
    """A folder holding files is refused unless ``overwrite`` (outputs of two runs never mix)."""
    out = Path(out)
    if out.is_dir() and not overwrite and any(not p.name.startswith(".sectionseg") for p in out.iterdir()):
        raise InputError(
            f"the {what} is not empty; pass --overwrite to replace what it holds, or choose another folder", out
        )


# ----------------------------------------------------------------------------- memory
from sectionseg.io.memory import available_memory, check_memory  # noqa: E402,F401 - part of this API
