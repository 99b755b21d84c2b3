"""Image-restoration metrics: PSNR and SSIM on RGB and on BT.601 luma (Y).

SSIM follows Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, K1 0.01,
K2 0.03) over the 'valid' region only, like Wang's reference MATLAB
``ssim_index`` (no border padding). Y is MATLAB ``rgb2ycbcr`` luma kept in
floating point (not rounded to uint8), the usual convention for SR papers.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")


def psnr(a, b, data_range: float = 255) -> float:
    """Peak signal-to-noise ratio in dB over all pixels (and channels); identical -> inf."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    _same_shape(a, b)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return float("inf")
    return 10.0 * math.log10(data_range ** 2 / mse)


def _gaussian_window() -> np.ndarray:
    k = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA, ktype=cv2.CV_64F)
    return k / k.sum()


def _ssim_channel(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    k = _gaussian_window()
    r = SSIM_WINDOW // 2

    def blur(img: np.ndarray) -> np.ndarray:  # Gaussian mean, 'valid' region only
        return cv2.sepFilter2D(img, cv2.CV_64F, k, k, borderType=cv2.BORDER_REFLECT)[r:-r, r:-r]

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def ssim(a, b, data_range: float = 255) -> float:
    """Mean SSIM of two images (H,W) or (H,W,C); multi-channel -> mean over channels."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    _same_shape(a, b)
    if a.ndim not in (2, 3):
        raise ValueError(f"ssim expects (H,W) or (H,W,C) images, got shape {a.shape}")
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs images at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {a.shape[:2]}")
    if a.ndim == 2:
        return _ssim_channel(a, b, data_range)
    return float(np.mean([_ssim_channel(a[..., c].copy(), b[..., c].copy(), data_range)
                          for c in range(a.shape[2])]))


def rgb_to_y(img) -> np.ndarray:
    """ITU-R BT.601 luma as MATLAB ``rgb2ycbcr``, as float64.

    uint8 RGB in [0, 255] -> Y in [16, 235]: 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
    float RGB in [0, 1]   -> Y in [16/255, 235/255] (MATLAB's double convention).
    """
    arr = np.asarray(img)
    if arr.ndim < 1 or arr.shape[-1] != 3:
        raise ValueError(f"rgb_to_y expects (..., 3) RGB, got shape {arr.shape}")
    coeffs = np.array([65.481, 128.553, 24.966])
    if arr.dtype == np.uint8:
        return 16.0 + arr.astype(np.float64) @ coeffs / 255.0
    if np.issubdtype(arr.dtype, np.floating):
        return (16.0 + arr.astype(np.float64) @ coeffs) / 255.0
    raise ValueError(f"rgb_to_y expects uint8 [0,255] or float [0,1] images, got dtype {arr.dtype}")


def _finite_mean(values: list[float]) -> tuple[float | None, int]:
    finite = [v for v in values if math.isfinite(v)]
    return (float(np.mean(finite)) if finite else None), len(values) - len(finite)


class RestorationMeter:
    """Per-image PSNR/SSIM (Y and RGB) accumulated over batches; ``report()`` gives the means."""

    def __init__(self):
        self.values: dict[str, list[float]] = {"psnr_y": [], "ssim_y": [], "psnr_rgb": [], "ssim_rgb": []}

    def update(self, restored: np.ndarray, reference: np.ndarray) -> None:
        restored, reference = np.asarray(restored), np.asarray(reference)
        for name, arr in (("restored", restored), ("reference", reference)):
            if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
                raise ValueError(f"{name} must be uint8 (N,H,W,3), got {arr.dtype} {arr.shape}")
        _same_shape(restored, reference)
        v = self.values
        for out, ref in zip(restored, reference):  # ~6 ms per 112x96 image
            y_out, y_ref = rgb_to_y(out), rgb_to_y(ref)
            v["psnr_y"].append(psnr(y_out, y_ref))
            v["ssim_y"].append(ssim(y_out, y_ref))
            v["psnr_rgb"].append(psnr(out, ref))
            v["ssim_rgb"].append(ssim(out, ref))

    def report(self) -> dict:
        """Infinite PSNRs (identical images) are left out of the PSNR means and counted in
        ``n_inf_psnr_y`` / ``n_inf_psnr_rgb``; a mean with no finite value is None (JSON null)."""
        v = self.values
        if not v["psnr_y"]:
            raise ValueError("restoration_report got an empty batch")
        mean_psnr_y, inf_y = _finite_mean(v["psnr_y"])
        mean_psnr_rgb, inf_rgb = _finite_mean(v["psnr_rgb"])
        return {
            "psnr_y": mean_psnr_y,
            "ssim_y": float(np.mean(v["ssim_y"])),
            "psnr_rgb": mean_psnr_rgb,
            "ssim_rgb": float(np.mean(v["ssim_rgb"])),
            "n_images": len(v["psnr_y"]),
            "n_inf_psnr_y": inf_y,
            "n_inf_psnr_rgb": inf_rgb,
        }


def restoration_report(restored: np.ndarray, reference: np.ndarray) -> dict:
    """Mean PSNR/SSIM over a batch of uint8 RGB images (N,H,W,3) vs their references."""
    meter = RestorationMeter()
    meter.update(restored, reference)
    return meter.report()
