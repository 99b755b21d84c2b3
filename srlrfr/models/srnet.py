"""SRNet checkpoints, the authors' EDSR import, batched super-resolution, and
the uint8 <-> tensor pixel conversions shared by all networks.

Our checkpoint format (read weights-only):
``{"arch": str, "kwargs": dict, "state_dict": ..., "channel_order": "rgb"|"bgr", "meta": dict}``.
``channel_order`` is what the network consumes and produces; models trained
here are RGB, the authors' EDSR checkpoints are BGR.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import save_torch
from ..data.download import file_sha256
from ..registry import SRNETS
from . import catalog  # noqa: F401  (fills the registries)
from .batching import map_batches
from .weights import CheckpointError, build_empty, load_checkpoint, load_into, load_state_dict_file

CHANNEL_ORDERS = ("rgb", "bgr")


# --- pixel conventions -------------------------------------------------------

def to_tensor(images: np.ndarray | torch.Tensor, device: torch.device | str | None = None,
              non_blocking: bool = False) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [-1, 1] (channel order unchanged).

    ``images`` may be a uint8 tensor already (pinned, for a ``non_blocking`` copy to the GPU).
    """
    if images.dtype not in (np.uint8, torch.uint8) or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {tuple(images.shape)}")
    t = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    t = t.to(device, non_blocking=non_blocking)  # move uint8: 4x less traffic
    return t.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3), rounded and clipped."""
    if t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(f"expected a (N, 3, H, W) tensor, got shape {tuple(t.shape)}")
    u = ((t.detach().float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
    return u.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def swap_rgb_bgr(t: torch.Tensor) -> torch.Tensor:
    return t.flip(1)


def param_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's weights (inputs are cast to it: bf16 under evaluate.precision)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def is_channels_last(model: nn.Module) -> bool:
    """Whether the model's first conv weight is stored channels-last (NHWC)."""
    w = next((p for p in model.parameters() if p.ndim == 4), None)
    return w is not None and w.is_contiguous(memory_format=torch.channels_last)


# --- checkpoints ---------------------------------------------------------------

def build_srnet(arch: str, kwargs: dict | None = None) -> tuple[nn.Module, dict]:
    """Build a registered SRNet; returns (model, the full kwargs with defaults filled in)."""
    spec = SRNETS.get(arch)
    full = {**spec.defaults, **(kwargs or {})}
    return spec.build(**full), full


def save_srnet(path: str | os.PathLike, model: nn.Module, arch: str, kwargs: dict,
               channel_order: str, meta: dict | None = None) -> Path:
    """Write our SR checkpoint atomically (plain types only, so it loads weights-only)."""
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}")
    ckpt = {"arch": arch, "kwargs": dict(kwargs),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "channel_order": channel_order, "meta": dict(meta or {})}
    path = Path(path)
    save_torch(path, ckpt)
    return path


def load_srnet(path: str | os.PathLike, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> tuple[nn.Module, dict]:
    """Load one of our SR checkpoints -> (model in eval mode on ``device``, in ``dtype``, info).

    info holds arch, kwargs, channel_order, meta and scale.
    """
    ckpt = load_checkpoint(path, hint="train one (srlrfr train) or import the authors' EDSR (srlrfr import-authors)")
    if not isinstance(ckpt, dict) or not {"arch", "kwargs", "state_dict", "channel_order"} <= ckpt.keys():
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path} is not an srlrfr SR checkpoint (needs arch, kwargs, state_dict, "
                              f"channel_order); found {found}. Authors' .pth files need import_authors_edsr.")
    if ckpt["channel_order"] not in CHANNEL_ORDERS:
        raise CheckpointError(f"{path}: channel_order {ckpt['channel_order']!r} not in {CHANNEL_ORDERS}")
    model, kwargs = build_empty(build_srnet, ckpt["arch"], ckpt["kwargs"])
    load_into(model, ckpt["state_dict"], path)
    model.to(device, dtype, memory_format=torch.channels_last).eval()  # the convs' fastest layout (super_resolve)
    info = {"arch": ckpt["arch"], "kwargs": kwargs, "channel_order": ckpt["channel_order"],
            "meta": ckpt.get("meta", {}), "scale": int(kwargs.get("scale", SRNETS.get(ckpt["arch"]).scale)),
            "path": str(path)}
    return model, info


def import_authors_edsr(pth_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Convert an authors' EDSR ``.pth`` (BGR, maybe ``module.``-prefixed) into our format.

    The architecture size is read off the keys, then the weights are loaded
    strictly into our EDSR, so a file that does not fit fails here, not later.
    """
    hint = "srlrfr import-authors edsr_baseline|edsr_lambda0.5 (downloads, verifies and extracts the 7z parts)"
    sd = load_state_dict_file(pth_path, hint=hint)
    if "conv1.weight" not in sd:
        raise CheckpointError(f"{pth_path}: no conv1.weight; not an authors' EDSR checkpoint "
                              f"(first keys: {list(sd)[:5]})")
    n_blocks = len({k.split(".")[1] for k in sd if k.startswith("res_blocks.")})
    n_stages = len({k.split(".")[1] for k in sd if k.startswith("upsampler.")})
    kwargs = {"n_blocks": n_blocks, "n_feats": int(sd["conv1.weight"].shape[0]),
              "res_scale": 0.1, "scale": 2 ** n_stages}
    model, kwargs = build_srnet("edsr", kwargs)
    load_into(model, sd, pth_path)
    meta = {"source": Path(pth_path).name, "sha256": file_sha256(pth_path),
            "note": "imported from the authors' EDSR checkpoint (BGR in/out)"}
    return save_srnet(out_path, model, "edsr", kwargs, channel_order="bgr", meta=meta)


# --- inference -----------------------------------------------------------------

def super_resolve(model: nn.Module, info: dict, images: np.ndarray, *, batch_size: int = 32,
                  device: torch.device | str | None = None, progress: bool = False) -> np.ndarray:
    """uint8 RGB (N, h, w, 3) -> uint8 RGB (N, s*h, s*w, 3) through an SRNet of any channel order.

    Inputs go in channels-last when the model's weights are (as ``load_srnet`` leaves them);
    batches over the CPU's threads as in :func:`srlrfr.models.batching.map_batches`."""
    if device is None:
        device = next(model.parameters()).device
    bgr = info["channel_order"] == "bgr"
    fmt = torch.channels_last if is_channels_last(model) else torch.contiguous_format
    dtype = param_dtype(model)

    def restore(start: int, stop: int) -> np.ndarray:
        x = to_tensor(images[start:stop], device).to(dtype).contiguous(memory_format=fmt)
        y = model(swap_rgb_bgr(x) if bgr else x)
        return to_uint8(swap_rgb_bgr(y) if bgr else y)

    outs = [out for _, _, out in map_batches(restore, len(images), batch_size, device, desc="super-resolve",
                                             progress=progress)]
    if not outs:
        s = int(info.get("scale", 4))
        return np.empty((0, images.shape[1] * s, images.shape[2] * s, 3), np.uint8)
    return np.concatenate(outs)
