"""The building blocks of a degradation, registered by name (DEGRADATION_OPS).

Each op maps a uint8 RGB batch (N, H, W, 3) to a uint8 batch, so a
composition is exactly its parts applied in order, and every intermediate is
an image a camera could have stored. ``down`` is the one op that changes the
size (by the level's factor, with ``degrade.kernel``); ops before it act on the
aligned crop, ops after it on the low-resolution face. Random ops draw from
one generator per image (see :class:`Context`), never from a shared stream,
so a probe does not depend on which other images share its chunk.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from ..registry import DEGRADATION_OPS
from .kernels import downsample


@dataclass
class Context:
    """What an op may need beyond its own params: the level's factor, the resize
    kernel and, for random ops, one generator per image of the batch."""
    factor: int
    kernel: str
    rngs: list[np.random.Generator] = field(default_factory=list)


@dataclass(frozen=True)
class OpSpec:
    """apply(images, ctx, **params) -> images; check(params) -> {param: problem}."""
    name: str
    apply: Callable[..., np.ndarray]
    defaults: dict
    description: str
    random: bool = False
    check: Callable[[dict], dict[str, str]] = lambda params: {}


def positive(*names: str) -> Callable[[dict], dict[str, str]]:
    return lambda p: {n: f"must be > 0, got {p[n]!r}" for n in names if not p[n] > 0}


def jpeg_quality(*names: str) -> Callable[[dict], dict[str, str]]:
    return lambda p: {n: f"must be a JPEG quality in 1..100, got {p[n]!r}" for n in names if not 1 <= p[n] <= 100}


def _down(images: np.ndarray, ctx: Context) -> np.ndarray:
    return downsample(images, ctx.factor, ctx.kernel)


def _blur(images: np.ndarray, ctx: Context, *, sigma: float) -> np.ndarray:
    # OpenCV sizes the kernel from sigma (about +-3 sigma); edges mirror without repeating the border pixel.
    return np.stack([cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT_101)
                     for img in images]) if len(images) else images.copy()


def _noise(images: np.ndarray, ctx: Context, *, sigma: float) -> np.ndarray:
    if len(ctx.rngs) != len(images):
        raise ValueError(f"noise needs one generator per image ({len(images)}), got {len(ctx.rngs)}")
    out = np.empty_like(images)
    for i, (img, rng) in enumerate(zip(images, ctx.rngs)):
        noisy = img.astype(np.float32) + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)
        out[i] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return out


def _jpeg(images: np.ndarray, ctx: Context, *, quality: int) -> np.ndarray:
    """Encode and decode with OpenCV's libjpeg (4:2:0 chroma, its default); deterministic."""
    out = np.empty_like(images)
    for i, img in enumerate(images):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError(f"OpenCV could not JPEG-encode a {img.shape} image")
        out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]  # OpenCV codes BGR; ours are RGB
    return out


DEGRADATION_OPS.register("down", OpSpec(
    "down", _down, {}, "downsample by the level's factor with degrade.kernel"))
DEGRADATION_OPS.register("blur", OpSpec(
    "blur", _blur, {"sigma": 1.2}, "Gaussian blur, sigma in pixels of the image it receives",
    check=positive("sigma")))
DEGRADATION_OPS.register("noise", OpSpec(
    "noise", _noise, {"sigma": 5.0}, "additive Gaussian noise, sigma in pixel levels (0-255), rounded and clipped",
    random=True, check=positive("sigma")))
DEGRADATION_OPS.register("jpeg", OpSpec(
    "jpeg", _jpeg, {"quality": 40}, "JPEG compression at a quality 1-100 (OpenCV)", check=jpeg_quality("quality")))
