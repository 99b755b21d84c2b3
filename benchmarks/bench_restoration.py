"""PSNR/SSIM of restored faces: srlrfr's batched meter vs one image at a time in float64.

The evaluate step measures every restored probe (PSNR and SSIM on Y and on RGB).
The per-image side is the plain way: rgb_to_y in float64, then psnr and ssim on
each image (ssim still filters in float32, one image's channels per call);
srlrfr's ``RestorationMeter`` takes the batch: luma PSNR from integer channel
differences, all four SSIMs of a chunk of images through one filter call, the
chunks spread over OpenCV's thread count. Both run here, alternating round by
round, on the same images; the medians, their ratio and the largest difference
of any per-image value are printed.

    python benchmarks/bench_restoration.py [--images 473] [--size 160] [--threads 2] [--rounds 5]

473 is the number of distinct probe images of the sample fold's 600 pairs;
``--aligned`` takes real crops (data/aligned/lfw_<geometry>) and blurs them as
restored faces; otherwise smooth random faces with noise.
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time

import cv2
import numpy as np

from srlrfr.device import machine_info
from srlrfr.metrics.restoration import RestorationMeter, psnr, rgb_to_y, ssim


def per_image(restored: np.ndarray, reference: np.ndarray) -> dict[str, list[float]]:
    out = {"psnr_y": [], "ssim_y": [], "psnr_rgb": [], "ssim_rgb": []}
    for a, b in zip(restored, reference):
        ya, yb = rgb_to_y(a), rgb_to_y(b)
        out["psnr_y"].append(psnr(ya, yb))
        out["ssim_y"].append(ssim(ya, yb))
        out["psnr_rgb"].append(psnr(a, b))
        out["ssim_rgb"].append(ssim(a, b))
    return out


def batched(restored: np.ndarray, reference: np.ndarray) -> dict[str, list[float]]:
    meter = RestorationMeter()
    meter.update(restored, reference)
    return meter.values


def images(args) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    if args.aligned:
        from srlrfr.storage import AlignedSet
        aligned = AlignedSet(args.aligned)
        ref = aligned.images.take(np.arange(min(args.images, len(aligned))))
    else:
        yy, xx = np.mgrid[:args.size, :args.size]
        base = 128 + 60 * np.sin(yy / 9.0)[..., None] * np.cos(xx / 11.0)[..., None]
        ref = np.clip(base + rng.normal(0, 12, (args.images, args.size, args.size, 3)), 0, 255).astype(np.uint8)
    restored = np.stack([cv2.GaussianBlur(r, (5, 5), 1.2) for r in ref])  # a restoration's typical softness
    return restored, ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=473)
    parser.add_argument("--size", type=int, default=160, help="crop side without --aligned (dlib geometry: 160)")
    parser.add_argument("--aligned", help="an aligned folder of a pipeline run, for real crops")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads (the rules' {threads})")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print("machine:", machine_info("cpu"), f"OpenCV threads {cv2.getNumThreads()}")
    restored, reference = images(args)
    sides = {"per image, float64": per_image, "srlrfr RestorationMeter": batched}
    times = {k: [] for k in sides}
    values = {}
    for _ in range(args.rounds):
        for name, fn in sides.items():
            t0 = time.perf_counter()
            values[name] = fn(restored, reference)
            times[name].append(time.perf_counter() - t0)
    a, b = values.values()
    worst = max(float(np.max(np.abs(np.array(a[k]) - np.array(b[k])))) for k in a)
    print(f"{len(reference)} images {reference.shape[1]}x{reference.shape[2]}, {args.rounds} rounds (median s):")
    base = statistics.median(next(iter(times.values())))
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:26s} {med:6.3f} s  {len(reference) / med:7.1f} img/s  {base / med:5.2f}x")
    print(f"largest |difference| of any per-image PSNR or SSIM: {worst:.1e}")
    print("machine at the end:", machine_info("cpu"))


if __name__ == "__main__":
    main()
