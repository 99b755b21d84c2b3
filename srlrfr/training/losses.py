"""The identity loss: mean(1 - cos(FNet(up(SR)), FNet(HR))), FNet frozen but differentiable."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..models.fnet import FaceRecognizer

UPSAMPLE_MODES = ("bilinear", "bicubic", "nearest")


def identity_loss(fnet: FaceRecognizer, sr: Tensor, hr_features: Tensor, mode: str) -> Tensor:
    """``up`` resizes sr to the FNet's geometry (the authors used bilinear)."""
    size = fnet.geometry.size
    sr = sr.float()  # under bf16 autocast: resize in fp32 (CPU has no bf16 antialiased resize); convs stay bf16
    if tuple(sr.shape[-2:]) != size:
        sr = F.interpolate(sr, size=size, mode=mode, align_corners=None if mode == "nearest" else False)
    return (1.0 - F.cosine_similarity(fnet(sr).float(), hr_features.float(), dim=1)).mean()
