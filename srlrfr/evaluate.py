"""LFW verification of one (method, resolution) configuration.

The first image of every pair stays at full resolution; the second is
degraded, then brought back to the crop size by the method under test
(METHOD.md). Full-resolution features are computed once per FNet
(``hr_features``) and shared by every configuration; a configuration only
computes features for the distinct probe images it restores.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import save_npz, write_csv, write_json
from .degrade import resize_batch

log = logging.getLogger(__name__)

# Upsampling baselines. 'bilinear_authors' is what the authors' "Bicubic" row
# ran: their resize call put INTER_CUBIC in the dst slot, so OpenCV used its
# default, bilinear (METHOD.md, pitfalls).
# Values are registered resize kernels (srlrfr.degrade).
BASELINES = {"bicubic": "cv2_bicubic", "bilinear_authors": "cv2_bilinear"}


@dataclass
class Aligned:
    images: np.ndarray      # (N, H, W, 3) uint8 RGB
    ids: np.ndarray         # (N,) image ids
    ok: np.ndarray          # (N,) landmarks found

    @classmethod
    def load(cls, path: str | Path) -> "Aligned":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["images"], z["ids"].astype(str), z["landmark_ok"].astype(bool))

    def rows(self, ids) -> np.ndarray:
        lookup = {k: i for i, k in enumerate(self.ids)}
        try:
            return np.array([lookup[i] for i in ids], dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"image {exc.args[0]!r} is not among the aligned images") from None


def load_probes(path: str | Path, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``x{factor}`` level of a degraded-crop file (see degrade.degrade_file)."""
    with np.load(path, allow_pickle=False) as z:
        key = f"x{factor}"
        if key not in z.files:
            raise KeyError(f"{path} has no {key} level (has: {', '.join(k for k in z.files if k != 'ids')})")
        return z[key], z["ids"].astype(str)


def upsample(images: np.ndarray, size_hw: tuple[int, int], method: str) -> np.ndarray:
    return resize_batch(images, tuple(size_hw), BASELINES[method])


def restore(method: str, probes: np.ndarray, size_hw: tuple[int, int], *, srnet=None,
            batch_size: int = 64, device="cpu") -> np.ndarray:
    """Bring low-resolution probes back to the crop size with ``method``."""
    if probes.shape[1:3] == tuple(size_hw):
        return probes
    if method in BASELINES:
        return upsample(probes, size_hw, method)
    if srnet is None:
        raise ValueError(f"method {method!r} needs an SRNet checkpoint")
    from .models.srnet import super_resolve
    model, info = srnet
    sr = super_resolve(model, info, probes, batch_size=batch_size, device=device)
    if sr.shape[1:3] != tuple(size_hw):
        # x4 output smaller than the crop (7x6 -> 28x24): finish with bicubic, as the paper.
        sr = upsample(sr, size_hw, "bicubic")
    return sr


def hr_features(aligned_path, fnet_name: str, fnet_weights, out_path, *, batch_size=128, device="auto") -> None:
    """Features (flip-concatenated) of every aligned full-resolution image."""
    from .device import resolve_device
    from .models.fnet import extract_features, load_fnet
    dev = resolve_device(device)
    aligned = Aligned.load(aligned_path)
    fnet = load_fnet(fnet_name, fnet_weights, dev)
    feats = extract_features(fnet, aligned.images, batch_size=batch_size, device=dev)
    save_npz(out_path, features=feats.astype(np.float32), ids=aligned.ids)


def cosine_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return np.einsum("ij,ij->i", a, b)


def example_pairs(n_pairs: int, k: int, seed: int) -> np.ndarray:
    """The fixed, seeded set of pair indices shown in the restored-face grid."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_pairs, size=min(k, n_pairs), replace=False))


def evaluate_config(*, pairs_csv, aligned_npz, hr_features_npz, probes_npz, factor: int = 1, method: str,
                    resolution: str, fnet_name: str, fnet_weights, srnet_path=None, out_dir, no_face: str = "center",
                    threshold_steps: int = 10001, far_targets=(1e-2, 1e-3), batch_size: int = 128,
                    device: str = "auto", examples: int = 6, seed: int = 0) -> dict:
    """Score every pair for one configuration; write scores, metrics and examples."""
    from .device import resolve_device
    from .metrics.restoration import restoration_report
    from .metrics.verification import threshold_grid, verification_report
    from .models.fnet import extract_features, load_fnet

    out_dir = Path(out_dir)
    dev = resolve_device(device)
    pairs = pd.read_csv(pairs_csv)
    aligned = Aligned.load(aligned_npz)
    with np.load(hr_features_npz, allow_pickle=False) as z:
        hr_feats, hr_ids = z["features"], z["ids"].astype(str)
    if not np.array_equal(hr_ids, aligned.ids):
        raise ValueError(f"{hr_features_npz} was computed for other images than {aligned_npz}; rebuild it")

    left = aligned.rows(pairs["left"])
    right_ids = pd.unique(pairs["right"])
    right_rows = aligned.rows(right_ids)
    keep = np.ones(len(pairs), dtype=bool)
    if no_face == "exclude":
        keep = aligned.ok[left] & aligned.ok[aligned.rows(pairs["right"])]
    size_hw = aligned.images.shape[1:3]

    if probes_npz is None:  # full resolution: no degradation, nothing restored
        restored = aligned.images[right_rows]
        probe_feats = hr_feats[right_rows]
        lr = None
    else:
        probes, probe_ids = load_probes(probes_npz, factor)
        lookup = {k: i for i, k in enumerate(probe_ids)}
        lr = probes[[lookup[i] for i in right_ids]]
        srnet = None
        if srnet_path is not None:
            from .models.srnet import load_srnet
            srnet = load_srnet(srnet_path, dev)
        restored = restore(method, lr, size_hw, srnet=srnet, batch_size=batch_size, device=dev)
        fnet = load_fnet(fnet_name, fnet_weights, dev)
        probe_feats = extract_features(fnet, restored, batch_size=batch_size, device=dev)

    right_pos = {k: i for i, k in enumerate(right_ids)}
    right = np.array([right_pos[i] for i in pairs["right"]])
    scores = cosine_scores(hr_feats[left], probe_feats[right])
    # Every pair keeps its row (so scores line up with the pairs list); 'used'
    # is False for pairs excluded by the no-face policy.
    table = pairs[["pair", "fold", "label"]].assign(score=scores, used=keep)
    write_csv(out_dir / "scores.csv", table)

    used = table[keep]
    metrics = verification_report(used["score"].to_numpy(), used["label"].to_numpy(),
                                  used["fold"].to_numpy(), thresholds=threshold_grid(threshold_steps),
                                  far_targets=tuple(far_targets))
    metrics.update(method=method, resolution=resolution, fnet=fnet_name,
                   n_pairs=int(keep.sum()), n_excluded=int((~keep).sum()),
                   n_probe_images=int(len(right_ids)))
    if lr is not None:
        metrics["restoration"] = restoration_report(restored, aligned.images[right_rows])
    write_json(out_dir / "metrics.json", metrics)

    chosen = example_pairs(len(pairs), examples, seed)
    ex_right = right[chosen]
    save_npz(out_dir / "examples.npz", pair=pairs["pair"].to_numpy()[chosen],
             restored=restored[ex_right],
             probe=lr[ex_right] if lr is not None else restored[ex_right],
             ground_truth=aligned.images[right_rows[ex_right]])
    log.info("%s %s %s: acc %.2f%% +- %.2f", fnet_name, method, resolution, metrics["acc_mean"], metrics["acc_std"])
    return metrics
