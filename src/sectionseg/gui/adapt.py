"""Fine-tuning on the labelled sections, then detection with the adapted model, as background steps
(no Qt: a generator of progress that the labelling widget runs in a worker thread).

Each step is the command line tool in a child process (``python -m sectionseg finetune ...``, then
``python -m sectionseg detect --model RUN/model.pt --out RUN/detection``), so the viewer stays
responsive, torch never loads into the GUI process and a failure is the command's own one-line
error (:class:`CommandFailed`). :func:`finetune_and_detect` yields ``(step, steps, message)`` while they run
(the message:
the step, its seconds and the child's last output line) and returns the new detection folder, or
None when cancelled. Each child's output goes to ``RUN/proofread_<step>.log`` (stdout) and
``.err`` (stderr).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


class CommandFailed(Exception):
    """A step's command failed; the message is its last error line. (Not a RuntimeError: napari's
    generator workers take a RuntimeError for a deleted worker and swallow it.)"""


#: seconds between progress messages while a step runs
TICK = 0.5
#: seconds a cancelled child gets to end before it is killed
STOP_WAIT = 5.0


def commands(
    gray,
    labels,
    out,
    *,
    fluo=None,
    device: str = "cpu",
    epochs: int | None = None,
    python: str = sys.executable,
    finetune_args=(),
    detect_args=(),
) -> list[tuple[str, list[str]]]:
    """The two command lines: ``(name, argv)``; ``finetune_args`` / ``detect_args``: more options of
    each command (e.g. ``--base-model``, ``--synthetic``; ``--tile-size``)."""
    base = [python, "-m", "sectionseg"]
    fluo_args = [] if fluo is None else ["--fluo", os.fspath(fluo)]
    out = Path(out)
    finetune = base + [
        "finetune",
        os.fspath(gray),
        *fluo_args,
        "--labels",
        os.fspath(labels),
        "--out",
        os.fspath(out),
        "--device",
        device,
        "--no-progress",
    ]
    if epochs is not None:
        finetune += ["--epochs", str(int(epochs))]
    finetune += [os.fspath(a) for a in finetune_args]
    detect = base + [
        "detect",
        os.fspath(gray),
        *fluo_args,
        "--model",
        os.fspath(out / "model.pt"),
        "--out",
        os.fspath(out / "detection"),
        "--device",
        device,
        "--no-progress",
    ]
    detect += [os.fspath(a) for a in detect_args]
    return [("fine-tuning", finetune), ("detection", detect)]


def _last_line(*paths: Path) -> str:
    """The last non-empty line of the first of ``paths`` that has one ("" if none)."""
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return ""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def finetune_and_detect(
    gray,
    labels,
    out,
    *,
    fluo=None,
    device: str = "cpu",
    epochs: int | None = None,
    python: str = sys.executable,
    env=None,
    cancel=None,
    finetune_args=(),
    detect_args=(),
):
    """Run fine-tuning then detection (see the module doc); yields ``(step, steps, message)``,
    returns the detection folder, or None once ``cancel`` (a :class:`threading.Event`) is set: the
    running child is stopped. A child is also stopped when the generator is closed.
    :class:`CommandFailed` with the command's last error line (its stderr) on failure."""
    steps = commands(
        gray,
        labels,
        out,
        fluo=fluo,
        device=device,
        epochs=epochs,
        python=python,
        finetune_args=finetune_args,
        detect_args=detect_args,
    )
    Path(out).mkdir(parents=True, exist_ok=True)
    for k, (name, argv) in enumerate(steps):
        t0 = time.monotonic()
        stem = Path(out) / f"proofread_{name.replace('-', '')}"
        log_path, err_path = stem.with_suffix(".log"), stem.with_suffix(".err")
        with open(log_path, "w", encoding="utf-8") as log, open(err_path, "w", encoding="utf-8") as err:
            proc = subprocess.Popen(argv, stdout=log, stderr=err, env=env)
            try:
                while proc.poll() is None:
                    if cancel is not None and cancel.is_set():
                        _stop(proc)
                        yield k, len(steps), f"{name} cancelled"
                        return None
                    last = _last_line(log_path, err_path)
                    yield k, len(steps), f"{name}: {time.monotonic() - t0:.0f} s" + (f"  {last}" if last else "")
                    time.sleep(TICK)
            finally:  # the worker was stopped or the generator closed: stop the child too
                _stop(proc)
        if proc.returncode != 0:
            last = _last_line(err_path, log_path)
            raise CommandFailed(last or f"{name} failed (exit code {proc.returncode})")
        yield k + 1, len(steps), f"{name} done in {time.monotonic() - t0:.0f} s"
    return Path(out) / "detection"
