"""Paired significance: McNemar's exact test by hand, the bootstrap against a direct loop, decisions per fold."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from srlrfr.metrics.significance import compare, decisions, mcnemar_exact, paired_bootstrap_ci, significance_table


@pytest.mark.parametrize("b, c, p", [
    (1, 7, 2 * (1 + 8) / 2**8),             # P[X <= 1], X ~ Bin(8, 1/2) = 9/256
    (2, 10, 2 * (1 + 12 + 66) / 2**12),     # 79/4096
    (10, 2, 2 * (1 + 12 + 66) / 2**12),     # symmetric
    (0, 6, 2 / 2**6),
    (5, 5, 1.0),                            # 2 * P[X <= 5] > 1: capped
    (0, 0, 1.0),                            # no discordant pair
])
def test_mcnemar_exact_by_hand(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, rel=1e-12)


def test_mcnemar_large_counts_stay_finite():
    p = mcnemar_exact(400, 520)  # 920 discordant pairs: log-space sum
    assert 0 < p < 0.001


def test_bootstrap_ci_against_a_direct_loop():
    rng = np.random.default_rng(3)
    a = rng.random(137) < 0.8
    b = rng.random(137) < 0.7
    n_boot, seed = 1203, 11  # spans several chunks of draws
    low, high = paired_bootstrap_ci(a, b, n_boot=n_boot, seed=seed)
    draw = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        idx = draw.integers(0, len(a), size=len(a))
        diffs.append(sum(int(a[i]) for i in idx) / len(a) - sum(int(b[i]) for i in idx) / len(a))
    diffs.sort()

    def percentile(q):  # linear interpolation between order statistics (numpy's default)
        pos = q / 100 * (len(diffs) - 1)
        lo = int(pos)
        return diffs[lo] + (pos - lo) * (diffs[min(lo + 1, len(diffs) - 1)] - diffs[lo])

    assert low == pytest.approx(percentile(2.5), abs=1e-12)
    assert high == pytest.approx(percentile(97.5), abs=1e-12)
    assert low < a.mean() - b.mean() < high


def test_decisions_use_each_folds_threshold():
    scores = pd.DataFrame({"pair": [0, 1, 2, 3], "fold": [0, 0, 1, 1], "label": [1, 0, 1, 0],
                           "score": [0.5, 0.4, 0.5, 0.4]})
    # fold 0 at 0.45: both right; fold 1 at 0.5: 'same iff score > t', so pair 2 is wrong
    right = decisions(scores, [0, 1], [0.45, 0.5])
    assert right.to_dict() == {0: True, 1: True, 2: False, 3: True}
    with pytest.raises(ValueError, match="without a threshold"):
        decisions(scores, [0], [0.45])


def test_compare_counts_discordant_pairs_on_shared_pairs():
    a = pd.Series([True, True, False, True, False], index=[0, 1, 2, 3, 9])
    b = pd.Series([True, False, False, False, True], index=[0, 1, 2, 3, 4])
    row = compare(a, b, n_boot=200)
    assert (row["n_pairs"], row["a_only"], row["b_only"]) == (4, 2, 0)  # pairs 4 and 9 are not shared
    assert row["diff"] == pytest.approx(50.0) and row["p_mcnemar"] == pytest.approx(0.5)
    assert not row["significant"]


def test_table_pairs_every_two_methods_per_resolution(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.tile([1, 0], 300)
    files = []
    for method, noise in (("bicubic", 1.0), ("edsr_lambda0.5", 0.3)):
        for res in ("7x6", "14x12"):
            d = tmp_path / method / res
            d.mkdir(parents=True)
            score = labels + noise * rng.standard_normal(600) - 0.5
            pd.DataFrame({"pair": range(600), "fold": np.repeat(range(10), 60), "label": labels,
                          "score": score / 10}).to_csv(d / "scores.csv", index=False)
            (d / "metrics.json").write_text(json.dumps({"fnet": "dlib_resnet34", "method": method, "resolution": res,
                                                        "folds": list(range(10)), "fold_thresholds": [0.0] * 10}))
            files.append(d / "metrics.json")
    sig = significance_table(files, n_boot=500)
    assert len(sig) == 2 and set(sig["resolution"]) == {"7x6", "14x12"}
    row = sig.iloc[0]
    assert (row["method_a"], row["method_b"]) == ("edsr_lambda0.5", "bicubic")
    assert row["diff"] > 0 and row["ci_low"] > 0 and row["significant"] and row["p_mcnemar"] < 1e-6


def test_paired_compare_tool_prints_each_shared_resolution(tmp_path, capsys):
    """tools/paired_compare.py: one method evaluated in two runs, compared pair by pair."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("paired_compare", Path(__file__).parents[1] / "tools" /
                                                  "paired_compare.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    labels = np.tile([1, 0], 30)
    for run, flip in (("a", 0), ("b", 6)):  # run b gets 6 more pairs wrong at 10x10
        for res in ("10x10", "20x20") if run == "a" else ("10x10",):
            d = tmp_path / run / res
            d.mkdir(parents=True)
            score = np.where(labels == 1, 0.5, -0.5)
            if res == "10x10":
                score[:flip] *= -1
            pd.DataFrame({"pair": range(60), "fold": np.repeat(range(10), 6), "label": labels,
                          "score": score}).to_csv(d / "scores.csv", index=False)
            (d / "metrics.json").write_text(json.dumps({"folds": list(range(10)), "fold_thresholds": [0.0] * 10}))
    tool.main([str(tmp_path / "a"), str(tmp_path / "b"), "--labels", "fp32", "bf16"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 10x10")]
    assert len(rows) == 1, "20x20 was evaluated only in run a"
    m = re.fullmatch(r"\| 10x10 \| 100.00 \| 90.00 \| \+10.00 \[\+(\S+), \+(\S+)\] \| 0.031[23] \| 60 \|", rows[0])
    assert m, rows[0]  # McNemar: b = 6, c = 0, p = 2 / 2**6 = 0.03125
    assert 0 < float(m[1]) < 10 < float(m[2]) <= 20  # a pair is worth 1/60 = 1.67 points
