"""Training throughput of ``srlrfr.training.train_srnet`` for one preset.

Runs the real training loop on synthetic 112x96 crops (random pixels; the FNet
is a randomly initialised SphereFace-20 -- speed does not depend on weights)
and reports steps/second after a warm-up, with the command and machine.

    python benchmarks/bench_train.py --blocks 32 --feats 256 --batch 64 --device cuda --lam 0.5 --amp bf16
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time

import numpy as np
import torch


def machine_info(device: torch.device) -> str:
    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}",
             f"{platform.system()} {platform.machine()}", f"cpus {os.cpu_count()}",
             f"torch threads {torch.get_num_threads()}"]
    if device.type == "cuda":
        parts.append(f"gpu {torch.cuda.get_device_name(device)}")
    return ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=32)
    ap.add_argument("--feats", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--lam", type=float, default=0.5, help="> 0 includes the FNet forward/backward")
    ap.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--iterations", type=int, default=50_000, help="for the full-run time estimate")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from srlrfr.device import resolve_device
    from srlrfr.models import catalog  # noqa: F401
    from srlrfr.models.fnet import FaceRecognizer
    from srlrfr.registry import FNETS
    from srlrfr.training import TrainOptions, train_srnet

    device = resolve_device(args.device)
    fnet = None
    if args.lam > 0:
        spec = FNETS.get("sphereface20")
        fnet = FaceRecognizer(spec, spec.build())  # random init: timing only
    n_images = max(4 * args.batch, 64)
    images = np.random.default_rng(0).integers(0, 256, (n_images, 112, 96, 3), dtype=np.uint8)

    stamps: list[float] = []

    def on_step(step: int, losses: dict) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as out_dir:
        options = TrainOptions(batch_size=args.batch, iterations=args.warmup + args.steps, amp=args.amp,
                               checkpoint_every=10**9, log_every=10**9)
        train_srnet(images, fnet=fnet, lam=args.lam, out_dir=out_dir,
                    srnet={"type": "edsr", "n_blocks": args.blocks, "n_feats": args.feats}, options=options,
                    device=str(device), progress=False, step_callback=on_step)
    timed = stamps[args.warmup - 1:] if args.warmup > 0 else stamps
    if len(timed) < 2:
        sys.exit("need --steps >= 2")
    sec_per_step = (timed[-1] - timed[0]) / (len(timed) - 1)

    print(f"command: {' '.join(shlex.quote(a) for a in [sys.executable, *sys.argv])}")
    print(f"machine: {machine_info(device)}")
    print(f"preset: EDSR {args.blocks}x{args.feats}, batch {args.batch}, lam {args.lam}, amp {args.amp}, "
          f"device {device}")
    print(f"steps/s {1 / sec_per_step:.3f}  s/step {sec_per_step:.4f}  images/s {args.batch / sec_per_step:.1f}"
          f"  ({len(timed) - 1} timed steps after {args.warmup} warm-up)")
    print(f"estimated {args.iterations} iterations: {args.iterations * sec_per_step / 3600:.2f} h")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
