"""PSNR / SSIM / luma against hand-computed values and a direct windowed SSIM."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from srlrfr.metrics.restoration import RestorationMeter, psnr, restoration_report, rgb_to_y, ssim


def _face_like(seed: int = 0, shape=(32, 28, 3)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    base = 128 + 60 * np.sin(yy / 5.0)[..., None] * np.cos(xx / 7.0)[..., None]
    return np.clip(base + rng.normal(0, 8, shape), 0, 255).astype(np.uint8)


def test_psnr_identical_is_inf_and_constant_offset():
    img = _face_like()
    assert psnr(img, img) == math.inf
    shifted = np.full((8, 8), 100, np.uint8), np.full((8, 8), 110, np.uint8)
    assert psnr(*shifted) == pytest.approx(20 * math.log10(255 / 10))  # MSE 100 -> 28.13 dB
    assert psnr(np.zeros(4), np.full(4, 0.5), data_range=1.0) == pytest.approx(10 * math.log10(4))


def _ssim_direct(x: np.ndarray, y: np.ndarray, L: float = 255) -> float:
    """SSIM by explicit loops over every valid 11x11 window (Wang et al. 2004, eq. 13)."""
    d = np.arange(11) - 5
    w = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * 1.5 ** 2))
    w /= w.sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
            cov = (w * (a - ma) * (b - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_direct_windowed_computation():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (15, 14))
    y = np.clip(x + rng.normal(0, 25, x.shape), 0, 255)
    assert ssim(x, y) == pytest.approx(_ssim_direct(x, y), abs=1e-6)  # float32 filtering (ssim_maps)


def test_ssim_identity_and_monotone_in_noise():
    img = _face_like(2)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-6)
    rng = np.random.default_rng(3)
    values = []
    for sigma in (2, 10, 40):
        noisy = np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)
        values.append(ssim(img, noisy))
    assert 1.0 > values[0] > values[1] > values[2]


def test_ssim_rgb_is_channel_mean_and_rejects_tiny():
    a, b = _face_like(4), _face_like(5)
    assert ssim(a, b) == pytest.approx(np.mean([ssim(a[..., c], b[..., c]) for c in range(3)]))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((7, 6, 3)), np.zeros((7, 6, 3)))


def test_rgb_to_y_known_values():
    px = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    assert np.allclose(rgb_to_y(px), [16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966])
    assert np.allclose(rgb_to_y(px.astype(np.float64) / 255), np.array([16, 235, 81.481, 144.553, 40.966]) / 255)
    with pytest.raises(ValueError):
        rgb_to_y(np.zeros((4, 4)))


def test_restoration_report_excludes_infinite_psnr():
    ref = np.stack([_face_like(6), np.clip(_face_like(7), 0, 245)])  # room for +10 without wrapping
    out = ref.copy()
    out[1] = ref[1] + 10
    report = restoration_report(out, ref)
    assert report["n_images"] == 2 and report["n_inf_psnr_rgb"] == 1 and report["n_inf_psnr_y"] == 1
    assert report["psnr_rgb"] == pytest.approx(20 * math.log10(255 / 10))
    # +10 on R, G and B moves Y by 10 * (65.481 + 128.553 + 24.966) / 255 = 10 * 219 / 255
    assert report["psnr_y"] == pytest.approx(20 * math.log10(255 / (10 * 219 / 255)))
    assert report["ssim_rgb"] < 1.0 and report["ssim_y"] < 1.0

    same = restoration_report(ref, ref)
    assert same["psnr_rgb"] is None and same["psnr_y"] is None and same["ssim_y"] == pytest.approx(1.0)


def test_restoration_report_rejects_float_input():
    with pytest.raises(ValueError, match="uint8"):
        restoration_report(np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 16, 3), np.uint8))


@pytest.mark.parametrize("threads", [1, 2])
def test_meter_matches_float64_per_image_metrics(threads):
    """The batched meter (luma PSNR from integer channel differences, float32 SSIM in chunks over
    threads) gives every image's float64 values: rgb_to_y, psnr, and SSIM by explicit windows."""
    rng = np.random.default_rng(8)
    ref = np.stack([_face_like(s, (24, 20, 3)) for s in range(9)])  # 9: chunks of 4 and a remainder
    out = np.clip(ref + rng.normal(0, 6, ref.shape), 0, 255).astype(np.uint8)
    out[4] = ref[4]  # an identical image: infinite PSNR
    before = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        meter = RestorationMeter()
        meter.update(out[:5], ref[:5])
        meter.update(out[5:], ref[5:])
        assert cv2.getNumThreads() == threads  # the thread pool gives OpenCV its thread count back
    finally:
        cv2.setNumThreads(before)
    for i in range(9):
        y_out, y_ref = rgb_to_y(out[i]), rgb_to_y(ref[i])
        expected = {"psnr_y": psnr(y_out, y_ref), "psnr_rgb": psnr(out[i], ref[i]),
                    "ssim_y": _ssim_direct(y_out, y_ref),
                    "ssim_rgb": np.mean([_ssim_direct(out[i][..., c] * 1.0, ref[i][..., c] * 1.0) for c in range(3)])}
        for key, value in expected.items():
            got = meter.values[key][i]
            if math.isinf(value):
                assert got == value, (key, i)
            else:
                assert got == pytest.approx(value, abs=1e-6), (key, i)
    assert meter.report()["n_inf_psnr_y"] == 1
