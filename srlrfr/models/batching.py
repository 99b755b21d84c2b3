"""Inference batches spread over a CPU's threads: each thread a part of the batch, alone.

On a CPU, oneDNN splits every convolution over torch's intra-op threads, which
then wait on each other at the end of each layer and during the Python between
layers; the FNet's 35x35 maps of 32 channels and the SRNet's 3-channel output
convolution split badly. Giving each of the step's threads its own part of the
batch, with one intra-op thread each, keeps the cores busy: on 2 cores, 1.12-1.22x
the dlib FNet and 1.13-1.16x EDSR 8x64 at 20x20 and 40x40 over one batch at a time
(two runs of benchmarks/bench_forward.py), with the same outputs to the bit here.
The batch is divided, not multiplied, so memory stays that of one batch. On a GPU,
or with one thread, batches run one by one.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from tqdm.auto import tqdm


def thread_workers(device: torch.device | str) -> int:
    """How many parts a batch is split into on ``device``: torch's thread count on a CPU, else 1."""
    return torch.get_num_threads() if torch.device(device).type == "cpu" else 1


def map_batches(fn: Callable[[int, int], np.ndarray], n: int, batch_size: int, device: torch.device | str, *,
                desc: str = "", progress: bool = False) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, fn(start, stop))`` for consecutive slices of ``range(n)``, in order, each call
    under ``torch.inference_mode``: whole batches of ``batch_size`` one by one, or on a CPU
    with several threads, parts of a batch side by side (module doc)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    workers = thread_workers(device)
    if workers > 1:  # parts of at most batch_size / workers, as many per thread: no thread idles at the end
        count = math.ceil(math.ceil(n / math.ceil(batch_size / workers)) / workers) * workers
        edges = [round(i * n / count) for i in range(count + 1)]
        slices = [(a, b) for a, b in zip(edges, edges[1:]) if b > a]
    else:
        slices = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    bar = tqdm(total=n, desc=desc, disable=not progress, unit="img")

    def run(bounds: tuple[int, int]) -> np.ndarray:
        with torch.inference_mode():  # grad mode is per thread: a pool thread starts with it on
            return fn(*bounds)

    try:
        if workers <= 1 or len(slices) <= 1:
            for bounds in slices:
                yield (*bounds, run(bounds))
                bar.update(bounds[1] - bounds[0])
            return
        torch.set_num_threads(1)
        pool = ThreadPoolExecutor(workers)
        try:
            for bounds, out in zip(slices, pool.map(run, slices)):
                yield (*bounds, out)
                bar.update(bounds[1] - bounds[0])
        finally:
            pool.shutdown(cancel_futures=True)  # a consumer that stops early leaves no batch queued
            torch.set_num_threads(workers)
    finally:
        bar.close()
