"""OpenMP wait policy: srlrfr's FNet features with OMP_WAIT_POLICY=PASSIVE (what srlrfr's CLI sets) vs unset.

OpenMP reads the policy once, when torch loads it, so each setting runs in its
own child process; the children alternate, round after round, on the same
random crops, and the medians are compared. Unset, OpenMP threads spin while
they wait; that costs nothing on idle cores and a great deal on shared ones.

    python benchmarks/bench_omp_wait.py [--fnet dlib_resnet34] [--images 64] [--rounds 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import sys, time, numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from srlrfr.models.fnet import extract_features, load_fnet
fnet = load_fnet(sys.argv[1], sys.argv[2])
h, w = fnet.geometry.size
images = np.random.default_rng(0).integers(0, 256, (int(sys.argv[4]), h, w, 3), dtype=np.uint8)
extract_features(fnet, images[:8], batch_size=8, progress=False)  # warm-up
t0, c0 = time.perf_counter(), time.process_time()
extract_features(fnet, images, batch_size=32, progress=False)
print(time.perf_counter() - t0, time.process_time() - c0)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fnet", default="dlib_resnet34")
    ap.add_argument("--fnet-weights", help="state dict .pt (default: prepared from the fnet's default source)")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from srlrfr.device import machine_info
    from srlrfr.registry import FNETS
    from srlrfr.steps.fnet_weights import fnet_weights
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print("machine:", machine_info("cpu"))
    weights = args.fnet_weights
    if not weights:
        from srlrfr.catalog import load_all
        load_all()
        weights = fnet_weights(args.fnet, FNETS.get(args.fnet).weights_default,
                               Path(tempfile.mkdtemp(prefix="bench_omp_")) / "fnet.pt")
    policies = {"unset (OpenMP default: spin, then sleep)": None, "PASSIVE (srlrfr)": "PASSIVE"}
    times: dict[str, list[tuple[float, float]]] = {p: [] for p in policies}
    for _ in range(args.rounds):
        for name, value in policies.items():
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            if value:
                env["OMP_WAIT_POLICY"] = value
            out = subprocess.run([sys.executable, "-c", CHILD, args.fnet, str(weights), str(args.threads),
                                  str(args.images)], env=env, capture_output=True, text=True, check=True)
            wall, cpu = map(float, out.stdout.split()[-2:])
            times[name].append((wall, cpu))
    base = statistics.median(w for w, _ in times[next(iter(policies))])
    print(f"FNet {args.fnet} features of {args.images} crops (+ mirrors), {args.threads} threads, "
          f"median of {args.rounds} alternating child processes:")
    for name, runs in times.items():
        wall, cpu = statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)
        print(f"  {name:42s} wall {wall:7.2f} s ({args.images / wall:6.1f} img/s, x{base / wall:.2f}), "
              f"CPU {cpu:7.2f} s")
    print("machine at the end:", machine_info("cpu"))


if __name__ == "__main__":
    main()
