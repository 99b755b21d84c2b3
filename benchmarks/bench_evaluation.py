"""Evaluation of the paper's 10-configuration table: srlrfr's pipeline steps vs the authors' per-pair method.

Baseline (what the authors' scripts do): for every configuration and every
pair, decode both images, align both, degrade the second, restore it, and run
the FNet on both images and their mirrors, with the networks as plain PyTorch
modules (fp32, NCHW, ``no_grad``, one batch at a time over all threads; the dlib
FNet with its separate affine layers).

srlrfr: the pipeline's own step functions on the same images, timed end to end
(side ``srlrfr``, evaluate.precision fp32, and ``srlrfr-bf16``, both networks in bf16),
interleaved: each side prepares, then the sides take turns configuration by configuration:
``align`` (decode and align every distinct image once), ``degrade``,
``features`` (full-resolution features once), then ``evaluate`` once per
configuration (restore and embed only the distinct probe images, plus what the
step adds: PSNR/SSIM, ROC numbers, the examples). So srlrfr wins by computing less
(FNet image passes, printed) and by faster forward passes (load_fnet's fused,
channels-last network, batches split over the threads: srlrfr.models.batching;
benchmarks/bench_forward.py times each change). Both
run in this one process, on the same data, and must give the same scores.

    python benchmarks/bench_evaluation.py --images ../shared/data/lfw-fold1/images \\
        --pairs ../shared/data/lfw-fold1/pairs.txt [--landmarks data/landmarks/lfw.csv] [--limit-pairs N] \\
        [--order srlrfr,baseline,srlrfr-bf16]

SR configurations use an EDSR of the given size with seeded random weights
(time and forward passes only; their accuracy is chance), or with ``--srnet``
twice, two trained checkpoints. The accuracy change bf16 brings, per
configuration of a real run: benchmarks/bench_precision.py.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

# What srlrfr's CLI sets for every step (srlrfr/cli.py), for both sides here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from srlrfr.data.lfw import ingest_lfw  # noqa: E402
from srlrfr.degradation import downsample  # noqa: E402
from srlrfr.device import machine_info  # noqa: E402
from srlrfr.face.align import align_face  # noqa: E402
from srlrfr.face.detect import detect_landmarks, read_rgb  # noqa: E402
from srlrfr.face.landmarks_io import landmarks_array, read_landmarks_csv  # noqa: E402
from srlrfr.methods import FULL, SR_FINISH, restore, upsample  # noqa: E402
from srlrfr.models import catalog  # noqa: E402,F401  (fills the registries)
from srlrfr.models.fnet import FaceRecognizer  # noqa: E402
from srlrfr.models.srnet import build_srnet, load_srnet, save_srnet, to_tensor, to_uint8  # noqa: E402
from srlrfr.models.weights import load_into, load_state_dict_file  # noqa: E402
from srlrfr.registry import FNETS, GEOMETRIES  # noqa: E402
from srlrfr.steps.align import align  # noqa: E402
from srlrfr.steps.degrade import degrade  # noqa: E402
from srlrfr.steps.evaluate import cosine_scores, evaluate  # noqa: E402
from srlrfr.steps.features import features  # noqa: E402
from srlrfr.steps.fnet_weights import fnet_weights as prepare_fnet_weights  # noqa: E402

KERNEL = "cv2_bicubic"  # params.yaml degrade.kernel
SIDES = {"srlrfr": "fp32", "srlrfr-bf16": "bf16", "baseline": None}  # side -> evaluate.precision


class Counter:
    """Counts images through every backbone of one class (each mirror is a pass too)."""

    def __init__(self, kind: type):
        self.images = 0
        torch.nn.modules.module.register_module_forward_hook(
            lambda m, inp, out: self.add(len(inp[0])) if isinstance(m, kind) else None)

    def add(self, n: int) -> None:
        self.images += n


def configurations() -> list[tuple[str, int]]:
    """The paper's table: bicubic at 3 resolutions and full resolution, two SRNets at 3."""
    return [("bicubic", f) for f in (16, 8, 4)] + [(FULL, 1)] + \
        [(f"edsr{i}", f) for i in (0, 1) for f in (16, 8, 4)]


def plain_features(fnet: FaceRecognizer, images: np.ndarray, device) -> np.ndarray:
    """f(x) and f(mirror x) of one batch of NCHW tensors, concatenated (the authors' way)."""
    with torch.no_grad():
        x = to_tensor(images, device).contiguous()
        return torch.cat([fnet(x), fnet(x.flip(-1))], dim=1).cpu().numpy()


def plain_restore(method: str, probes: np.ndarray, size_hw, srnet, device) -> np.ndarray:
    """restore() the authors' way: interpolation as srlrfr's, an SRNet on one NCHW batch, all threads on it."""
    if srnet is None:
        return restore(method, probes, size_hw)
    model, info = srnet
    with torch.no_grad():
        sr = to_uint8(model(to_tensor(probes, device).contiguous()))
    return sr if sr.shape[1:3] == tuple(size_hw) else upsample(sr, size_hw, SR_FINISH)


def baseline(pairs, paths, points, geometry, fnet, srnets, configs, batch, device, scores: dict) -> list:
    """The authors' method as phases: nothing to prepare, then one phase per configuration."""
    def one(method, factor):
        out = []
        for start in range(0, len(pairs), batch):
            chunk = pairs.iloc[start:start + batch]
            left = np.stack([align_face(read_rgb(paths[i]), points[i], geometry) for i in chunk["left"]])
            right = np.stack([align_face(read_rgb(paths[i]), points[i], geometry) for i in chunk["right"]])
            if factor > 1:
                right = plain_restore(method, downsample(right, factor, KERNEL), geometry.size, srnets.get(method),
                                      device)
            out.append(cosine_scores(plain_features(fnet, left, device), plain_features(fnet, right, device)))
        scores[(method, factor)] = np.concatenate(out)

    return [lambda: None] + [lambda c=c: one(*c) for c in configs]


def engine(tmp: Path, index_csv, landmarks_csv, pairs_csv, fnet_name, weights, srnet_files, configs, geometry,
           batch, device, precision, scores: dict, seconds: dict) -> list:
    """The pipeline's steps as the rules call them, as phases: align, degrade and features, then
    one evaluate per configuration; fills ``scores`` and ``seconds`` per step."""
    def step(name, fn, *a, **kw):
        t0 = time.perf_counter()
        fn(*a, **kw)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0

    tmp = tmp / precision
    aligned, degraded, feats = tmp / "aligned", tmp / "degraded", tmp / "hr.npz"

    def prepare():
        step("align", align, index_csv, landmarks_csv, geometry.name, aligned)
        step("degrade", degrade, aligned, sorted({f for _, f in configs if f > 1}), KERNEL, degraded)
        step("features", features, aligned, fnet_name, weights, feats, batch_size=batch, device=device,
             precision=precision)

    def one(method, factor):
        out = tmp / "eval" / f"{method}_{factor}"
        res = f"{geometry.height // factor}x{geometry.width // factor}"
        step("evaluate", evaluate, pairs_csv=pairs_csv, aligned_dir=aligned, features_npz=feats,
             degraded_dir=degraded if factor > 1 else None, factor=factor, method=method, resolution=res,
             fnet_name=fnet_name, fnet_weights=weights, srnet_path=srnet_files.get(method), out_dir=out,
             batch_size=batch, device=device, precision=precision)
        scores[(method, factor)] = pd.read_csv(out / "scores.csv")["score"].to_numpy()

    return [prepare] + [lambda c=c: one(*c) for c in configs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True)
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--fnet", default="dlib_resnet34")
    parser.add_argument("--fnet-weights", help="state dict .pt (default: prepared from the fnet's default source)")
    parser.add_argument("--srnet", action="append", metavar="CKPT",
                        help="twice: two trained SRNet checkpoints (models/srnets/...) instead of random EDSRs")
    parser.add_argument("--srnet-blocks", type=int, default=8)
    parser.add_argument("--srnet-feats", type=int, default=64)
    parser.add_argument("--limit-pairs", type=int, help="use about N pairs (the first of each fold and label)")
    parser.add_argument("--landmarks", help="a landmark CSV to reuse instead of running MTCNN")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads (the rules' {threads})")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--order", default="srlrfr,baseline,srlrfr-bf16",
                        help="the sides, in the order they run: srlrfr, srlrfr-bf16, baseline")
    args = parser.parse_args()
    if args.srnet and len(args.srnet) != 2:
        parser.error(f"--srnet: give it twice (the table's two SRNets), got {len(args.srnet)}")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    device = torch.device(args.device)
    print("machine:", machine_info(device))

    _, pairs = ingest_lfw(args.images, args.pairs, 10, tmp / "index")  # the 10-fold protocol
    if args.limit_pairs:  # the first matched and mismatched pairs of every fold (the protocol needs both)
        groups = pairs.groupby(["fold", "label"], sort=False)
        pairs = groups.head(max(1, args.limit_pairs // groups.ngroups))
    pairs.to_csv(tmp / "pairs.csv", index=False)
    index = pd.read_csv(tmp / "index" / "images.csv")
    index = index[index["image_id"].isin(set(pairs["left"]) | set(pairs["right"]))]
    index.to_csv(tmp / "images.csv", index=False)
    paths = dict(zip(index["image_id"], index["path"]))
    t0 = time.perf_counter()
    if args.landmarks:
        landmarks_csv = args.landmarks
        lm = read_landmarks_csv(landmarks_csv)
    else:
        landmarks_csv = tmp / "landmarks.csv"
        lm = detect_landmarks(list(paths.items()), landmarks_csv)
    t_landmarks = time.perf_counter() - t0
    pts, ok = landmarks_array(lm, list(paths))
    points = dict(zip(paths, pts))
    if not ok.all():  # align's no_face policy 'center' puts these on the mean layout; so does the baseline
        mean = pts[ok].mean(axis=0)
        points.update({k: mean for k, good in zip(paths, ok) if not good})

    spec = FNETS.get(args.fnet)
    geometry = GEOMETRIES.get(spec.geometry)
    weights = args.fnet_weights or prepare_fnet_weights(args.fnet, spec.weights_default, tmp / "fnet.pt")
    plain_backbone = spec.build()
    load_into(plain_backbone, load_state_dict_file(weights), weights)
    plain_fnet = FaceRecognizer(spec, plain_backbone).freeze().to(device)
    counter = Counter(type(plain_backbone))
    torch.manual_seed(0)
    srnets, srnet_files = {}, {}
    for i, name in enumerate(("edsr0", "edsr1")):
        if args.srnet:  # trained checkpoints: accuracy means something for the SR rows too
            srnet_files[name] = Path(args.srnet[i])
            model, info = load_srnet(srnet_files[name], device)
            srnets[name] = (model.to(memory_format=torch.contiguous_format), info)  # plain: NCHW
            continue
        model, kwargs = build_srnet("edsr", {"n_blocks": args.srnet_blocks, "n_feats": args.srnet_feats})
        srnet_files[name] = save_srnet(tmp / f"{name}.pt", model.eval(), "edsr", kwargs, "rgb")
        srnets[name] = (model.to(device), {"channel_order": "rgb", "scale": 4, "kwargs": kwargs})  # plain: NCHW
    configs = configurations()

    sides = args.order.split(",")
    for side in sides:
        if side not in SIDES:
            parser.error(f"--order: unknown side {side!r} (one of {', '.join(SIDES)})")
    scores = {side: {} for side in sides}
    steps: dict[str, dict] = {side: {} for side in sides}
    phases = {side: baseline(pairs, paths, points, geometry, plain_fnet, srnets, configs, args.batch, device,
                             scores[side]) if side == "baseline" else
              engine(tmp, tmp / "images.csv", landmarks_csv, tmp / "pairs.csv", args.fnet, weights, srnet_files,
                     configs, geometry, args.batch, args.device, SIDES[side], scores[side], steps[side])
              for side in sides}
    wall = {side: 0.0 for side in sides}
    passes = {side: 0 for side in sides}
    # Interleaved: every side's preparation, then configuration by configuration, each side in turn,
    # so a change of load on the machine during the run falls on all sides alike.
    for k in range(len(configs) + 1):
        for side in sides:
            counter.images = 0
            t0 = time.perf_counter()
            phases[side][k]()
            wall[side] += time.perf_counter() - t0
            passes[side] += counter.images
    accuracy = {side: {c: json.loads((tmp / SIDES[side] / "eval" / f"{c[0]}_{c[1]}" / "metrics.json").read_text())
                       ["acc_mean"] for c in configs} for side in sides if side != "baseline"}
    results = {side: (wall[side], passes[side], scores[side], steps[side], accuracy.get(side, {})) for side in sides}

    srnet_text = "trained " + ", ".join(args.srnet) if args.srnet else \
        f"EDSR {args.srnet_blocks}x{args.srnet_feats} with seeded random weights"
    print(f"data: {len(pairs)} pairs, {len(paths)} distinct images, {len(configs)} configurations, "
          f"FNet {args.fnet}, SRNet {srnet_text}, batch {args.batch}")
    print(f"landmarks (shared by all, not in the times below): {t_landmarks:.1f} s"
          + (f" (read from {args.landmarks})" if args.landmarks else ""))
    tb, fb = results["baseline"][:2] if "baseline" in results else (None, None)
    for side, (t, passes, scores, steps, _) in results.items():
        line = f"{side:12s} wall {t:7.1f} s, FNet image passes {passes}"
        if tb is not None and side != "baseline":
            worst = max(float(np.abs(scores[c] - results["baseline"][2][c]).max()) for c in configs)
            line += (f"; vs baseline: wall {tb / t:.2f}x, passes {fb / passes:.2f}x, "
                     f"max |score difference| {worst:.2e}")
        print(line)
        if steps:
            print(" " * 13 + "steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()))
    if "srlrfr" in results and "srlrfr-bf16" in results:
        fp32, bf16 = results["srlrfr"][4], results["srlrfr-bf16"][4]
        print(f"bf16 vs fp32: wall {results['srlrfr'][0] / results['srlrfr-bf16'][0]:.2f}x; 10-fold accuracy "
              f"(%) per configuration, fp32 -> bf16:")
        for c in configs:
            print(f"  {c[0]:>8s} x{c[1]:<2d} {fp32[c]:6.2f} -> {bf16[c]:6.2f} ({bf16[c] - fp32[c]:+.2f})")
        print(f"  largest |accuracy difference|: {max(abs(bf16[c] - fp32[c]) for c in configs):.2f} points")
    print("machine at the end:", machine_info(device))


if __name__ == "__main__":
    main()
