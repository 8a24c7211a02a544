"""Reliability of the io layer: output sets whole or absent, stale temporaries, strict JSON,
odd pixels, worker pools that stop on Ctrl-C and report dead workers."""

import json
import os
import signal
import time

import numpy as np
import pytest
import tifffile

from sectionseg.errors import InputError, ResourceError
from sectionseg.io import outset
from sectionseg.io.atomic import atomic_path, is_stale, owner_tag, remove_stale_temps, write_text
from sectionseg.io.jsontext import dumps
from sectionseg.io.outset import INCOMPLETE, MARKER, check_complete, output_set, recover, set_entries


def _dead_pid() -> int:
    """A pid that no process has now (a child that has exited and been reaped)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _write_set(out, files: dict, command="test"):
    with output_set(out, command) as stage:
        for name, text in files.items():
            write_text(stage / name, text)


def _hidden_siblings(out):
    return [p.name for p in out.parent.iterdir() if ".sectionseg-" in p.name]


# ------------------------------------------------------------------------------------ output sets
def test_a_set_replaces_the_previous_one_whole(tmp_path):
    out = tmp_path / "out"
    _write_set(out, {"a.txt": "1", "b.txt": "1"})
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.txt", "b.txt"]
    assert set_entries(out) == ["a.txt", "b.txt"]
    _write_set(out, {"a.txt": "2", "c.txt": "2"})
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.txt", "c.txt"]  # b.txt of the old set gone
    assert (out / "a.txt").read_text() == "2" and not _hidden_siblings(out)


@pytest.mark.parametrize("stop", [RuntimeError("bug"), KeyboardInterrupt()])
def test_an_error_or_ctrl_c_while_writing_keeps_the_previous_set(tmp_path, stop):
    out = tmp_path / "out"
    _write_set(out, {"a.txt": "old", "b.txt": "old"})
    with pytest.raises(type(stop)), output_set(out) as stage:
        write_text(stage / "a.txt", "new")
        raise stop
    assert (out / "a.txt").read_text() == "old" and (out / "b.txt").read_text() == "old"
    assert not _hidden_siblings(out)
    # and a first run interrupted leaves nothing
    with pytest.raises(KeyboardInterrupt), output_set(tmp_path / "fresh") as stage:
        write_text(stage / "a.txt", "new")
        raise KeyboardInterrupt
    assert not (tmp_path / "fresh").exists() and not _hidden_siblings(out)


def test_foreign_files_are_kept_and_the_set_merged(tmp_path):
    out = tmp_path / "wafer"
    out.mkdir()
    (out / "gray.tif").write_text("the user's image")
    _write_set(out, {"a.txt": "1", "b.txt": "1"})
    _write_set(out, {"a.txt": "2"})
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.txt", "gray.tif"]
    assert (out / "gray.tif").read_text() == "the user's image" and (out / "a.txt").read_text() == "2"
    assert not _hidden_siblings(out)


def test_readers_refuse_a_set_flagged_incomplete(tmp_path):
    from sectionseg.formats import read_sections

    out = tmp_path / "out"
    out.mkdir()
    (out / INCOMPLETE).write_text("")
    with pytest.raises(InputError, match="incomplete output set"):
        check_complete(out)
    with pytest.raises(InputError, match="incomplete output set"):
        read_sections(out / "sections.labelme.json")


def test_a_kill_between_the_two_renames_is_repaired_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    _write_set(out, {"a.txt": "old"})
    # as left by SIGKILL after "OUT -> old" and before "staging -> OUT": both hidden, OUT missing
    dead = _dead_pid()
    tag = owner_tag().rsplit("-", 1)[0] + f"-{dead}"
    old, new = tmp_path / f".out.sectionseg-old-{tag}-aaaa", tmp_path / f".out.sectionseg-new-{tag}-bbbb"
    os.rename(out, old)
    new.mkdir()
    (new / "a.txt").write_text("new")
    (new / MARKER).write_text(json.dumps({"files": ["a.txt"]}))
    recover(out)
    assert (out / "a.txt").read_text() == "new" and not _hidden_siblings(out)  # the complete new set
    os.rename(out, old)  # only the previous set left: it comes back
    recover(out)
    assert (out / "a.txt").read_text() == "new" and not _hidden_siblings(out)


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    with atomic_path(tmp_path / "x.png") as tmp:
        assert ".sectionseg-tmp-" in tmp.name and tmp.name.endswith(".png")  # writers sniff the suffix
        assert not is_stale(tmp)  # ours, running
        tmp.write_bytes(b"1")
    host = owner_tag().rsplit("-", 1)[0]
    dead = tmp_path / f".losses.png.sectionseg-tmp-{host}-{_dead_pid()}-abcd1234.png"
    alive = tmp_path / f".log.csv.sectionseg-tmp-{host}-{os.getppid()}-abcd1234.csv"
    legacy = tmp_path / ".x.k2j4h5g6.png"  # a temporary of the earlier naming, beside x.png
    for p in (dead, alive, legacy):
        p.write_bytes(b"")
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted([dead.name, legacy.name])
    assert alive.exists() and (tmp_path / "x.png").read_bytes() == b"1"


def test_output_set_removes_stale_temporaries_inside_out(tmp_path):
    out = tmp_path / "out"
    _write_set(out, {"a.txt": "1"})
    stale = out / f".a.txt.sectionseg-tmp-{owner_tag().rsplit('-', 1)[0]}-{_dead_pid()}-zz.txt"
    stale.write_text("half")
    _write_set(out, {"a.txt": "2"})
    assert not stale.exists()


def test_output_set_refuses_a_file_as_folder(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="not a folder"), output_set(tmp_path / "f"):
        pass


def test_the_swap_keeps_the_folder_mode(tmp_path):
    out = tmp_path / "out"
    out.mkdir(mode=0o750)
    os.chmod(out, 0o750)
    _write_set(out, {"a.txt": "1"})
    assert oct(out.stat().st_mode & 0o777) == oct(0o750)
    assert outset.MARKER in os.listdir(out)


# ------------------------------------------------------------------------------------ strict JSON
def test_strict_json_writes_null_for_non_finite_numbers():
    text = dumps({"a": float("nan"), "b": [np.float32(np.inf), np.int64(3)], "c": (1.5, -np.inf)})

    def refuse(constant):
        raise AssertionError(f"not JSON: {constant}")

    assert json.loads(text, parse_constant=refuse) == {"a": None, "b": [None, 3], "c": [1.5, None]}


def test_detection_report_with_nan_is_strict_json(tmp_path):
    from sectionseg.export import write_detection_outputs

    paths = write_detection_outputs(
        tmp_path / "det",
        [],
        [],
        overlay_image=np.zeros((40, 50), np.uint8),
        report={"scale": float("nan"), "timings_s": {"fit": float("inf")}},
    )
    text = paths["report"].read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["scale"] is None
    assert set_entries(tmp_path / "det") == sorted(p.name for p in paths.values())


# ------------------------------------------------------------------------------------ images
def test_nan_pixels_are_filled_with_a_warning_and_all_nan_is_refused(tmp_path, caplog):
    from sectionseg.io.images import compose_rgb, read_image, robust_normalisation

    image = np.linspace(0, 1000, 60 * 80, dtype=np.float32).reshape(60, 80)
    image[10:20, 10:30] = np.nan
    image[0, 0] = np.inf
    tifffile.imwrite(tmp_path / "nan.tif", image)
    with caplog.at_level("WARNING"):
        got = read_image(tmp_path / "nan.tif")
    assert np.isfinite(got).all() and "201 of 4800 pixels are NaN or infinite" in caplog.text
    assert 100 < compose_rgb(got).rgb[15, 20, 0] < 160  # the median level: background, not black or white
    with np.errstate(all="raise"):  # the API path is NaN-safe too, without numpy warnings
        norm = robust_normalisation(image)
        assert np.isfinite([norm.low, norm.high]).all()
        assert norm.apply(image).dtype == np.uint8
    tifffile.imwrite(tmp_path / "allnan.tif", np.full((30, 40), np.nan, np.float32))
    with pytest.raises(InputError, match="no pixel of the image has a finite value"):
        read_image(tmp_path / "allnan.tif")


def test_multi_page_tiffs_and_two_channel_images_are_refused(tmp_path):
    from sectionseg.io.images import read_image

    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((2, 40, 50), np.uint8))
    tifffile.imwrite(
        tmp_path / "two.tif", np.zeros((40, 50, 2), np.uint8), photometric="minisblack", planarconfig="contig"
    )
    with pytest.raises(InputError, match="holds 2 images"):
        read_image(tmp_path / "pages.tif", expect_gray=False)
    with pytest.raises(InputError, match=r"\(H, W, 3\)"):
        read_image(tmp_path / "two.tif", expect_gray=False)


def test_write_image_refuses_a_name_without_an_image_extension(tmp_path):
    from sectionseg.io.images import write_image

    with pytest.raises(InputError, match="cannot tell the image format"):
        write_image(tmp_path / "noext", np.zeros((4, 4), np.uint8))
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------ worker pools
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")


@needs_fork
def test_ctrl_c_while_mapping_stops_every_worker_at_once():
    import multiprocessing as mp

    from sectionseg.detection.parallel import fork_map

    def slow(k):
        time.sleep(0.05 if k == 0 else 30)
        return k

    def interrupt(_):
        raise KeyboardInterrupt

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        fork_map(slow, range(4), 2, on_result=interrupt)
    assert time.monotonic() - t0 < 10  # workers in a 30 s item were terminated, not waited for
    assert not mp.active_children()


@needs_fork
def test_workers_ignore_sigint_and_the_parent_stops_them():
    import multiprocessing as mp

    from sectionseg.detection.parallel import fork_map

    def hit_the_group(k):  # as a terminal's Ctrl-C: SIGINT to every process, workers included
        if k == 0:
            os.kill(os.getpid(), signal.SIGINT)  # the worker itself: ignored
            os.kill(os.getppid(), signal.SIGINT)  # the parent: stops the map
        time.sleep(0.2)
        return k

    with pytest.raises(KeyboardInterrupt):
        fork_map(hit_the_group, range(6), 2)
    assert not mp.active_children()


@needs_fork
def test_a_killed_worker_is_a_resource_error_not_a_hang():
    from sectionseg.detection.parallel import fork_map

    def die(k):
        if k == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return k

    with pytest.raises(ResourceError, match="killed by signal 9"):
        fork_map(die, range(5), 2)


def test_blocked_signals_defer_ctrl_c_to_the_end_of_the_block():
    from sectionseg.io.interrupts import blocked_signals

    steps = []
    with pytest.raises(KeyboardInterrupt), blocked_signals():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        steps.append("renamed both")  # not cut in two
    assert steps == ["renamed both"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_stops_the_dataset_workers_at_once():
    import multiprocessing as mp

    from sectionseg.datasets.build import _parallel_map

    signal.setitimer(signal.ITIMER_REAL, 0)
    previous = signal.signal(signal.SIGALRM, lambda *a: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 4.0)  # Ctrl-C while both spawned workers sleep 60 s
        with pytest.raises(KeyboardInterrupt):
            _parallel_map(time.sleep, [(60,), (60,)], 2, "sleeping")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - t0 < 30 and not mp.active_children()
