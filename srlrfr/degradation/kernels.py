"""Resize kernels, registered by name; the paper's is OpenCV bicubic *without* antialiasing.

Both evaluation probes and SR training pyramids come from ``downsample`` (the
``degrade`` step), so the two can never drift apart.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from ..registry import RESIZE_KERNELS

Kernel = Callable[[np.ndarray, tuple[int, int]], np.ndarray]


def _cv2_kernel(flag: int) -> Kernel:
    def resize(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        h, w = size_hw
        return cv2.resize(img, (w, h), interpolation=flag)
    return resize


RESIZE_KERNELS.register("cv2_bicubic", _cv2_kernel(cv2.INTER_CUBIC))
RESIZE_KERNELS.register("cv2_bilinear", _cv2_kernel(cv2.INTER_LINEAR))
RESIZE_KERNELS.register("cv2_area", _cv2_kernel(cv2.INTER_AREA))
RESIZE_KERNELS.register("cv2_nearest", _cv2_kernel(cv2.INTER_NEAREST))


def get_kernel(name: str) -> Kernel:
    return RESIZE_KERNELS.get(name)


def resize_batch(images: np.ndarray, size_hw: tuple[int, int], kernel: str) -> np.ndarray:
    """Resize a uint8 batch (N, H, W, 3) to ``size_hw`` with a registered kernel."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected a (N, H, W, 3) batch, got shape {images.shape}")
    fn = get_kernel(kernel)
    out = np.empty((len(images), size_hw[0], size_hw[1], 3), dtype=images.dtype)
    for i, img in enumerate(images):
        out[i] = fn(img, size_hw)
    return out


def downsample(images: np.ndarray, factor: int, kernel: str = "cv2_bicubic") -> np.ndarray:
    """Downsample aligned crops by an integer factor that divides their size."""
    _, h, w, _ = images.shape
    if h % factor or w % factor:
        raise ValueError(f"factor {factor} does not divide a {h}x{w} crop")
    return resize_batch(images, (h // factor, w // factor), kernel)
