"""Paired significance of accuracy differences: two methods scored on the same pairs.

Each pair is decided at its own fold's threshold (the 10-fold protocol's:
``same iff score > threshold``), so every method gives one right-or-wrong
decision per pair. Two methods are then compared pair by pair:

- McNemar's exact test on the discordant pairs (b: only the first is right,
  c: only the second): two-sided p = min(1, 2 * P[X <= min(b, c)]), X ~ Bin(b + c, 1/2).
- A paired bootstrap over pairs: resample the pairs with replacement, take the
  difference of the two accuracies in each replicate, and report the 2.5th and
  97.5th percentiles (a 95% interval).

No correction for multiple comparisons is applied; each row is one test.
"""
from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

ALPHA = 0.05
N_BOOT = 10_000
CHUNK = 500  # bootstrap replicates drawn at a time (memory: CHUNK x pairs indices)
COLUMNS = ("dataset", "fnet", "resolution", "method_a", "method_b", "acc_a", "acc_b", "diff", "ci_low", "ci_high",
           "n_pairs", "a_only", "b_only", "p_mcnemar", "significant")


def decisions(scores: pd.DataFrame, folds: list, thresholds: list) -> pd.Series:
    """Per pair (indexed by pair id): whether the pair is classified right at its fold's threshold."""
    missing = {"pair", "fold", "label", "score"} - set(scores.columns)
    if missing:
        raise ValueError(f"scores table lacks columns {sorted(missing)}")
    thr = dict(zip(folds, thresholds))
    unknown = set(scores["fold"].unique()) - set(thr)
    if unknown:
        raise ValueError(f"scores hold folds {sorted(unknown)} without a threshold (have {sorted(thr)})")
    t = scores["fold"].map(thr).to_numpy(dtype=np.float64)
    same = scores["score"].to_numpy(dtype=np.float64) > t
    return pd.Series(same == scores["label"].to_numpy().astype(bool), index=scores["pair"].to_numpy())


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b}, {c}")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    # P[X <= k] for X ~ Bin(n, 1/2), summed in log space (n may be thousands)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return min(1.0, 2.0 * tail)


def bootstrap_indices(n: int, n_boot: int = N_BOOT, seed: int = 0, chunk: int = CHUNK):
    """Yields (k, n) arrays of resampled pair positions, n_boot rows in all, from one seeded generator."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))


def paired_bootstrap_ci(a: np.ndarray, b: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of mean(a) - mean(b) over pairs resampled together (a, b: 0/1 per pair)."""
    d = np.asarray(a, dtype=np.int64) - np.asarray(b, dtype=np.int64)
    if d.ndim != 1 or len(d) == 0 or len(a) != len(b):
        raise ValueError(f"need two equal-length, non-empty per-pair arrays, got {np.shape(a)} and {np.shape(b)}")
    diffs = np.concatenate([d[idx].mean(axis=1) for idx in bootstrap_indices(len(d), n_boot, seed)])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(low), float(high)


def compare(a: pd.Series, b: pd.Series, *, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Two methods' per-pair decisions (pair id -> right), on the pairs both scored. Percent and counts."""
    both = a.index.intersection(b.index)
    if len(both) == 0:
        raise ValueError("the two methods share no scored pair")
    ra, rb = a.loc[both].to_numpy(), b.loc[both].to_numpy()
    low, high = paired_bootstrap_ci(ra, rb, n_boot=n_boot, seed=seed)
    only_a, only_b = int(np.sum(ra & ~rb)), int(np.sum(~ra & rb))
    p = mcnemar_exact(only_a, only_b)
    return {"acc_a": 100 * ra.mean(), "acc_b": 100 * rb.mean(), "diff": 100 * (ra.mean() - rb.mean()),
            "ci_low": 100 * low, "ci_high": 100 * high, "n_pairs": len(both), "a_only": only_a,
            "b_only": only_b, "p_mcnemar": p, "significant": bool(p < ALPHA)}


def load_decisions(metrics_file: str | Path) -> tuple[dict, pd.Series]:
    """(metrics.json, per-pair decisions) of one evaluated configuration (scores.csv beside it)."""
    metrics_file = Path(metrics_file)
    m = json.loads(metrics_file.read_text())
    scores = pd.read_csv(metrics_file.parent / "scores.csv")
    return m, decisions(scores, m["folds"], m["fold_thresholds"])


def significance_table(metric_files, *, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Every pair of methods at each (dataset, FNet, resolution); the later-listed method is ``method_a``."""
    groups: dict[tuple, list] = {}
    for path in metric_files:
        m, dec = load_decisions(path)
        groups.setdefault((m.get("dataset", "lfw"), m["fnet"], m["resolution"]), []).append((m["method"], dec))
    rows = []
    for (dataset, fnet, res), entries in groups.items():
        for (name_b, dec_b), (name_a, dec_a) in combinations(entries, 2):
            rows.append({"dataset": dataset, "fnet": fnet, "resolution": res, "method_a": name_a,
                         "method_b": name_b, **compare(dec_a, dec_b, n_boot=n_boot, seed=seed)})
    return pd.DataFrame(rows, columns=list(COLUMNS))
