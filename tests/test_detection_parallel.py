"""Detection in forked worker processes gives the results of one process."""

import os

import numpy as np
import pytest
from detection_fakes import ContentPredictor
from test_detection_post import draw, regular

from sectionseg.detection import detect_wafer
from sectionseg.detection.parallel import can_fork, fork_map, resolve_workers

needs_fork = pytest.mark.skipif(not can_fork(), reason="no fork on this platform")


@needs_fork
def test_fork_map_keeps_the_order_and_runs_in_other_processes():
    offset = 7  # a closure: workers inherit it through fork, nothing is pickled but items and results
    seen = []
    out = fork_map(lambda k: (k + offset, os.getpid()), range(20), 2, on_result=seen.append)
    assert [k for k, _ in out] == list(range(7, 27)) and seen == out
    assert os.getpid() not in {pid for _, pid in out}
    assert fork_map(lambda k: os.getpid(), range(3), 1) == [os.getpid()] * 3  # one worker: in process


@needs_fork
def test_worker_errors_reach_the_caller():
    def fail(k):
        if k == 3:
            raise ValueError("bad item 3")
        return k

    with pytest.raises(ValueError, match="bad item 3"):
        fork_map(fail, range(6), 2)


def test_worker_count():
    assert resolve_workers(3, "cpu") == (3 if can_fork() else 1)
    assert resolve_workers(None, "cuda") == 1
    assert 1 <= resolve_workers(None, "cpu") <= 8
    with pytest.raises(ValueError):
        resolve_workers(0, "cpu")


@needs_fork
def test_detection_in_workers_equals_detection_in_process():
    truth = regular(6)
    gray, fluo = draw(640, 900, truth)
    kwargs = dict(predictor=ContentPredictor(), scale=1.0, tile_size=256, overlap=128, progress=False)
    one = detect_wafer(gray, fluo, workers=1, **kwargs)
    two = detect_wafer(gray, fluo, workers=2, **kwargs)
    assert one.params["workers"] == 1 and two.params["workers"] == 2
    assert len(one.sections) == len(two.sections) == len(truth)
    for a, b in zip(one.sections, two.sections):
        np.testing.assert_allclose(a.tissue.polygon, b.tissue.polygon)
        np.testing.assert_allclose(a.magnet.polygon, b.magnet.polygon)
    assert [p["fit_iou"] for p in one.parts] == [p["fit_iou"] for p in two.parts]


def _pids_seen_by_fork_map(_):
    return set(fork_map(lambda k: os.getpid(), range(4), 2)), os.getpid()


@needs_fork
def test_inside_a_daemonic_pool_worker_the_map_runs_in_that_worker():
    import multiprocessing as mp

    with mp.get_context("fork").Pool(1) as pool:
        seen, worker = pool.apply(_pids_seen_by_fork_map, (None,))
    assert seen == {worker}
