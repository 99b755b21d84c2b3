"""Verification protocols beyond the paper's one, on features already computed.

``hr_vs_lr`` (the paper's): each pair's first image at full resolution, the
second degraded and restored. ``lr_vs_lr``: both images degraded to the same
resolution and restored by the same method. The resolution matrix: the first
image (gallery) at resolution A, the second (probe) at B, one method. All of
them score the same pairs with the same folds and threshold search.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..damaged import load_npz
from .verification import threshold_grid, verification_report

PROTOCOLS = ("hr_vs_lr", "lr_vs_lr")


class Features:
    """Features of some images by image_id (an evaluation's features.npz, or the full-resolution one)."""

    def __init__(self, ids, features: np.ndarray):
        self.ids = np.asarray(ids).astype(str)
        self.features = np.asarray(features)
        self._pos = {k: i for i, k in enumerate(self.ids.tolist())}

    @classmethod
    def load(cls, path) -> Features:
        z = load_npz(path, ("ids", "features"))
        return cls(z["ids"], z["features"])

    def take(self, ids, where: str = "") -> np.ndarray:
        try:
            return self.features[[self._pos[i] for i in ids]]
        except KeyError as exc:
            raise KeyError(f"image {exc.args[0]!r} has no feature{' in ' + where if where else ''}; "
                           f"rerun the evaluation that writes it") from None


def cosine_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return np.einsum("ij,ij->i", a, b)


def pair_report(pairs: pd.DataFrame, gallery: Features, probe: Features, *, threshold_steps: int = 10001,
                far_targets=(1e-2, 1e-3)) -> dict:
    """Verification of ``pairs`` (pair, fold, label, left, right) with left from ``gallery``, right from ``probe``."""
    scores = cosine_scores(gallery.take(pairs["left"]), probe.take(pairs["right"]))
    return verification_report(scores, pairs["label"].to_numpy(), pairs["fold"].to_numpy(),
                               thresholds=threshold_grid(threshold_steps), far_targets=tuple(far_targets))


def resolution_matrix(pairs: pd.DataFrame, by_res: dict[str, Features], **kwargs) -> pd.DataFrame:
    """Accuracy (%) for every (gallery resolution, probe resolution) of ``by_res``: one row per cell."""
    rows = []
    for g, gallery in by_res.items():
        for p, probe in by_res.items():
            m = pair_report(pairs, gallery, probe, **kwargs)
            rows.append({"gallery": g, "probe": p, "acc_mean": m["acc_mean"], "acc_std": m["acc_std"],
                         "auc": m["auc"], "eer": m["eer"], "n_pairs": m["n_pairs"]})
    return pd.DataFrame(rows)
