"""Verification protocol maths against plain-Python references and hand-worked cases."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from srlrfr.metrics.verification import (
    accuracy_at_thresholds,
    best_threshold,
    eer,
    kfold_accuracy,
    load_scores,
    roc_auc,
    roc_curve,
    tar_at_far,
    threshold_grid,
    verification_report,
)

# ---------- plain-Python references (the authors' approach: one threshold at a time) ----------

def brute_accuracy(scores, labels, t) -> float:
    return sum((s > t) == bool(y) for s, y in zip(scores, labels)) / len(scores)


def brute_best_threshold(scores, labels, thresholds) -> float:
    best_acc, best_thd = 0.0, 0.0
    for t in thresholds:  # ascending scan, ">=": ties go to the largest threshold
        acc = brute_accuracy(scores, labels, t)
        if acc >= best_acc:
            best_acc, best_thd = acc, t
    return float(best_thd)


def brute_kfold(scores, labels, folds, thresholds) -> tuple[list[float], list[float]]:
    accs, thds = [], []
    for k in sorted(set(folds)):
        train = [i for i, f in enumerate(folds) if f != k]
        test = [i for i, f in enumerate(folds) if f == k]
        thd = brute_best_threshold([scores[i] for i in train], [labels[i] for i in train], thresholds)
        accs.append(brute_accuracy([scores[i] for i in test], [labels[i] for i in test], thd))
        thds.append(thd)
    return accs, thds


def random_pairs(seed: int, n: int = 200, n_folds: int = 10, quantise: bool = False):
    rng = np.random.default_rng(seed)
    labels = np.repeat([1, 0], n // 2)
    rng.shuffle(labels)
    scores = np.clip(rng.normal(0.35 * labels, 0.25), -1, 1)
    if quantise:  # scores exactly on grid points and many equal scores: exercises ">" and ties
        scores = np.round(scores * 50) / 50
    folds = np.repeat(np.arange(n_folds), n // n_folds)
    return scores, labels, folds


# ---------- threshold search ----------

def test_threshold_grid_is_the_authors_grid():
    grid = threshold_grid()
    assert grid.size == 10001 and grid[0] == -1.0 and grid[-1] == 1.0
    assert np.allclose(np.diff(grid), 2e-4)
    assert grid[5000] == 0.0 and grid[7500] == 0.5  # exact decimals at round values


@pytest.mark.parametrize("seed", [0, 1])
def test_accuracy_at_thresholds_matches_direct_count(seed):
    scores, labels, _ = random_pairs(seed, n=100, quantise=bool(seed))
    grid = threshold_grid(201)
    fast = accuracy_at_thresholds(scores, labels, grid)
    slow = [brute_accuracy(scores.tolist(), labels.tolist(), t) for t in grid]
    assert np.array_equal(fast, np.array(slow))


@pytest.mark.parametrize("seed,quantise", [(0, False), (1, False), (2, True), (3, True), (4, True)])
def test_kfold_matches_bruteforce(seed, quantise):
    scores, labels, folds = random_pairs(seed, quantise=quantise)
    grid = threshold_grid(1001)
    result = kfold_accuracy(scores, labels, folds, grid)
    accs, thds = brute_kfold(scores.tolist(), labels.tolist(), folds.tolist(), grid.tolist())
    assert result["thresholds"] == thds
    assert result["fold_acc"] == accs
    assert result["mean"] == pytest.approx(np.mean(accs))
    assert result["std"] == pytest.approx(np.std(accs))  # population std, as the authors
    assert result["folds"] == list(range(10))


def test_kfold_full_grid_matches_bruteforce_on_one_seed():
    scores, labels, folds = random_pairs(7, n=60, n_folds=3, quantise=True)
    grid = threshold_grid()
    result = kfold_accuracy(scores, labels, folds)
    _, thds = brute_kfold(scores.tolist(), labels.tolist(), folds.tolist(), grid.tolist())
    assert result["thresholds"] == thds


def test_tie_rule_picks_largest_threshold():
    # every threshold in [-0.5, 0.5) separates perfectly; the largest grid point below 0.5 is 0.4998
    scores = np.array([0.5, 0.5, -0.5, -0.5])
    labels = np.array([1, 1, 0, 0])
    assert best_threshold(scores, labels, threshold_grid()) == pytest.approx(0.4998, abs=1e-12)
    # a score exactly on the threshold counts as "different" (strict >)
    assert accuracy_at_thresholds(scores, labels, [0.5])[0] == 0.5


def test_kfold_rejects_bad_input():
    with pytest.raises(ValueError, match="labels must be 0/1"):
        kfold_accuracy([0.1, 0.2], [0, 2], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        kfold_accuracy([0.1, np.nan], [0, 1], [0, 1])
    with pytest.raises(ValueError, match="at least 2 folds"):
        kfold_accuracy([0.1, 0.2], [0, 1], [0, 0])


# ---------- ROC, AUC, EER, TAR@FAR ----------

def test_perfect_separation():
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.0, -0.3])
    labels = np.array([1, 1, 1, 0, 0, 0])
    assert roc_auc(scores, labels) == 1.0
    rate, thd = eer(scores, labels)
    assert rate == 0.0
    assert 0.1 < thd <= 0.7
    grid = threshold_grid()
    assert accuracy_at_thresholds(scores, labels, [best_threshold(scores, labels, grid)])[0] == 1.0


def test_hand_computed_small_set():
    # positives 0.9, 0.8, 0.3; negatives 0.7, 0.2.  ROC points (FAR, TAR) by decreasing threshold:
    # inf (0,0) | 0.9 (0,1/3) | 0.8 (0,2/3) | 0.7 (1/2,2/3) | 0.3 (1/2,1) | 0.2 (1,1)
    scores = [0.9, 0.8, 0.3, 0.7, 0.2]
    labels = [1, 1, 1, 0, 0]
    far, tar, thr = roc_curve(scores, labels)
    assert np.allclose(far, [0, 0, 0, 0.5, 0.5, 1])
    assert np.allclose(tar, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    assert np.allclose(thr[1:], [0.9, 0.8, 0.7, 0.3, 0.2])
    assert roc_auc(scores, labels) == pytest.approx(5 / 6)  # 5 of the 6 (pos, neg) pairs ordered
    # FAR - FRR: -1/3 at 0.8, +1/6 at 0.7 -> crossing 2/3 of the way: EER 1/3, threshold 0.7333
    rate, thd = eer(scores, labels)
    assert rate == pytest.approx(1 / 3)
    assert thd == pytest.approx(0.8 - 0.1 * 2 / 3)
    at_half = tar_at_far(scores, labels, 0.5)
    assert at_half["tar"] == pytest.approx(1.0) and at_half["threshold"] == 0.3
    assert at_half["achievable"] is True
    below = tar_at_far(scores, labels, 0.4)  # 2 negatives: smallest non-zero FAR is 1/2
    assert below["tar"] == pytest.approx(2 / 3) and below["far"] == 0.0
    assert below["n_negative"] == 2 and below["min_far"] == 0.5 and below["achievable"] is False


def test_eer_exact_crossing():
    # positives 0.6, 0.4; negatives 0.5, 0.3: at 0.5 FAR = FRR = 1/2
    assert eer([0.6, 0.4, 0.5, 0.3], [1, 1, 0, 0]) == (0.5, 0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_and_tar_match_pairwise_reference(seed):
    scores, labels, _ = random_pairs(seed, n=120, quantise=True)  # many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    assert roc_auc(scores, labels) == pytest.approx(wins / (pos.size * neg.size))
    for target in (0.01, 0.05, 0.2):
        best = 0.0
        for t in set(scores.tolist()):  # accept score >= t
            if np.mean(neg >= t) <= target:
                best = max(best, float(np.mean(pos >= t)))
        assert tar_at_far(scores, labels, target)["tar"] == pytest.approx(best)


def test_tar_at_far_resolution_flag():
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 0], [3000, 3000])
    scores = rng.normal(labels * 0.5, 0.2)
    assert tar_at_far(scores, labels, 1e-3)["achievable"] is True  # 1/3000 < 1e-3
    subset = slice(2700, 3300)  # 300 positives, 300 negatives: FAR 1e-3 is below 1/300
    out = tar_at_far(scores[subset], labels[subset], 1e-3)
    assert out["achievable"] is False and out["n_negative"] == 300


def test_verification_report_is_json_and_percent():
    scores, labels, folds = random_pairs(3, n=600)
    report = verification_report(scores, labels, folds)
    text = json.dumps(report, allow_nan=False)
    assert '"1e-3"' in text
    kf = kfold_accuracy(scores, labels, folds)
    assert report["acc_mean"] == pytest.approx(100 * kf["mean"])
    assert len(report["fold_acc"]) == 10 and report["n_pairs"] == 600
    assert 0.5 < report["auc"] <= 1.0 and 0.0 <= report["eer"] < 0.5
    assert report["tar_at_far"]["1e-2"]["n_negative"] == 300
    assert set(verification_report(scores, labels, folds, far_targets=(0.05,))["tar_at_far"]) == {"5e-2"}


# ---------- scores files ----------

def _pairs(n=20) -> pd.DataFrame:
    return pd.DataFrame({"pair": np.arange(n), "fold": np.arange(n) // 10, "label": np.arange(n) % 2})


def test_load_scores_accepts_matching_file(tmp_path):
    pairs = _pairs()
    scores = pairs.assign(score=np.linspace(-1, 1, len(pairs)))
    scores.to_csv(tmp_path / "scores.csv", index=False)
    loaded = load_scores(tmp_path / "scores.csv", pairs, pairs_path=tmp_path / "pairs.txt")
    assert list(loaded.columns) == ["pair", "fold", "label", "score"]
    assert np.allclose(loaded["score"], scores["score"])


def test_load_scores_rejects_other_pairs_list(tmp_path):
    pairs = _pairs()
    path = tmp_path / "scores_7x6.csv"
    pairs_path = tmp_path / "pairs_fold1.txt"
    pairs.iloc[:-2].assign(score=0.0).to_csv(path, index=False)
    with pytest.raises(ValueError) as err:
        load_scores(path, pairs, pairs_path=pairs_path)
    assert str(path) in str(err.value) and str(pairs_path) in str(err.value)

    flipped = pairs.assign(score=0.0)
    flipped.loc[5, "label"] = 1 - flipped.loc[5, "label"]
    flipped.to_csv(path, index=False)
    with pytest.raises(ValueError, match="'label' at row 5") as err:
        load_scores(path, pairs, pairs_path=pairs_path)
    assert str(path) in str(err.value) and str(pairs_path) in str(err.value)


def test_load_scores_rejects_missing_columns(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"pair": [0], "score": [0.1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="missing columns"):
        load_scores(path)
