"""Fine-tuning on the labelled sections, then detection with the adapted model, as background steps
(no Qt: a generator of progress that the labelling widget runs in a worker thread).

Each step is the command line tool in a child process (``python -m sectionseg finetune ...``, then
``python -m sectionseg detect --model RUN/model.pt --out RUN/detection``), so the viewer stays
responsive, torch never loads into the GUI process and a failure is the command's own one-line
error. :func:`finetune_and_detect` yields ``(step, steps, message)`` while they run and returns the
new detection folder.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

#: seconds between progress messages while a step runs
TICK = 0.5


def commands(gray, labels, out, *, fluo=None, device: str = "cpu", epochs: int | None = None,
             python: str = sys.executable) -> list[tuple[str, list[str]]]:
    """The two command lines: ``(name, argv)``."""
    base = [python, "-m", "sectionseg"]
    fluo_args = [] if fluo is None else ["--fluo", os.fspath(fluo)]
    out = Path(out)
    finetune = base + ["finetune", os.fspath(gray), *fluo_args, "--labels", os.fspath(labels), "--out",
                       os.fspath(out), "--device", device, "--no-progress"]
    if epochs is not None:
        finetune += ["--epochs", str(int(epochs))]
    detect = base + ["detect", os.fspath(gray), *fluo_args, "--model", os.fspath(out / "model.pt"),
                     "--out", os.fspath(out / "detection"), "--device", device, "--no-progress"]
    return [("fine-tuning", finetune), ("detection", detect)]


def finetune_and_detect(gray, labels, out, *, fluo=None, device: str = "cpu", epochs: int | None = None,
                        python: str = sys.executable, env=None):
    """Run fine-tuning then detection (see the module doc); yields ``(step, steps, message)``,
    returns the detection folder. RuntimeError with the command's last error line on failure."""
    steps = commands(gray, labels, out, fluo=fluo, device=device, epochs=epochs, python=python)
    Path(out).mkdir(parents=True, exist_ok=True)
    for k, (name, argv) in enumerate(steps):
        t0 = time.monotonic()
        log_path = Path(out) / f"proofread_{name.replace('-', '')}.log"
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                while proc.poll() is None:
                    yield k, len(steps), f"{name}: {time.monotonic() - t0:.0f} s"
                    time.sleep(TICK)
            except GeneratorExit:  # the worker was stopped: stop the child too
                proc.terminate()
                proc.wait()
                raise
        if proc.returncode != 0:
            lines = [line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
            raise RuntimeError(lines[-1] if lines else f"{name} failed (exit code {proc.returncode})")
        yield k + 1, len(steps), f"{name} done in {time.monotonic() - t0:.0f} s"
    return Path(out) / "detection"
