"""IMDN, a lightweight second SRNet: Hui, Gao, Yang & Wang, "Lightweight Image Super-Resolution
with Information Multi-distillation Network", ACM MM 2019. Written here from the paper.

Why this one: at its published size (6 blocks of 64 channels) it has 715K parameters, 2%
of the paper's EDSR 32x256 (43M) and about as many as EDSR 4x64, yet it matches far larger
networks on the SR benchmarks; its convolutions are mostly 48 channels wide, so it trains
usefully on a CPU or a laptop GPU. It also differs from EDSR in kind (feature distillation
and channel attention instead of a plain residual stack), which makes the comparison worth a
table row.

The network, as the paper describes it:
- a 3x3 convolution from RGB to ``n_feats`` channels;
- ``n_blocks`` information multi-distillation blocks (IMDB). Each refines progressively:
  a 3x3 convolution, then the channels split into a distilled part (``distill_ratio`` of
  them, kept) and a coarse part that the next 3x3 convolution expands back to ``n_feats``
  and splits again; three such steps, then a last 3x3 convolution distils the coarse part.
  The four distilled parts are concatenated (``n_feats`` channels again), weighted by
  contrast-aware channel attention (CCA: per channel, the standard deviation plus the mean
  over space, squeezed by ``reduction`` and expanded through 1x1 convolutions, a sigmoid
  gate), fused by a 1x1 convolution and added to the block's input;
- every block's output is concatenated, fused by a 1x1 convolution, refined by a 3x3
  convolution and added to the first convolution's features;
- a 3x3 convolution to 3 * scale^2 channels and one pixel shuffle by ``scale``.
Activations are leaky ReLUs with slope 0.05 after the refining convolutions of a block
and after the fusion of all blocks. With the defaults and scale 4 this is 715,176
parameters, the paper's 715K.

Departures, as for EDSR here: a tanh on the output so pixels stay in [-1, 1] like
srlrfr's other networks, and a tiny epsilon under CCA's square root so a constant channel
does not give an infinite gradient.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ...registry import SRNETS
from ..base import SRNetSpec


def _conv(c_in: int, c_out: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=k, padding=k // 2)


class ContrastChannelAttention(nn.Module):
    """Per-channel gate from the channel's contrast (std + mean over space)."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = ((x - mean).pow(2).mean(dim=(2, 3), keepdim=True) + 1e-12).sqrt()
        return x * self.gate(std + mean)


class IMDB(nn.Module):
    """Information multi-distillation block: three distil-and-refine steps, a last distillation,
    channel attention over the concatenated distilled parts, 1x1 fusion, residual."""

    def __init__(self, n_feats: int, distilled: int, reduction: int, slope: float):
        super().__init__()
        self.distilled = distilled
        self.coarse = coarse = n_feats - distilled
        self.refine = nn.ModuleList([_conv(n_feats, n_feats), _conv(coarse, n_feats), _conv(coarse, n_feats)])
        self.last = _conv(coarse, distilled)
        self.act = nn.LeakyReLU(slope, inplace=True)
        self.attention = ContrastChannelAttention(4 * distilled, reduction)
        self.fuse = _conv(4 * distilled, n_feats, 1)

    def forward(self, x: Tensor) -> Tensor:
        kept, h = [], x
        for conv in self.refine:
            d, h = torch.split(self.act(conv(h)), [self.distilled, self.coarse], dim=1)
            kept.append(d)
        kept.append(self.last(h))
        return self.fuse(self.attention(torch.cat(kept, dim=1))) + x


class IMDN(nn.Module):
    """(N, 3, h, w) in [-1, 1] -> (N, 3, scale*h, scale*w) in [-1, 1]."""

    def __init__(self, n_blocks: int = 6, n_feats: int = 64, distill_ratio: float = 0.25, reduction: int = 16,
                 slope: float = 0.05, scale: int = 4):
        super().__init__()
        distilled = round(n_feats * distill_ratio)
        if n_blocks < 1 or not 0 < distilled < n_feats:
            raise ValueError(f"IMDN needs n_blocks >= 1 and 0 < n_feats * distill_ratio < n_feats, got "
                             f"n_blocks={n_blocks}, n_feats={n_feats}, distill_ratio={distill_ratio}")
        if scale < 2:
            raise ValueError(f"IMDN scale must be >= 2, got {scale}")
        self.scale = scale
        self.head = _conv(3, n_feats)
        self.blocks = nn.ModuleList([IMDB(n_feats, distilled, reduction, slope) for _ in range(n_blocks)])
        self.fuse = nn.Sequential(_conv(n_blocks * n_feats, n_feats, 1), nn.LeakyReLU(slope, inplace=True))
        self.body_out = _conv(n_feats, n_feats)
        self.upsample = nn.Sequential(_conv(n_feats, 3 * scale * scale), nn.PixelShuffle(scale))

    def forward(self, x: Tensor) -> Tensor:
        shallow = self.head(x)
        outs, h = [], shallow
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        h = self.body_out(self.fuse(torch.cat(outs, dim=1))) + shallow
        return self.upsample(h).tanh()


SRNETS.register("imdn", SRNetSpec(
    "imdn", IMDN, scale=4,
    defaults={"n_blocks": 6, "n_feats": 64, "distill_ratio": 0.25, "reduction": 16, "slope": 0.05}))
