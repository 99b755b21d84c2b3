"""Time the 10-fold threshold search: vectorised (srlrfr) vs one threshold at a time.

The per-threshold loop mirrors the authors' approach (for every grid value,
count correct predictions on the 9 training folds, keep the best with ">=").
Both run in the same process on the same 6,000 random scores and must agree.

    python benchmarks/bench_threshold_search.py [--pairs 6000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from srlrfr.metrics.verification import kfold_accuracy, threshold_grid


def kfold_loop(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray, grid: np.ndarray) -> list[float]:
    thresholds = []
    for k in np.unique(folds):
        train_s, train_y = scores[folds != k], labels[folds != k]
        best_acc, best_thd = 0.0, 0.0
        for t in grid:
            acc = np.count_nonzero((train_s > t) == train_y) / train_y.size
            if acc >= best_acc:
                best_acc, best_thd = acc, float(t)
        thresholds.append(best_thd)
    return thresholds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6000)
    parser.add_argument("--repeat", type=int, default=5, help="vectorised runs (best time is reported)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat([1, 0], args.pairs // 2)).astype(bool)
    scores = np.clip(rng.normal(0.4 * labels, 0.2), -1, 1).astype(np.float32).astype(np.float64)
    folds = np.repeat(np.arange(10), args.pairs // 10)
    grid = threshold_grid()

    fast_times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        fast = kfold_accuracy(scores, labels, folds, grid)
        fast_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    slow = kfold_loop(scores, labels, folds, grid)
    slow_time = time.perf_counter() - start
    if fast["thresholds"] != slow:
        sys.exit(f"MISMATCH: vectorised {fast['thresholds']} vs loop {slow}")

    best = min(fast_times)
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print(f"machine: {platform.platform()} | {platform.processor() or platform.machine()} | "
          f"cpus={os.cpu_count()} | python {platform.python_version()} | numpy {np.__version__}")
    print(f"data: {args.pairs} pairs, 10 folds, {grid.size} thresholds; fold thresholds agree")
    print(f"vectorised: {1000 * best:.1f} ms (best of {args.repeat}; median {1000 * np.median(fast_times):.1f} ms)")
    print(f"per-threshold loop: {1000 * slow_time:.0f} ms")
    print(f"speed-up: {slow_time / best:.0f}x")


if __name__ == "__main__":
    main()
