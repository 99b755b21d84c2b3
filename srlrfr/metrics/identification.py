"""Closed-set identification on LFW: the gallery/probe split, ranks, rank-k and the CMC curve.

The split (docs/beyond.md, "Identification"): among the usable ingested images (not
damaged; with a face, under align.no_face: exclude), the identities with at
least two images; per identity the first image by sorted image_id is the
gallery entry, the others are probes. Every probe's identity is in the
gallery (closed set). The gallery stays at full resolution; probes are
degraded and restored by the method under test.

A probe's rank is 1 + the number of gallery entries of other identities whose
cosine similarity is >= the true entry's: ties count against the probe, so a
constant feature never scores rank 1 by luck.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def identification_split(images: pd.DataFrame, usable: np.ndarray | None = None) -> pd.DataFrame:
    """``images`` (image_id, identity) -> rows of the split: image_id, identity, role ('gallery'/'probe').

    ``usable``: per row of ``images``, False for images that may not be used.
    Ordered by identity then image_id, so the split is the same on every run.
    """
    table = images[["image_id", "identity"]].astype(str)
    if usable is not None:
        table = table[np.asarray(usable, dtype=bool)]
    table = table.sort_values(["identity", "image_id"], kind="stable")
    counts = table["identity"].map(table["identity"].value_counts())
    table = table[counts >= 2].reset_index(drop=True)
    first = ~table["identity"].duplicated()
    return table.assign(role=np.where(first, "gallery", "probe"))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def probe_ranks(probe_feats: np.ndarray, probe_ids, gallery_feats: np.ndarray, gallery_ids) -> np.ndarray:
    """1-based rank of each probe's true identity among the gallery (cosine similarity)."""
    gallery_ids = np.asarray(gallery_ids)
    if len(set(gallery_ids.tolist())) != len(gallery_ids):
        raise ValueError("the gallery must hold one entry per identity")
    where = {g: i for i, g in enumerate(gallery_ids.tolist())}
    missing = [p for p in np.asarray(probe_ids).tolist() if p not in where]
    if missing:
        raise ValueError(f"probe identities not in the gallery (closed set): {missing[:5]}")
    truth = np.array([where[p] for p in np.asarray(probe_ids).tolist()], dtype=np.int64)
    sims = _unit(probe_feats) @ _unit(gallery_feats).T
    true_sim = sims[np.arange(len(truth)), truth]
    return (sims >= true_sim[:, None]).sum(axis=1)  # the true entry counts itself: rank >= 1


def cmc(ranks: np.ndarray, max_rank: int) -> np.ndarray:
    """Fraction of probes whose true identity is within the top k, for k = 1..max_rank."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no probes to rank")
    return np.array([(ranks <= k).mean() for k in range(1, max_rank + 1)])


def identification_report(ranks: np.ndarray, n_gallery: int, max_rank: int = 20) -> dict:
    """Rank-1 and rank-5 (percent) and the CMC curve (percent, up to min(max_rank, gallery size))."""
    curve = cmc(ranks, min(max_rank, n_gallery)) * 100
    at = lambda k: float(curve[min(k, len(curve)) - 1])  # noqa: E731  (a gallery smaller than k: all found)
    return {"rank1": at(1), "rank5": at(5), "cmc": [float(v) for v in curve],
            "n_probes": int(len(ranks)), "n_gallery": int(n_gallery)}
