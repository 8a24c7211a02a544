"""Ctrl-C on ``sectionseg detect``: at any moment it stops promptly with exit 130 and one line,
no worker outlives it, and the output folder holds a whole set (the previous one or the new one)."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sectionseg.cli.main import main
from sectionseg.export.outputs import OUTPUT_NAMES
from sectionseg.io.outset import set_entries

REPO = Path(__file__).resolve().parents[1]
TRIALS = 6  # random moments; the last one sends SIGTERM instead (a batch system stopping the job)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="POSIX signals"),
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny untrained model and a wafer of ~20 tiles: a run of a few seconds, with worker processes."""
    import torch

    from sectionseg.model import build_model, load_config, save_model

    root = tmp_path_factory.mktemp("interrupt")
    torch.manual_seed(0)
    cfg = load_config("tiny")
    save_model(root / "tiny.pt", build_model(cfg.model), cfg)
    assert (
        main(
            [
                "simulate",
                "--out",
                str(root / "w"),
                "--seed",
                "5",
                "--width",
                "1000",
                "--height",
                "700",
                "--sections",
                "12",
            ]
        )
        == 0
    )
    return root


def _command(root: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sectionseg",
        "detect",
        str(root / "w" / "gray.tif"),
        "--fluo",
        str(root / "w" / "fluo.tif"),
        "--out",
        str(out),
        "--model",
        str(root / "tiny.pt"),
        "--no-progress",
        "--section-size",
        "48",
        "--tile-size",
        "256",
        "--overlap",
        "64",
        "--workers",
        "2",
    ]


def _start(root: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.Popen(
        _command(root, out),
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _assert_whole_set(out: Path) -> None:
    names = sorted(OUTPUT_NAMES.values())
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == names
    assert set_entries(out) == names

    def refuse(constant):
        raise AssertionError(f"report.json is not strict JSON: {constant}")

    json.loads((out / "report.json").read_text(), parse_constant=refuse)
    assert not [p.name for p in out.parent.iterdir() if ".sectionseg-" in p.name]  # no staging left over


def _processes_naming(text: str) -> list[str]:
    """Processes whose command line holds ``text`` (the run and its forked workers share it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                pass
    return found


def test_ctrl_c_at_random_moments_leaves_a_whole_set_and_no_process(setup):
    root = setup
    out = root / "det"
    t0 = time.monotonic()
    first = _start(root, out)
    stdout, stderr = first.communicate(timeout=300)
    whole_run = time.monotonic() - t0
    assert first.returncode == 0, stderr
    _assert_whole_set(out)

    rng = random.Random(17)
    codes = []
    for trial in range(TRIALS):
        sig = signal.SIGTERM if trial == TRIALS - 1 else signal.SIGINT
        delay = rng.uniform(0.3, whole_run)
        proc = _start(root, out)
        time.sleep(delay)
        if trial % 2:
            os.killpg(proc.pid, sig)  # as a terminal's Ctrl-C: the whole group, workers included
        else:
            proc.send_signal(sig)  # the command alone
        sent = time.monotonic()
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"trial {trial}: no exit 60 s after the signal at {delay:.2f} s (a hang)")
        stopped_after = time.monotonic() - sent
        where = f"trial {trial}, signal {sig.name} at {delay:.2f} s of a {whole_run:.1f} s run: {stderr[-2000:]}"
        assert "Traceback" not in stderr, where
        # (while the command line is being read, before the command is known: "sectionseg: ...")
        expected = {
            signal.SIGINT: (130, r"sectionseg( detect)?: interrupted"),
            signal.SIGTERM: (143, r"sectionseg( detect)?: stopped \(SIGTERM\)"),
        }[sig]
        # 0: the run had finished; -sig: the signal came while Python was shutting down, after the run
        assert proc.returncode in (0, expected[0], -sig), where
        codes.append((proc.returncode, round(delay, 2), round(stopped_after, 2)))
        if proc.returncode == expected[0]:
            assert re.fullmatch(expected[1], stderr.strip().splitlines()[-1]), where
            assert stopped_after < 20, where
        _assert_whole_set(out)  # the previous set or the new one, never a mix or nothing
        time.sleep(0.3)
        assert not _processes_naming(str(out)), f"processes outlived the run: {where}"
    print("exit codes:", codes)
    assert sum(c[0] in (130, 143) for c in codes) >= TRIALS // 2, codes  # most signals came during the run
