"""What every registered network declares.

Pixel convention across srlrfr: tensors are float, NCHW, RGB, in [-1, 1]
(``uint8 / 127.5 - 1``). Each network entry says how it departs from that
(channel order, normalisation, input size) so callers never need to know.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@lru_cache(maxsize=None)
def counted_flops(build: Callable[..., nn.Module], shape: tuple[int, ...], kwargs: tuple = ()) -> float:
    """FLOPs of one forward pass of ``build(**dict(kwargs))`` on an input of ``shape``, counted by
    torch's FLOP counter on the meta device: no weights, no arithmetic, well under a second."""
    with torch.device("meta"):
        net = build(**dict(kwargs))
        with FlopCounterMode(display=False) as counter:
            net(torch.empty(shape))
    return float(counter.get_total_flops())


@dataclass(frozen=True)
class WeightsNeed:
    """What an FNet's weights source needs before its fnet_weights job can run (``srlrfr doctor``).

    label: what they are ("SphereFace-20 weights"); fix: how to get them.
    download: the artefacts (srlrfr.data.sources) the job fetches, mirrors in order; or
    path: the local file it reads.
    """
    label: str
    fix: str
    download: tuple = ()
    path: Path | None = None


@dataclass(frozen=True)
class FNetSpec:
    """A face recogniser registered in ``FNETS``.

    build: returns the bare backbone (uninitialised weights).
    geometry: name of the aligned-crop geometry the pipeline must produce for it.
    input_size: (h, w) the backbone consumes; crops of the geometry's size are
        resized to it inside the wrapper when they differ.
    channel_order: "rgb" or "bgr": what the backbone was trained on.
    normalize: maps a tensor in [-1, 1] (already in the
        backbone's channel order) to the backbone's input range.
    weights: how the default weights are obtained, for error messages.
    weights_default: the default of ``fnets.<name>.weights`` in params (e.g.
        'download', 'package'); any other value is a local path.
    prepare_weights(source, out, cache_dir) -> dict: write a state dict that
        loads into ``build()`` to ``out`` (atomically) from ``source`` and
        return its provenance (at least ``source``); the fnet_weights step.
    fuse(backbone) -> backbone: an optional rewrite applied by ``load_fnet`` once
        the weights are in, computing the same function with fewer operations
        (e.g. frozen affine layers folded into the convs before them).
    check_weights(source, path_of) -> WeightsNeed: what ``fnets.<name>.weights: source`` needs
        (``path_of`` resolves a params path), for the doctor; may raise FileNotFoundError naming
        a missing install. None: the doctor only looks for a file at a path it is given.
    train_flops: FLOPs of one face through the backbone forward and backward (the identity
        loss), for the training's time estimate (srlrfr.resources). None: three times a forward
        pass, counted (``counted_flops``).
    """
    name: str
    build: Callable[[], nn.Module]
    geometry: str
    input_size: tuple[int, int]
    feature_dim: int
    channel_order: str
    normalize: Callable[[torch.Tensor], torch.Tensor]
    weights: str = ""
    weights_default: str = "download"
    prepare_weights: Callable[[str, Path, Path], dict] | None = None
    fuse: Callable[[nn.Module], nn.Module] | None = None
    licence: str = ""
    extra: dict = field(default_factory=dict)
    check_weights: Callable[[str, Callable[[str], Path]], WeightsNeed] | None = None
    train_flops: float | None = None

    def identity_flops(self) -> float:
        """FLOPs of one face through the FNet forward and backward: declared, else counted."""
        if self.train_flops is not None:
            return self.train_flops
        return 3 * counted_flops(self.build, (1, 3, *self.input_size))


@dataclass(frozen=True)
class SRNetSpec:
    """A super-resolution network registered in ``SRNETS``.

    build(**kwargs) returns a module mapping (N,3,h,w) -> (N,3,scale*h,scale*w),
    both in [-1, 1] and in the channel order it is trained with (RGB for models
    trained here; imported checkpoints record their own order).
    flops_per_pixel(**kwargs) -> float: FLOPs of a forward pass per low-resolution input pixel,
        for the training's time estimate (srlrfr.resources). None: counted on a small input
        (``counted_flops``): convolutions cost in proportion to the pixels.
    """
    name: str
    build: Callable[..., nn.Module]
    scale: int
    defaults: dict = field(default_factory=dict)
    flops_per_pixel: Callable[..., float] | None = None

    def forward_flops_per_pixel(self, **kwargs) -> float:
        """FLOPs of a forward pass per low-resolution input pixel: declared, else counted on 8x8."""
        kwargs = {**self.defaults, **kwargs}
        if self.flops_per_pixel is not None:
            return float(self.flops_per_pixel(**kwargs))
        return counted_flops(self.build, (1, 3, 8, 8), tuple(sorted(kwargs.items()))) / 64
