"""EDSR as used by the paper's SRNet.

EDSR without batch norm and without mean-shift layers, residual scaling, one
pixel-shuffle x2 stage per factor of two, and a tanh on the output so pixels
stay in [-1, 1]. Module names reproduce the authors' checkpoints
(``conv1``, ``res_blocks.{i}.residual.{0,2}``, ``conv2``, ``upsampler.{j}.conv``,
``conv3``) so their files load after stripping a ``module.`` prefix.
"""
from __future__ import annotations

from torch import Tensor, nn

from ...registry import SRNETS
from ..base import SRNetSpec


def _conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)


class EDSRResidualBlock(nn.Module):
    def __init__(self, n_feats: int, res_scale: float):
        super().__init__()
        self.res_scale = res_scale
        self.residual = nn.Sequential(_conv3x3(n_feats, n_feats), nn.ReLU(inplace=True),
                                      _conv3x3(n_feats, n_feats))

    def forward(self, x: Tensor) -> Tensor:
        # x + res_scale * residual(x), in place on the conv's fresh output: the same values
        # without two temporaries per block (autograd allows it: neither op needs the old r)
        r = self.residual(x)
        if self.res_scale != 1:
            r.mul_(self.res_scale)
        return r.add_(x)


class PixelShuffleUpsample(nn.Module):
    """conv3x3 to 4x the channels, then PixelShuffle(2): doubles H and W."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.conv = _conv3x3(n_feats, 4 * n_feats)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.shuffle(self.conv(x))


class EDSR(nn.Module):
    """(N, 3, h, w) in [-1, 1] -> (N, 3, scale*h, scale*w) in [-1, 1]."""

    def __init__(self, n_blocks: int = 32, n_feats: int = 256, res_scale: float = 0.1, scale: int = 4):
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"EDSR scale must be a power of 2 (>= 2), got {scale}")
        self.scale = scale
        self.conv1 = _conv3x3(3, n_feats)
        self.res_blocks = nn.Sequential(*[EDSRResidualBlock(n_feats, res_scale) for _ in range(n_blocks)])
        self.conv2 = _conv3x3(n_feats, n_feats)
        self.upsampler = nn.Sequential(*[PixelShuffleUpsample(n_feats)
                                         for _ in range(scale.bit_length() - 1)])
        self.conv3 = _conv3x3(n_feats, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(x)
        h = self.conv2(self.res_blocks(h)).add_(h)
        return self.conv3(self.upsampler(h)).tanh_()


def _flops_per_pixel(n_blocks: int, n_feats: int, **_) -> float:
    """The body: n_blocks residual blocks of two 3x3 convs at n_feats channels (a multiply-add is
    2 FLOPs); the head, tail and upsampler are left out, as in the paper's cost."""
    return 2 * n_blocks * 9 * n_feats**2 * 2


SRNETS.register("edsr", SRNetSpec(
    "edsr", EDSR, scale=4, defaults={"n_blocks": 32, "n_feats": 256, "res_scale": 0.1},
    flops_per_pixel=_flops_per_pixel))
