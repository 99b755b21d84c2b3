"""Evaluation of the paper's 10-configuration table: srlrfr's engine vs a per-configuration baseline.

Baseline (what the authors' scripts do): for every configuration and every
pair, decode both images, align both, degrade the second, restore it, and run
the FNet on both images and their mirrors. Engine (srlrfr.steps.evaluate): decode and
align every distinct image once, compute full-resolution features once, then
per configuration restore and embed only the distinct probe images. Both run
in this one process on the same data and must give the same scores.

    python benchmarks/bench_evaluation.py --images ../shared/data/lfw-fold1/images \\
        --pairs ../shared/data/lfw-fold1/pairs.txt [--fnet dlib_resnet34] [--limit-pairs N]

SR configurations use an EDSR of the given size with seeded random weights:
only time and forward passes are measured here, not accuracy.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from srlrfr.data.lfw import ingest_lfw
from srlrfr.degradation import downsample
from srlrfr.face.align import align_face
from srlrfr.face.detect import detect_landmarks, read_rgb
from srlrfr.face.landmarks_io import landmarks_array, read_landmarks_csv
from srlrfr.methods import restore
from srlrfr.models import catalog  # noqa: F401  (fills the registries)
from srlrfr.models.fnet import extract_features, load_fnet
from srlrfr.models.srnet import build_srnet
from srlrfr.registry import FNETS, GEOMETRIES
from srlrfr.steps.evaluate import cosine_scores
from srlrfr.steps.fnet_weights import fnet_weights as prepare_fnet_weights


class Counter:
    """Counts images through the FNet backbone (each mirror is a pass too)."""

    def __init__(self, module: torch.nn.Module):
        self.images = 0
        module.register_forward_hook(lambda m, inp, out: self.add(len(inp[0])))

    def add(self, n: int) -> None:
        self.images += n


def configurations(geometry) -> list[tuple[str, int]]:
    """The paper's table: bicubic at 4 resolutions, two SRNets at 3."""
    return [("bicubic", f) for f in (16, 8, 4, 1)] + [(f"edsr{i}", f) for i in (0, 1) for f in (16, 8, 4)]


def baseline(pairs, paths, points, geometry, fnet, srnets, configs, device, batch) -> dict:
    scores = {}
    for method, factor in configs:
        out = []
        for start in range(0, len(pairs), batch):
            chunk = pairs.iloc[start:start + batch]
            left = np.stack([align_face(read_rgb(paths[i]), points[i], geometry) for i in chunk["left"]])
            right = np.stack([align_face(read_rgb(paths[i]), points[i], geometry) for i in chunk["right"]])
            if factor > 1:
                right = restore("bicubic" if method == "bicubic" else method, downsample(right, factor),
                                geometry.size, srnet=srnets.get(method), device=device)
            f1 = extract_features(fnet, left, batch_size=batch, device=device, progress=False)
            f2 = extract_features(fnet, right, batch_size=batch, device=device, progress=False)
            out.append(cosine_scores(f1, f2))
        scores[(method, factor)] = np.concatenate(out)
    return scores


def engine(pairs, paths, points, geometry, fnet, srnets, configs, device, batch) -> dict:
    ids = list(pd.unique(pd.concat([pairs["left"], pairs["right"]])))
    row = {k: i for i, k in enumerate(ids)}
    aligned = np.stack([align_face(read_rgb(paths[i]), points[i], geometry) for i in ids])
    hr = extract_features(fnet, aligned, batch_size=batch, device=device, progress=False)
    right_ids = list(pd.unique(pairs["right"]))
    right_pos = {k: i for i, k in enumerate(right_ids)}
    right_rows = np.array([row[i] for i in right_ids])
    left = hr[[row[i] for i in pairs["left"]]]
    take = np.array([right_pos[i] for i in pairs["right"]])
    probes = {f: downsample(aligned[right_rows], f) for f in {f for _, f in configs if f > 1}}
    scores = {}
    for method, factor in configs:
        if factor == 1:
            feats = hr[right_rows]
        else:
            restored = restore("bicubic" if method == "bicubic" else method, probes[factor], geometry.size,
                               srnet=srnets.get(method), device=device)
            feats = extract_features(fnet, restored, batch_size=batch, device=device, progress=False)
        scores[(method, factor)] = cosine_scores(left, feats[take])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True)
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--fnet", default="dlib_resnet34")
    parser.add_argument("--fnet-weights", help="state dict .pt (default: prepared from the fnet's default source)")
    parser.add_argument("--srnet-blocks", type=int, default=8)
    parser.add_argument("--srnet-feats", type=int, default=64)
    parser.add_argument("--limit-pairs", type=int, help="use the first N pairs")
    parser.add_argument("--landmarks", help="a landmark CSV to reuse instead of running MTCNN")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))

    _, pairs = ingest_lfw(args.images, args.pairs, 1, tmp)
    if args.limit_pairs:
        pairs = pairs.iloc[:args.limit_pairs]
    index = pd.read_csv(tmp / "images.csv")
    used = set(pairs["left"]) | set(pairs["right"])
    paths = {k: p for k, p in zip(index["image_id"], index["path"]) if k in used}
    t0 = time.perf_counter()
    lm = read_landmarks_csv(args.landmarks) if args.landmarks else \
        detect_landmarks(list(paths.items()), tmp / "landmarks.csv", device=str(device))
    t_landmarks = time.perf_counter() - t0
    pts, ok = landmarks_array(lm, list(paths))
    points = dict(zip(paths, pts))
    if not ok.all():  # the benchmark needs a crop for every image; use the mean layout
        mean = pts[ok].mean(axis=0)
        points.update({k: mean for k, good in zip(paths, ok) if not good})

    spec = FNETS.get(args.fnet)
    geometry = GEOMETRIES.get(spec.geometry)
    weights = args.fnet_weights or prepare_fnet_weights(args.fnet, spec.weights_default, tmp / "fnet.pt")
    fnet = load_fnet(args.fnet, weights, device)
    counter = Counter(fnet)
    torch.manual_seed(0)
    srnets = {}
    for name in ("edsr0", "edsr1"):
        model, kwargs = build_srnet("edsr", {"n_blocks": args.srnet_blocks, "n_feats": args.srnet_feats})
        srnets[name] = (model.to(device).eval(), {"channel_order": "rgb", "scale": 4, "kwargs": kwargs})
    configs = configurations(geometry)

    results = {}
    for name, fn in (("engine", engine), ("baseline", baseline)):
        counter.images = 0
        t0 = time.perf_counter()
        with torch.inference_mode():
            scores = fn(pairs, paths, points, geometry, fnet, srnets, configs, device, args.batch)
        results[name] = (time.perf_counter() - t0, counter.images, scores)
    worst = max(float(np.abs(results["engine"][2][c] - results["baseline"][2][c]).max()) for c in configs)

    te, fe, _ = results["engine"]
    tb, fb, _ = results["baseline"]
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"data: {len(pairs)} pairs, {len(paths)} distinct images, {len(configs)} configurations, "
          f"FNet {args.fnet}, SRNet EDSR {args.srnet_blocks}x{args.srnet_feats}")
    print(f"landmarks (shared by both, not in the times below): {t_landmarks:.1f} s"
          + (f" (read from {args.landmarks})" if args.landmarks else ""))
    print(f"FNet image passes: baseline {fb}, engine {fe}, ratio {fb / fe:.2f}x")
    print(f"wall time:         baseline {tb:.1f} s, engine {te:.1f} s, ratio {tb / te:.2f}x")
    print(f"max |score difference| between the two: {worst:.2e}")


if __name__ == "__main__":
    main()
