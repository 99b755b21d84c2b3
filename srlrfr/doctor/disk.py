"""Disk space the run needs, against what is free on each filesystem it writes to.

Counted: downloads not yet in the cache, archives not yet extracted, aligned
crops (N x H x W x 3 bytes, stored uncompressed), LFW probes and the CelebA
training pyramid, landmarks, features, FNet weights, each SRNet and its
checkpoint, the authors' checkpoints. An output that already exists is
charged only what it still lacks, so a rerun is not charged twice.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from .. import config as cfgmod
from ..catalog import load_all
from ..registry import FNETS, GEOMETRIES, SRNETS
from ..storage import IMAGES, level_name
from .base import FAIL, OK, Check, human
from .inputs import DiskItem, Plan, state_bytes


def plan_outputs(cfg: dict, root: Path, plan: Plan) -> list[DiskItem]:
    """What the run writes besides downloads: crops, probes, pyramid, features, models.

    Each item is counted less what its file already holds, so a rerun is not
    charged again for outputs that exist (paths as in workflow/rules).
    """
    # deferred: loads torch, cv2
    from ..methods import SRNetId
    from ..training.pyramid import PYRAMID_FACTORS
    load_all()
    fnet = cfg["fnet"]
    spec = FNETS.get(fnet)
    g = GEOMETRIES.get(spec.geometry)
    crop = g.height * g.width * 3  # uint8 RGB, stored uncompressed
    nl, nc = plan.lfw_images, plan.celeba_images

    def levels(dataset: str, n: int, factors) -> list[DiskItem]:  # one x<f>.npy per factor, as the degrade step
        return [DiskItem(f"{dataset} x{f} level", root / f"data/degraded/{dataset}_{g.name}" / level_name(f),
                         n * crop // f**2) for f in factors if f != 1]

    items = [
        DiskItem("aligned LFW crops", root / f"data/aligned/lfw_{g.name}" / IMAGES, nl * crop),
        DiskItem("aligned CelebA crops", root / f"data/aligned/celeba_{g.name}" / IMAGES, nc * crop),
        *levels("lfw", nl, cfg["degrade"]["factors"]),
        *levels("celeba", nc, PYRAMID_FACTORS),
        DiskItem("landmarks and indexes", root / "data/landmarks", (nl + nc) * 300),
        DiskItem("full-resolution features", root / f"results/features/lfw/{fnet}/hr.npz", nl * spec.feature_dim * 8),
        DiskItem("FNet weights", root / f"models/fnets/{fnet}.pt", state_bytes(spec.build)),
    ]
    for entry in cfgmod.srnet_entries(cfg):
        name = entry.get("name", entry["type"])
        kwargs = {k: v for k, v in entry.items() if k not in ("type", "name")}
        sr = state_bytes(SRNETS.get(entry["type"]).build, **kwargs)
        for lam in cfgmod.trained_lambdas(cfg):
            folder = root / SRNetId(name, float(lam), fnet).folder
            items.append(DiskItem(f"SRNet {name} lambda={lam}", folder / "model.pt", sr))
            # checkpoint: the weights plus Adam's two moments per weight
            items.append(DiskItem(f"SRNet {name} lambda={lam} checkpoint", folder / "checkpoint.pt", 3 * sr))
    for name in cfg["evaluate"]["authors_checkpoints"]:
        edsr = SRNETS.get("edsr")
        items.append(DiskItem(f"authors' {name}", root / f"models/authors/{name}/model.pt",
                              state_bytes(edsr.build, **edsr.defaults)))
    return [DiskItem(i.what, i.path, max(i.size - (i.path.stat().st_size if i.path.is_file() else 0), 0))
            for i in items]


def _existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(items: list[DiskItem], usage: Callable = shutil.disk_usage) -> list[Check]:
    """Bytes still to write against free space, per filesystem (the cache may live elsewhere)."""
    by_fs: dict[int, tuple[Path, list[DiskItem]]] = {}
    for item in items:
        anchor = _existing(item.path)
        by_fs.setdefault(os.stat(anchor).st_dev, (anchor, []))[1].append(item)
    out = []
    for anchor, group in by_fs.values():
        need = sum(i.size for i in group)
        free = usage(anchor).free
        top = ", ".join(f"{i.what} {human(i.size)}" for i in sorted(group, key=lambda i: -i.size)[:4] if i.size)
        detail = f"needs ~{human(need)}, {human(free)} free on the disk of {anchor}" + (f" ({top})" if top else "")
        out.append(Check("disk", "disk", OK, detail) if need <= free else
                   Check("disk", "disk", FAIL, detail,
                         fix=f"free {human(need - free)} there, or set data.cache to a larger disk"))
    return out
