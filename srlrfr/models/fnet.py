"""Face recogniser wrapper: every FNet takes the srlrfr pixel convention.

``FaceRecognizer.forward`` receives RGB [-1, 1] NCHW crops of its geometry's
size and applies the backbone's own departures (channel order, resize to its
input size, normalisation) differentiably, so the identity loss can push
gradients through it into the SRNet.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..geometry import get_geometry
from ..registry import FNETS
from . import catalog  # noqa: F401  (fills the registries)
from .base import FNetSpec
from .batching import map_batches
from .srnet import is_channels_last, param_dtype, swap_rgb_bgr, to_tensor
from .weights import build_empty, load_into, load_state_dict_file


class FaceRecognizer(nn.Module):
    """An FNetSpec's backbone behind the common RGB [-1, 1] interface."""

    def __init__(self, spec: FNetSpec, backbone: nn.Module, source: str = ""):
        super().__init__()
        if spec.channel_order not in ("rgb", "bgr"):
            raise ValueError(f"FNet {spec.name}: channel_order must be 'rgb' or 'bgr', got {spec.channel_order!r}")
        self.spec = spec
        self.backbone = backbone
        self.geometry = get_geometry(spec.geometry)
        self.source = source  # weights file, for provenance
        self.frozen = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def feature_dim(self) -> int:
        return self.spec.feature_dim

    def freeze(self) -> "FaceRecognizer":
        """No parameter gradients, and eval mode that ``.train()`` cannot undo (BN stats stay put)."""
        self.requires_grad_(False)
        self.frozen = True
        return super().train(False)

    def train(self, mode: bool = True) -> "FaceRecognizer":
        return super().train(mode and not self.frozen)

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(self.prepare(x))

    def prepare(self, x: Tensor) -> Tensor:
        """RGB [-1, 1] crops -> the backbone's input: channel order, size, normalisation, memory layout.

        Every step commutes with a horizontal flip, so ``prepare(x).flip(-1)`` is the
        mirror's input (extract_features prepares once for both)."""
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != self.geometry.size:
            raise ValueError(f"FNet {self.name} expects (N, 3, {self.geometry.height}, {self.geometry.width}) "
                             f"RGB crops of geometry {self.geometry.name!r}, got {tuple(x.shape)}")
        if self.spec.channel_order == "bgr":
            x = swap_rgb_bgr(x)
        size = tuple(self.spec.input_size)
        if tuple(x.shape[-2:]) != size:
            shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
            # NCHW in: the CPU antialiased resize takes twice as long on channels-last input
            x = F.interpolate(x.contiguous(), size=size, mode="bilinear", align_corners=False, antialias=shrinking)
        x = self.spec.normalize(x)
        fmt = torch.channels_last if is_channels_last(self.backbone) else torch.contiguous_format
        return x.to(param_dtype(self.backbone)).contiguous(memory_format=fmt)  # bf16 for evaluate.precision


def load_fnet(name: str, weights_path: str | os.PathLike, device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32) -> FaceRecognizer:
    """Build registered FNet ``name``, load its weights (weights-only), freeze it.

    Then the spec's ``fuse`` rewrite (same function, fewer operations) and
    channels-last weights, the layout oneDNN (CPU) and cuDNN (GPU) convolutions
    run fastest in (benchmarks/bench_forward.py measures each), in ``dtype``
    (evaluate.precision; inputs are cast to it in ``prepare``).
    """
    spec: FNetSpec = FNETS.get(name)
    backbone = build_empty(spec.build)
    load_into(backbone, load_state_dict_file(weights_path, hint=spec.weights), weights_path)
    if spec.fuse is not None:
        backbone = spec.fuse(backbone)
    fnet = FaceRecognizer(spec, backbone, source=str(Path(weights_path))).freeze()
    return fnet.to(device, dtype, memory_format=torch.channels_last)


def extract_features(fnet: FaceRecognizer, images: np.ndarray, *, batch_size: int = 64,
                     device: torch.device | str | None = None, flip: bool = True,
                     progress: bool = True) -> np.ndarray:
    """float32 (N, 2*dim) = concat(f(x), f(hflip(x))) per image (the authors' protocol);
    (N, dim) when ``flip`` is False. ``images`` are uint8 RGB (N, H, W, 3) crops.
    Batches go over the CPU's threads as in :func:`srlrfr.models.batching.map_batches`."""
    if device is None:
        device = next(fnet.parameters()).device

    def embed(start: int, stop: int) -> np.ndarray:
        x = fnet.prepare(to_tensor(images[start:stop], device))
        feats = fnet.backbone(x)
        if flip:
            feats = torch.cat([feats, fnet.backbone(x.flip(-1))], dim=1)
        return feats.float().cpu().numpy()

    out = np.empty((len(images), fnet.feature_dim * (2 if flip else 1)), dtype=np.float32)
    for start, stop, feats in map_batches(embed, len(images), batch_size, device, desc=f"features {fnet.name}",
                                          progress=progress):
        out[start:stop] = feats
    return out
