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
    a, b = np.asarray(a), np.asarray(b)
    _same_shape(a, b)
    return _psnr_each(a[None], b[None], data_range)[0]


def _gaussian_window() -> np.ndarray:
    k = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA, ktype=cv2.CV_64F)
    return k / k.sum()


def ssim_maps(x: np.ndarray, y: np.ndarray, data_range: float = 255) -> np.ndarray:
    """Mean SSIM of each of a stack of single-channel images (N, H, W) -> (N,).

    Each few images go through the filter as one tall image: the rows the
    Gaussian mixes across two neighbouring images lie in the border each image's
    'valid' region drops, so every kept value is the one-image value. float32 on
    values centred at mid-grey, in cache-sized chunks: about 2x faster than float64
    on whole batches, within 1e-6 of it (tests/test_restoration.py)."""
    n, h, w = x.shape
    k = _gaussian_window().astype(np.float32)
    r = SSIM_WINDOW // 2
    mid = data_range / 2
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    out = np.empty(n, np.float64)
    for start in range(0, n, 4):
        xc = np.asarray(x[start:start + 4], np.float32) - np.float32(mid)  # centred: E[x^2] - mu^2 loses less
        yc = np.asarray(y[start:start + 4], np.float32) - np.float32(mid)
        m = len(xc)

        def blur(img: np.ndarray) -> np.ndarray:  # Gaussian mean, 'valid' region only, per image
            flat = cv2.sepFilter2D(img.reshape(-1, w), cv2.CV_32F, k, k, borderType=cv2.BORDER_REFLECT)
            return flat.reshape(img.shape)[:, r:-r, r:-r]

        mu_x, mu_y = blur(xc), blur(yc)
        var_sum = blur(xc * xc + yc * yc) - mu_x * mu_x - mu_y * mu_y  # var_x + var_y: all SSIM needs
        cov = blur(xc * yc) - mu_x * mu_y
        mu_x += np.float32(mid)
        mu_y += np.float32(mid)
        num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_sum + c2)
        out[start:start + m] = (num / den).mean(axis=(1, 2), dtype=np.float64)
    return out


def _channels_first(a: np.ndarray) -> np.ndarray:
    """(..., H, W, C) -> (prod(...) * C, H, W), each channel its own image."""
    a = np.moveaxis(np.asarray(a), -1, -3)
    return np.ascontiguousarray(a.reshape(-1, *a.shape[-2:]))


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
        return float(ssim_maps(a[None], b[None], data_range)[0])
    return float(np.mean(ssim_maps(_channels_first(a), _channels_first(b), data_range)))


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


def _psnr_each(a: np.ndarray, b: np.ndarray, data_range: float = 255) -> list[float]:
    """PSNR of each image of a batch (as ``psnr`` on each)."""
    if a.dtype == np.uint8 and b.dtype == np.uint8:  # exact in integers, without float64 copies
        diff = np.subtract(a, b, dtype=np.int16).reshape(len(a), -1).astype(np.int32)
        mse = np.einsum("ij,ij->i", diff, diff, dtype=np.int64) / diff.shape[1]
    else:
        diff = a.astype(np.float64) - b.astype(np.float64)
        mse = (diff * diff).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return (10.0 * np.log10(data_range ** 2 / mse)).tolist()


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
        if min(restored.shape[1:3]) < SSIM_WINDOW:
            raise ValueError(f"ssim needs images at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {restored.shape[1:3]}")
        v = self.values
        for start in range(0, len(restored), 64):  # the whole batch per numpy call, in bounded memory
            out, ref = restored[start:start + 64], reference[start:start + 64]
            y_out, y_ref = rgb_to_y(out), rgb_to_y(ref)
            v["psnr_y"] += _psnr_each(y_out, y_ref)
            v["ssim_y"] += ssim_maps(y_out, y_ref).tolist()
            v["psnr_rgb"] += _psnr_each(out, ref)
            v["ssim_rgb"] += ssim_maps(_channels_first(out), _channels_first(ref)).reshape(len(out), 3) \
                .mean(axis=1).tolist()

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
