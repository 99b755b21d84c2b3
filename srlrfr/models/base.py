"""What every registered network declares.

Pixel convention across srlrfr: tensors are float, NCHW, RGB, in [-1, 1]
(``uint8 / 127.5 - 1``). Each network entry says how it departs from that
(channel order, normalisation, input size) so callers never need to know.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn


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


@dataclass(frozen=True)
class SRNetSpec:
    """A super-resolution network registered in ``SRNETS``.

    build(**kwargs) returns a module mapping (N,3,h,w) -> (N,3,scale*h,scale*w),
    both in [-1, 1] and in the channel order it is trained with (RGB for models
    trained here; imported checkpoints record their own order).
    """
    name: str
    build: Callable[..., nn.Module]
    scale: int
    defaults: dict = field(default_factory=dict)
