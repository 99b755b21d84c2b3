"""Degradation models, registered by name (DEGRADATIONS): how a low-resolution face is made.

``degrade.model`` is BasicSR-style, ``{type: <name>, **params}``, each model an
ordered list of ops (srlrfr.degradation.ops) with exactly one ``down``.
``resize`` is the paper's plain downsampling; the others add what real
low-quality faces suffer: optical blur before the sensor samples (sigma in
aligned-crop pixels, applied before downsampling as in SRMD / BSRGAN), sensor
noise and JPEG compression at the low resolution. ``chain`` lists the ops
itself, for any other order.

The one random op (noise) draws from a generator seeded by
(``degrade.seed``, the dataset, the factor, the image's row), so a probe is the
same on every run, whatever the chunking, and each level's draw is its own.
"""
from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError
from ..registry import DEGRADATION_OPS, DEGRADATIONS
from ..typed import fill_typed
from .kernels import downsample
from .ops import Context, jpeg_quality, positive

PLAIN = {"type": "resize"}


@dataclass(frozen=True)
class DegradationSpec:
    """steps(params) -> the ops in order, each ``{"type": op, **op_params}``."""
    name: str
    defaults: dict
    steps: Callable[[dict], list[dict]]
    description: str
    check: Callable[[dict], dict[str, str]] = lambda params: {}


def _all(*checks):
    return lambda p: {k: v for c in checks for k, v in c(p).items()}


def _register(name: str, defaults: dict, steps, description: str, *checks) -> None:
    DEGRADATIONS.register(name, DegradationSpec(name, defaults, steps, description, _all(*checks)))


DOWN = {"type": "down"}
_register("resize", {}, lambda p: [DOWN], "downsampling with degrade.kernel only (the paper)")
_register("blur_down", {"sigma": 1.2}, lambda p: [{"type": "blur", "sigma": p["sigma"]}, DOWN],
          "Gaussian blur (sigma in crop pixels), then downsampling", positive("sigma"))
_register("down_noise", {"noise_sigma": 5.0}, lambda p: [DOWN, {"type": "noise", "sigma": p["noise_sigma"]}],
          "downsampling, then Gaussian noise (sigma in pixel levels)", positive("noise_sigma"))
_register("down_jpeg", {"quality": 40}, lambda p: [DOWN, {"type": "jpeg", "quality": p["quality"]}],
          "downsampling, then JPEG", jpeg_quality("quality"))
_register("blur_down_jpeg", {"sigma": 1.2, "quality": 40},
          lambda p: [{"type": "blur", "sigma": p["sigma"]}, DOWN, {"type": "jpeg", "quality": p["quality"]}],
          "blur, downsampling, JPEG", positive("sigma"), jpeg_quality("quality"))
_register("blur_down_noise_jpeg", {"sigma": 1.2, "noise_sigma": 5.0, "quality": 40},
          lambda p: [{"type": "blur", "sigma": p["sigma"]}, DOWN, {"type": "noise", "sigma": p["noise_sigma"]},
                     {"type": "jpeg", "quality": p["quality"]}],
          "blur, downsampling, noise, JPEG (the classic order of a camera)", positive("sigma", "noise_sigma"),
          jpeg_quality("quality"))
_register("chain", {"steps": [DOWN]}, lambda p: p["steps"], "the listed ops in order, exactly one 'down'")


def resolve(model: dict, key: str = "degrade.model") -> list[dict]:
    """Fill ``model`` in place (its defaults, and each chain step's) and return its ops in order.

    Errors are :class:`srlrfr.errors.ConfigError` naming ``key``.
    """
    spec = fill_typed(model, DEGRADATIONS, key)
    nested = model["type"] == "chain"
    steps = spec.steps(model)
    if nested and (not isinstance(steps, list) or not steps):
        raise ConfigError(f"key '{key}.steps': a chain needs a list of ops ({', '.join(DEGRADATION_OPS.keys())})")
    steps = [s if nested else copy.deepcopy(s) for s in steps]
    for i, step in enumerate(steps):
        fill_typed(step, DEGRADATION_OPS, f"{key}.steps.{i}" if nested else key)
    downs = sum(s["type"] == "down" for s in steps)
    if downs != 1:
        raise ConfigError(f"key '{key}.steps': {downs} 'down' ops; a degradation needs exactly one "
                          f"(ops before it act on the crop, ops after it on the low-resolution face)")
    return steps


class Degradation:
    """A built degradation: ``deg(images, factor, start)`` -> the degraded level of those rows.

    ``start`` is the row of ``images[0]`` in its dataset: random ops are seeded
    by (seed, stream, factor, row), so any chunking gives the same probes.
    """

    def __init__(self, model: dict | None = None, kernel: str = "cv2_bicubic", seed: int = 0, stream: str = ""):
        self.model = copy.deepcopy(model or PLAIN)
        self.steps = resolve(self.model)
        self.kernel, self.seed, self.stream = kernel, int(seed), stream
        self.random = any(DEGRADATION_OPS.get(s["type"]).random for s in self.steps)

    @property
    def plain(self) -> bool:
        """Plain downsampling: the degraded level is the clean one (stored once)."""
        return [s["type"] for s in self.steps] == ["down"]

    def describe(self) -> dict:
        """What made the levels: for the levels manifest and the trained model's metadata."""
        return {"model": copy.deepcopy(self.model), "kernel": self.kernel, "seed": self.seed}

    def rngs(self, factor: int, start: int, n: int) -> list[np.random.Generator]:
        stream = zlib.crc32(self.stream.encode())
        return [np.random.default_rng([self.seed, stream, int(factor), start + i]) for i in range(n)]

    def __call__(self, images: np.ndarray, factor: int, start: int = 0) -> np.ndarray:
        ctx = Context(int(factor), self.kernel, self.rngs(factor, start, len(images)) if self.random else [])
        for step in self.steps:
            params = {k: v for k, v in step.items() if k != "type"}
            images = DEGRADATION_OPS.get(step["type"]).apply(images, ctx, **params)
        return images

    def levels(self, images: np.ndarray, factors, inputs, start: int = 0) -> tuple[dict, dict]:
        """(clean, degraded): every factor's plain downsample (pixel targets) and, unless the
        model is plain, the degraded level of every input factor (probes, SR inputs)."""
        clean = {f: downsample(images, f, self.kernel) for f in factors}
        degraded = {} if self.plain else {f: self(images, f, start) for f in inputs}
        return clean, degraded
