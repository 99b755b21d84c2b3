"""Face-verification metrics for pair scores (LFW View 2 protocol).

A pair is predicted "same" (label 1) when its score is strictly greater than
the threshold, as in the authors' evaluation. The threshold search is
vectorised: scores are sorted once and every threshold is placed with
``searchsorted``, so a 10,001-point grid costs O((n + G) log n), not O(n G).

Units: accuracies returned by ``kfold_accuracy`` are fractions in [0, 1] (as
the authors' code prints them); ``verification_report`` converts them to
percent (``acc_mean``, ``acc_std``, ``fold_acc``) to match the published
table. AUC, EER, TAR and FAR are always fractions.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

SCORE_COLUMNS = ("pair", "fold", "label", "score")


def threshold_grid(n: int = 10001) -> np.ndarray:
    """``n`` evenly spaced thresholds over [-1, 1] (n=10001: step 2e-4).

    Built as integers divided by (n - 1) / 2, like the authors'
    ``linspace(-10000, 10000, 10001) / 10000``, so every grid point is the
    correctly rounded decimal (a plain ``linspace(-1, 1, n)`` can be 1 ulp off,
    which matters when scores sit exactly on a grid point).
    """
    if n < 2:
        raise ValueError(f"threshold_grid needs n >= 2, got {n}")
    return np.linspace(-(n - 1), n - 1, n) / (n - 1)


def _check_scores_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores ({s.size}) and labels ({y.size}) differ in length")
    if s.size == 0:
        raise ValueError("no scores given")
    if not np.all(np.isfinite(s)):
        bad = np.flatnonzero(~np.isfinite(s))[:5].tolist()
        raise ValueError(f"scores contain NaN/inf (first indices {bad})")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"labels must be 0/1, got values {np.unique(y)[:10].tolist()}")
    return s, y.astype(bool)


def _correct_counts(s: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Number of correctly classified pairs at each threshold (exact integers)."""
    pos = np.sort(s[y])
    neg = np.sort(s[~y])
    # positives correct when score > t; negatives correct when score <= t
    true_pos = pos.size - np.searchsorted(pos, thresholds, side="right")
    true_neg = np.searchsorted(neg, thresholds, side="right")
    return true_pos + true_neg


def accuracy_at_thresholds(scores, labels, thresholds) -> np.ndarray:
    """Accuracy of the rule ``same iff score > t`` for every ``t`` in ``thresholds``."""
    s, y = _check_scores_labels(scores, labels)
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    return _correct_counts(s, y, t) / s.size


def _best_threshold(s: np.ndarray, y: np.ndarray, t: np.ndarray) -> float:
    counts = _correct_counts(s, y, t)
    # ties -> largest threshold (the authors scan upwards and keep ">=")
    return float(t[counts == counts.max()].max())


def best_threshold(scores, labels, thresholds) -> float:
    """Threshold maximising accuracy; among ties the largest threshold."""
    s, y = _check_scores_labels(scores, labels)
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    if t.size == 0:
        raise ValueError("no thresholds given")
    return _best_threshold(s, y, t)


def kfold_accuracy(scores, labels, folds, thresholds=None) -> dict:
    """Cross-validated accuracy: each fold is scored at the best threshold of the others.

    ``folds`` holds a fold id per pair; folds are visited in ascending id order.
    Returns fractions: mean, std (population std, ``np.std``, as the authors),
    fold_acc and thresholds (lists, one per fold) and the fold ids.
    """
    s, y = _check_scores_labels(scores, labels)
    f = np.asarray(folds).ravel()
    if f.shape != s.shape:
        raise ValueError(f"folds ({f.size}) and scores ({s.size}) differ in length")
    t = threshold_grid() if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    fold_ids = np.unique(f)
    if fold_ids.size < 2:
        raise ValueError(f"k-fold evaluation needs at least 2 folds, got {fold_ids.tolist()}")
    accs, thds = [], []
    for k in fold_ids:  # 10 folds; the threshold axis is vectorised
        test = f == k
        thd = _best_threshold(s[~test], y[~test], t)
        accs.append(float(np.mean((s[test] > thd) == y[test])))
        thds.append(thd)
    return {
        "mean": float(np.mean(accs)),
        "std": float(np.std(accs)),
        "fold_acc": accs,
        "thresholds": thds,
        "folds": [int(k) if np.issubdtype(fold_ids.dtype, np.integer) else k for k in fold_ids],
    }


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC: one point per distinct score, accepting pairs with ``score >= threshold``.

    Returns (far, tar, thresholds) ordered by decreasing threshold, starting at
    (0, 0) with threshold +inf and ending at (1, 1).
    """
    s, y = _check_scores_labels(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC needs both classes; got {n_pos} positive and {n_neg} negative pairs")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    last_of_value = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    far = np.r_[0.0, fp[last_of_value] / n_neg]
    tar = np.r_[0.0, tp[last_of_value] / n_pos]
    thresholds = np.r_[np.inf, s_sorted[last_of_value]]
    return far, tar, thresholds


def roc_auc(scores, labels) -> float:
    """Area under the ROC (trapezoidal over the exact curve; ties count one half)."""
    far, tar, _ = roc_curve(scores, labels)
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))


def eer(scores, labels) -> tuple[float, float]:
    """Equal error rate and its threshold, linearly interpolated where FAR meets FRR."""
    far, tar, thr = roc_curve(scores, labels)
    gap = far - (1.0 - tar)  # -1 at the start, +1 at the end; increasing
    i = int(np.argmax(gap >= 0))
    if gap[i] == 0 or i == 0:
        return float(far[i]), float(thr[i])
    w = gap[i - 1] / (gap[i - 1] - gap[i])  # fraction of the way from point i-1 to i
    rate = far[i - 1] + w * (far[i] - far[i - 1])
    if np.isinf(thr[i - 1]):  # crossing right after the +inf start point
        threshold = thr[i]
    else:
        threshold = thr[i - 1] + w * (thr[i] - thr[i - 1])
    return float(rate), float(threshold)


def tar_at_far(scores, labels, far: float) -> dict:
    """TAR at the operating point with the largest FAR not above ``far``.

    That is the lowest threshold whose FAR <= target (highest TAR allowed).
    With n negatives the smallest non-zero FAR is 1/n; ``achievable`` is False
    when the target lies below it (the value reported is then TAR at FAR 0).
    """
    fars, tars, thr = roc_curve(scores, labels)
    ok = np.flatnonzero(fars <= far)
    i = int(ok[-1])  # fars is non-decreasing and fars[0] == 0
    n_neg = int(np.sum(np.asarray(labels).ravel() == 0))
    return {
        "tar": float(tars[i]),
        "threshold": float(thr[i]),
        "far": float(fars[i]),
        "far_target": float(far),
        "n_negative": n_neg,
        "min_far": 1.0 / n_neg,
        "achievable": bool(far >= 1.0 / n_neg),
    }


def far_tag(far: float) -> str:
    """Readable, stable key of a FAR target: 0.01 -> '1e-2', 0.001 -> '1e-3'."""
    mantissa, exponent = f"{far:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def verification_report(scores, labels, folds, thresholds=None, far_targets=(1e-2, 1e-3)) -> dict:
    """All verification numbers for one configuration, JSON-serialisable.

    Accuracies in percent (acc_mean, acc_std, fold_acc), everything else fractions;
    ``tar_at_far`` is keyed by ``far_tag`` of each target.
    """
    kf = kfold_accuracy(scores, labels, folds, thresholds)
    rate, rate_thd = eer(scores, labels)
    y = np.asarray(labels).ravel()
    report = {
        "acc_mean": 100.0 * kf["mean"],
        "acc_std": 100.0 * kf["std"],
        "fold_acc": [100.0 * a for a in kf["fold_acc"]],
        "fold_thresholds": kf["thresholds"],
        "folds": kf["folds"],
        "auc": roc_auc(scores, labels),
        "eer": rate,
        "eer_threshold": rate_thd,
        "n_pairs": int(y.size),
        "n_positive": int(np.sum(y == 1)),
        "n_negative": int(np.sum(y == 0)),
    }
    report["tar_at_far"] = {far_tag(t): tar_at_far(scores, labels, t) for t in far_targets}
    return report


def load_scores(path: str | os.PathLike, expected_pairs: pd.DataFrame | None = None,
                pairs_path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read a scores CSV (``pair,fold,label,score``) and check it against the pairs list.

    ``expected_pairs`` (columns pair, fold, label; from ``pairs_path``) guards
    against scores computed on a different pairs file or in a different order.
    """
    path = Path(path)
    frame = pd.read_csv(path)
    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {list(SCORE_COLUMNS)}, "
                         f"found {list(frame.columns)}")
    frame = frame[list(SCORE_COLUMNS) + [c for c in frame.columns if c not in SCORE_COLUMNS]]
    if frame["score"].isna().any():
        rows = frame.index[frame["score"].isna()][:5].tolist()
        raise ValueError(f"{path}: empty/NaN scores at rows {rows}")
    if not frame["label"].isin([0, 1]).all():
        raise ValueError(f"{path}: labels must be 0/1, got {sorted(frame['label'].unique())[:10]}")
    if expected_pairs is None:
        return frame
    src = pairs_path if pairs_path is not None else "the pairs list"
    if len(frame) != len(expected_pairs):
        raise ValueError(f"{path} has {len(frame)} scores but {src} has {len(expected_pairs)} pairs; "
                         "the scores were computed on a different pairs list")
    for col in ("pair", "fold", "label"):
        ours = frame[col].to_numpy()
        theirs = expected_pairs[col].to_numpy()
        if not np.array_equal(ours, theirs):
            i = int(np.flatnonzero(ours != theirs)[0])
            raise ValueError(f"{path} and {src} disagree on {col!r} at row {i} "
                             f"({ours[i]!r} vs {theirs[i]!r}); the scores do not match the pairs list")
    return frame
