"""Batches split over a CPU's threads (srlrfr.models.batching): order, coverage, thread count, results."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from srlrfr.models.batching import map_batches, thread_workers
from srlrfr.models.srnet import super_resolve
from srlrfr.models.srnets.edsr import EDSR


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_workers_are_the_cpu_threads_and_one_elsewhere(two_threads):
    assert thread_workers("cpu") == 2
    assert thread_workers(torch.device("cuda")) == 1  # a device name only: no GPU needed
    torch.set_num_threads(1)
    assert thread_workers("cpu") == 1


def test_split_covers_every_item_once_in_order_one_thread_each(two_threads):
    seen = []

    def fn(start, stop):
        seen.append((start, stop, torch.get_num_threads(), torch.is_inference_mode_enabled(),
                     threading.current_thread() is threading.main_thread()))
        return np.arange(start, stop)

    got = list(map_batches(fn, 23, 10, "cpu"))
    bounds = [(a, b) for a, b, _ in got]
    assert bounds[0][0] == 0 and bounds[-1][1] == 23 and all(x[1] == y[0] for x, y in zip(bounds, bounds[1:]))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) <= 5 and max(sizes) - min(sizes) <= 1  # at most half a batch each, evenly
    assert len(bounds) % 2 == 0  # as many parts per thread: none idles at the end
    assert np.array_equal(np.concatenate([out for _, _, out in got]), np.arange(23))
    assert all(threads == 1 and inference and not main for _, _, threads, inference, main in seen)
    assert torch.get_num_threads() == 2  # given back


def test_one_thread_runs_whole_batches_here(two_threads):
    torch.set_num_threads(1)
    calls = []
    out = list(map_batches(lambda a, b: calls.append(threading.current_thread().name) or np.zeros(b - a),
                           25, 10, "cpu"))
    assert [(a, b) for a, b, _ in out] == [(0, 10), (10, 20), (20, 25)]
    assert set(calls) == {threading.main_thread().name}


def test_stopping_early_or_failing_gives_the_threads_back(two_threads):
    started = []

    def slow(start, stop):
        started.append(start)
        time.sleep(0.01)
        return np.zeros(1)

    gen = map_batches(slow, 1000, 2, "cpu")
    next(gen)
    gen.close()  # the consumer stops: queued batches are cancelled
    assert torch.get_num_threads() == 2
    assert len(started) < 100  # of 1000 (2 threads x 10 ms each)

    def boom(start, stop):
        raise RuntimeError(f"batch {start}")

    with pytest.raises(RuntimeError, match="batch 0"):
        list(map_batches(boom, 10, 4, "cpu"))
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="batch_size"):
        list(map_batches(slow, 10, 0, "cpu"))


def test_super_resolve_split_matches_one_thread(two_threads):
    torch.manual_seed(0)
    model = EDSR(n_blocks=2, n_feats=8, scale=2).eval().to(memory_format=torch.channels_last)
    images = np.random.default_rng(0).integers(0, 256, (7, 6, 5, 3), dtype=np.uint8)
    info = {"channel_order": "rgb", "scale": 2}
    split = super_resolve(model, info, images, batch_size=4)
    torch.set_num_threads(1)
    whole = super_resolve(model, info, images, batch_size=4)
    assert split.shape == (7, 12, 10, 3)
    assert np.abs(split.astype(int) - whole).max() <= 1  # float sums may round one level apart
