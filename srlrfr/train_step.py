"""Training step: one SRNet for one identity-loss weight, from the cached pyramid."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .device import resolve_device


def train_step(pyramid_npz, cfg: dict, *, lam: float, fnet_weights, out_dir):
    from .models.fnet import load_fnet
    from .train import train_srnet
    t = cfg["train"]
    with np.load(pyramid_npz, allow_pickle=False) as z:
        levels = {int(k[1:]): z[k] for k in z.files if k.startswith("x")}
    if 1 not in levels:
        raise KeyError(f"{pyramid_npz} lacks the full-resolution level x1")
    device = resolve_device(t["device"])
    fnet = None
    if lam > 0:
        if not fnet_weights:
            raise ValueError(f"lambda={lam} needs FNet weights (--weights)")
        fnet = load_fnet(cfg["fnet"], fnet_weights, device)
    model = train_srnet(
        levels[1], pyramid=levels, fnet=fnet, lam=lam, out_dir=out_dir, arch=t["srnet"],
        arch_kwargs={"n_blocks": t["n_blocks"], "n_feats": t["n_feats"], "res_scale": t["res_scale"]},
        kernel=cfg["degrade"]["kernel"], batch_size=t["batch_size"], iterations=t["iterations"], lr=t["lr"],
        lr_step=t["lr_step"], lr_gamma=t["lr_gamma"], identity_upsample=t["identity_upsample"], amp=t["amp"],
        device=str(device), seed=t["seed"], checkpoint_every=t["checkpoint_every"], log_every=t["log_every"],
        stale_checkpoint="set_aside",  # a rerun with new params starts afresh, keeping the old checkpoint
    )
    # train_log.csv is the working log that survives a kill and is trimmed on
    # resume; the declared output is a snapshot taken once training is done.
    with atomic_path(Path(out_dir) / "losses.csv") as tmp:
        shutil.copyfile(Path(out_dir) / "train_log.csv", tmp)
    return model
