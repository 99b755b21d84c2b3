"""evaluate.precision on a finished run: time and 10-fold accuracy of every configuration per precision.

Re-evaluates each (method, resolution) of a pipeline run (its aligned crops,
degraded probes, FNet weights and trained SRNets) with the pipeline's own
``features`` and ``evaluate`` step functions, once per precision setting,
interleaved configuration by configuration so that load on the machine falls
on every setting alike. Prints, per configuration and setting, the wall time
of the evaluation and the accuracy change from fp32 (in points and in pairs).

    python benchmarks/bench_precision.py --run . [--fnet dlib_resnet34] [--dataset lfw] \\
        [--settings fp32/fp32,fp32/bf16,bf16/bf16]      # fnet/srnet precision

Full-resolution features are computed once per FNet precision (timed apart).
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

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as srlrfr's CLI sets it for every step

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from srlrfr.device import machine_info  # noqa: E402
from srlrfr.methods import FULL, is_sr  # noqa: E402
from srlrfr.steps.evaluate import EvaluateInputs, EvaluateOptions, evaluate  # noqa: E402
from srlrfr.steps.features import features  # noqa: E402


def configurations(run: Path, dataset: str, fnet: str) -> list[tuple[str, str]]:
    """(method, resolution) of every evaluation the run made, from its results/eval tree."""
    found = sorted((run / "results" / "eval" / dataset / fnet).glob("*/*/metrics.json"))
    return [(m.parent.parent.name, m.parent.name) for m in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=".", help="the repository folder of a finished run")
    parser.add_argument("--fnet", default="dlib_resnet34")
    parser.add_argument("--dataset", default="lfw")
    parser.add_argument("--settings", default="fp32/fp32,fp32/bf16,bf16/bf16",
                        help="comma-separated fnet/srnet precisions; the first is the reference")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads (the rules' {threads})")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print("machine:", machine_info("cpu"))
    run = Path(args.run)
    settings = [tuple(s.split("/")) for s in args.settings.split(",")]
    aligned = next((run / "data" / "aligned").glob(f"{args.dataset}_*"))
    degraded = run / "data" / "degraded" / aligned.name
    factors = {f"{aligned_hw[0] // f}x{aligned_hw[1] // f}": f
               for aligned_hw in [np.load(aligned / "images.npy", mmap_mode="r").shape[1:3]]
               for f in json.loads((degraded / "levels.json").read_text())["factors"]}
    weights = run / "models" / "fnets" / f"{args.fnet}.pt"
    pairs = run / "data" / "index" / args.dataset / "pairs.csv"
    tmp = Path(tempfile.mkdtemp(prefix="bench_precision_"))

    hr = {}
    for fnet_p in dict.fromkeys(s[0] for s in settings):
        t0 = time.perf_counter()
        hr[fnet_p] = features(aligned, args.fnet, weights, tmp / f"hr_{fnet_p}.npz", batch_size=args.batch,
                              device="cpu", precision=fnet_p)
        print(f"features {args.fnet} {fnet_p}: {time.perf_counter() - t0:.1f} s")

    rows = []
    for method, res in configurations(run, args.dataset, args.fnet):
        factor = factors.get(res)
        srnet = run / "models" / "srnets" / args.fnet / method / "model.pt" if is_sr(method) else None
        if srnet is not None and not srnet.is_file():
            print(f"skipping {method} {res}: no {srnet}")
            continue
        for fnet_p, srnet_p in settings:
            out = tmp / f"{method}_{res}_{fnet_p}_{srnet_p}"
            t0 = time.perf_counter()
            inputs = EvaluateInputs(pairs_csv=pairs, aligned_dir=aligned, features_npz=hr[fnet_p],
                                    fnet_weights=weights, degraded_dir=degraded if method != FULL else None,
                                    factor=factor or 1, srnet_path=srnet)
            m = evaluate(inputs, method=method, resolution=res, out_dir=out,
                         options=EvaluateOptions(fnet_name=args.fnet, batch_size=args.batch, device="cpu",
                                                 precision=fnet_p, srnet_precision=srnet_p))
            rows.append((method, res, f"{fnet_p}/{srnet_p}", time.perf_counter() - t0, m["acc_mean"], m["n_pairs"]))

    ref = {(r[0], r[1]): r for r in rows if r[2] == "/".join(settings[0])}
    print(f"\n{'method':18s} {'res':8s} {'fnet/srnet':10s} {'seconds':>8s} {'acc %':>7s} {'change':>8s}")
    worst: dict[str, float] = {}
    for method, res, setting, seconds, acc, n in rows:
        base = ref[(method, res)]
        change = acc - base[4]
        worst[setting] = max(worst.get(setting, 0.0), abs(change))
        pairs_moved = f" ({round(change / 100 * n):+d} pairs)" if change else ""  # equal folds: points -> pairs
        print(f"{method:18s} {res:8s} {setting:10s} {seconds:8.1f} {acc:7.2f} {change:+8.2f}{pairs_moved}")
    for setting in dict.fromkeys(r[2] for r in rows):
        total = sum(r[3] for r in rows if r[2] == setting)
        print(f"{setting}: evaluations {total:.1f} s in all, largest |accuracy change| {worst[setting]:.2f} points")
    print("machine at the end:", machine_info("cpu"))


if __name__ == "__main__":
    main()
