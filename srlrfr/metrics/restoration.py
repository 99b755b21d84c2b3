"""Image-restoration metrics: PSNR and SSIM on RGB and on BT.601 luma (Y).

SSIM follows Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, K1 0.01,
K2 0.03) over the 'valid' region only, like Wang's reference MATLAB
``ssim_index`` (no border padding). Y is MATLAB ``rgb2ycbcr`` luma kept in
floating point (not rounded to uint8), the usual convention for SR papers.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
Y_COEFFS = (65.481, 128.553, 24.966)  # BT.601 luma per unit of R, G, B in [0, 1], as MATLAB rgb2ycbcr


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

    float32 on values centred at mid-grey (E[x^2] - mu^2 then loses less), within
    1e-6 of float64 (tests/test_restoration.py). Images go in chunks of four, each
    chunk's four maps (x, y, x^2 + y^2, xy) through one filter call as one tall
    image: the rows the Gaussian mixes across neighbouring images lie in the border
    each image's 'valid' region drops, so every kept value is the one-image value.
    Each of OpenCV's threads takes a run of chunks in Python (OpenCV and numpy release
    the GIL) with buffers it reuses: fresh arrays per operation cost more in page
    faults than the arithmetic (benchmarks/bench_restoration.py)."""
    n = len(x)
    out = np.empty(n, np.float64)
    threads = cv2.getNumThreads()
    workers = max(1, min(threads, n // _SSIM_CHUNK))
    per = math.ceil(n / workers / _SSIM_CHUNK) * _SSIM_CHUNK  # whole chunks per thread
    runs = [(s, min(s + per, n)) for s in range(0, n, per)]
    if len(runs) <= 1:
        _ssim_run(x, y, data_range, out, 0, n)
        return out
    cv2.setNumThreads(1)  # one filter per thread: OpenCV's own pool on top would oversubscribe the cores
    try:
        with ThreadPoolExecutor(len(runs)) as pool:
            list(pool.map(lambda run: _ssim_run(x, y, data_range, out, *run), runs))
    finally:
        cv2.setNumThreads(threads)
    return out


_SSIM_CHUNK = 4  # images per filter call: 4 maps x 4 images x 160x160 float32 = 1.6 MB, cache-sized


def _ssim_run(x: np.ndarray, y: np.ndarray, data_range: float, out: np.ndarray, start: int, stop: int) -> None:
    """out[start:stop] = ssim_maps of those images, chunk by chunk in one set of float32 buffers."""
    h, w = x.shape[1:]
    r = SSIM_WINDOW // 2
    k = _gaussian_window().astype(np.float32)
    mid = np.float32(data_range / 2)
    c1 = np.float32((SSIM_K1 * data_range) ** 2)
    c2 = np.float32((SSIM_K2 * data_range) ** 2)
    bufs: dict[int, tuple[np.ndarray, ...]] = {}  # chunk size -> buffers (the last chunk may be short)
    for s in range(start, stop, _SSIM_CHUNK):
        m = min(_SSIM_CHUNK, stop - s)
        if m not in bufs:
            bufs[m] = (np.empty((4, m, h, w), np.float32), np.empty((4 * m * h, w), np.float32),
                       np.empty((4, m, h - 2 * r, w - 2 * r), np.float32), np.empty((m, h - 2 * r, w - 2 * r),
                                                                                    np.float32))
        maps, blurred, valid, t = bufs[m]
        xc, yc = maps[0], maps[1]
        np.subtract(x[s:s + m], mid, out=xc, casting="unsafe")
        np.subtract(y[s:s + m], mid, out=yc, casting="unsafe")
        np.multiply(xc, xc, out=maps[2])
        np.multiply(yc, yc, out=maps[3])
        maps[2] += maps[3]
        np.multiply(xc, yc, out=maps[3])
        cv2.sepFilter2D(maps.reshape(-1, w), cv2.CV_32F, k, k, dst=blurred, borderType=cv2.BORDER_REFLECT)
        np.copyto(valid, blurred.reshape(4, m, h, w)[:, :, r:-r, r:-r])  # the 'valid' region's Gaussian means
        a, b, sq, xy = valid  # of xc, yc, xc^2 + yc^2, xc yc
        np.multiply(a, b, out=t)
        xy -= t                      # cov
        np.multiply(a, a, out=t)
        sq -= t
        np.multiply(b, b, out=t)
        sq -= t                      # var_x + var_y: all SSIM needs of the variances
        a += mid                     # mu_x, mu_y
        b += mid
        np.multiply(a, b, out=t)
        t *= 2
        t += c1                      # 2 mu_x mu_y + c1
        a *= a
        b *= b
        a += b
        a += c1                      # mu_x^2 + mu_y^2 + c1
        xy *= 2
        xy += c2                     # 2 cov + c2
        sq += c2                     # var_x + var_y + c2
        t *= xy
        a *= sq
        t /= a
        out[s:s + m] = t.mean(axis=(1, 2), dtype=np.float64)


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
    coeffs = np.array(Y_COEFFS)
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
    return _decibels(mse, data_range).tolist()


def _decibels(mse: np.ndarray, data_range: float) -> np.ndarray:
    """PSNR in dB from mean squared errors; 0 -> inf."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


_Y_WEIGHTS_1000 = np.round(np.array([Y_COEFFS]) * 1000)  # rgb_to_y's, times 1000: integers


def _psnr_rgb_y_each(a: np.ndarray, b: np.ndarray) -> tuple[list[float], list[float]]:
    """PSNR on RGB and on rgb_to_y luma of each uint8 RGB image pair, without forming Y: the
    luma difference times 255000 is an integer combination of the channel differences, so
    both sums of squares are of integers in float64 (one OpenCV pass per image)."""
    n_px = a.shape[1] * a.shape[2]
    sse = np.empty((len(a), 2))
    for i, (x, z) in enumerate(zip(a, b)):
        d = cv2.subtract(x, z, dtype=cv2.CV_64F)
        sse[i] = cv2.norm(d, cv2.NORM_L2SQR), cv2.norm(cv2.transform(d, _Y_WEIGHTS_1000), cv2.NORM_L2SQR)
    db = _decibels(sse / [3 * n_px, n_px * 255000.0 ** 2], 255)
    return db[:, 0].tolist(), db[:, 1].tolist()


def _luma32(img: np.ndarray) -> np.ndarray:
    """rgb_to_y of uint8 RGB (N, H, W, 3) in float32 (what ssim_maps computes in): (N, H, W)."""
    return 16 + img.astype(np.float32) @ (np.array(Y_COEFFS, np.float32) / np.float32(255))


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
            m = len(out)
            psnr_rgb, psnr_y = _psnr_rgb_y_each(out, ref)
            v["psnr_y"] += psnr_y
            v["psnr_rgb"] += psnr_rgb
            v["ssim_y"] += ssim_maps(_luma32(out), _luma32(ref)).tolist()
            v["ssim_rgb"] += ssim_maps(_channels_first(out), _channels_first(ref)).reshape(m, 3).mean(axis=1).tolist()

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
