"""The training losses, BasicSR-style: each a class registered by name in ``LOSSES``.

The total is pixel + lambda * identity (METHOD.md, "Training"); ``train.losses`` names the
registered class of each term. A pixel loss compares the SR output with the clean target
(float NCHW in [-1, 1]); an identity loss compares the FNet's features of the SR output with
those of the HR face. A new loss is one class here (or in any imported module) with its
``@LOSSES.register("name")`` line; its ``role`` says which term it may fill.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..models.fnet import FaceRecognizer
from ..registry import LOSSES

UPSAMPLE_MODES = ("bilinear", "bicubic", "nearest")
ROLES = ("pixel", "identity")


class PixelLoss:
    """The pixel term, weight 1: ``loss(sr, target)``."""
    role = "pixel"

    def __call__(self, sr: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError


class IdentityLoss:
    """The identity term, weight lambda: ``loss(sr, hr_features)`` through the frozen ``fnet``, which
    sees ``sr`` resized to its geometry with ``upsample`` (train.identity_upsample)."""
    role = "identity"

    def __init__(self, fnet: FaceRecognizer, upsample: str):
        self.fnet, self.upsample = fnet, upsample

    def __call__(self, sr: Tensor, hr_features: Tensor) -> Tensor:
        raise NotImplementedError


@LOSSES.register("l1")
class L1(PixelLoss):
    """mean |SR - target|, in fp32 (the paper's)."""

    def __call__(self, sr: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(sr.float(), target)


@LOSSES.register("cosine")
class Cosine(IdentityLoss):
    """mean(1 - cos(FNet(up(SR)), FNet(HR))) (the paper's)."""

    def __call__(self, sr: Tensor, hr_features: Tensor) -> Tensor:
        return identity_loss(self.fnet, sr, hr_features, self.upsample)


def loss_class(name: str, role: str) -> type:
    """The registered loss ``name``, checked to fill the ``role`` term (key train.losses.<role>)."""
    try:
        cls = LOSSES.get(name)
    except KeyError as err:
        raise ValueError(f"train.losses.{role}: {err.args[0]}") from None
    if cls.role != role:
        raise ValueError(f"train.losses.{role}: loss {name!r} is a {cls.role} loss, not a {role} loss")
    return cls


def identity_loss(fnet: FaceRecognizer, sr: Tensor, hr_features: Tensor, mode: str) -> Tensor:
    """mean(1 - cos(FNet(up(SR)), FNet(HR))), FNet frozen but differentiable; ``up`` resizes sr to the
    FNet's geometry (the authors used bilinear)."""
    size = fnet.geometry.size
    sr = sr.float()  # under bf16 autocast: resize in fp32 (CPU has no bf16 antialiased resize); convs stay bf16
    if tuple(sr.shape[-2:]) != size:
        sr = F.interpolate(sr, size=size, mode=mode, align_corners=None if mode == "nearest" else False)
    return (1.0 - F.cosine_similarity(fnet(sr).float(), hr_features.float(), dim=1)).mean()
