"""Training-step cost of the registered SRNets, side by side in one run.

One step = forward, L1 loss, backward and Adam update on a batch of x4 inputs
(default 28x24 -> 112x96, the largest scale of the training pyramid). The
networks take turns, round after round, so load from other processes hits
both alike; the median over rounds is reported with the ratio to the first.

    python benchmarks/bench_srnets.py --threads 2 \
        --srnet edsr:n_blocks=32,n_feats=256 --srnet imdn --srnet edsr:n_blocks=2,n_feats=16 \
        --srnet imdn:n_blocks=2,n_feats=32
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time

import torch


def parse_spec(text: str) -> tuple[str, dict]:
    name, _, args = text.partition(":")
    kwargs = {}
    for item in filter(None, args.split(",")):
        key, _, value = item.partition("=")
        kwargs[key] = float(value) if "." in value else int(value)
    return name, kwargs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--srnet", action="append", required=True, help="type[:key=value,...]")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, nargs=2, default=(28, 24), metavar=("H", "W"), help="input size")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from srlrfr.models.srnet import build_srnet

    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, *args.size) * 2 - 1
    runs = []
    for text in args.srnet:
        model, kwargs = build_srnet(*parse_spec(text))
        y = torch.rand(args.batch, 3, args.size[0] * model.scale, args.size[1] * model.scale) * 2 - 1
        runs.append((text, model, torch.optim.Adam(model.parameters(), lr=1e-4), y, []))

    def step(model, opt, y) -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(model(x), y).backward()
        opt.step()

    for _, model, opt, y, _ in runs:  # warm-up
        step(model, opt, y)
    for _ in range(args.rounds):
        for _, model, opt, y, times in runs:
            t0 = time.perf_counter()
            step(model, opt, y)
            times.append(time.perf_counter() - t0)

    print("$ python " + " ".join(shlex.quote(a) for a in sys.argv))
    print(f"machine: python {platform.python_version()}, torch {torch.__version__}, {platform.system()} "
          f"{platform.machine()}, cpus {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"batch {args.batch}, input {args.size[0]}x{args.size[1]}, median of {args.rounds} interleaved rounds")
    first = statistics.median(runs[0][4])
    for text, model, _, _, times in runs:
        med = statistics.median(times)
        params = sum(p.numel() for p in model.parameters())
        print(f"{text:32s} {params:>11,d} params  {med * 1000:9.1f} ms/step  {med / first:6.3f}x the first")


if __name__ == "__main__":
    main()
