"""Training throughput of ``srlrfr.training.train_srnet``: steps/s, images/s, data-wait share, TFLOP/s.

Runs the real training loop (its prefetching BatchStream included) on
synthetic 112x96 crops (random pixels; the FNet is a randomly initialised
SphereFace-20: speed does not depend on weights) and reports, after a warm-up:
steps/s and images/s; the share of the loop's time the main thread waited for
a batch (over all steps, warm-up included); and the achieved TFLOP/s, the
FLOPs of the timed steps (counted by torch.utils.flop_counter in a second,
identically seeded run, so each step has the same scale as when timed) over
their time, against the GPU's peak from its data sheet where known.

    python benchmarks/bench_train.py                                 # CPU: EDSR 2x16, batch 8
    python benchmarks/bench_train.py --blocks 32 --feats 256 --batch 64 --device cuda --amp bf16

``--compare REF`` times the training loop of git revision REF (its srlrfr/training package,
on this checkout's other modules) against this checkout's loop, in fp32 and in each ``--amp``
given, rounds interleaved, on the same draws. Each measurement runs in a fresh process: the
reference side as REF's ``srlrfr train`` ran, this loop's sides as ``srlrfr train`` runs now
(freed host memory kept, srlrfr.training.host_memory; ``--malloc keep plain`` adds sides
without it, to show its share):

    python benchmarks/bench_train.py --compare 715bb0d --fnet dlib_resnet34 --blocks 8 --feats 64 \
        --batch 16 --amp none bf16 --rounds 4

``--threads 1 2`` times each side at both thread counts (interleaved) and fits Amdahl's
law to the two, for an estimate of the step's time on 8 and 32 cores.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

# Dense peak TFLOP/s from NVIDIA's data sheets (SXM parts): fp32 (CUDA cores),
# tf32 and bf16 (tensor cores, no sparsity). cuDNN runs fp32 convolutions as TF32 by default.
PEAK_TFLOPS = {"H200": (67, 495, 989), "H100": (67, 495, 989), "A100": (19.5, 156, 312),
               "L40S": (91.6, 183, 362), "L4": (30.3, 60, 121), "A10": (31.2, 62.5, 125),
               "RTX 4090": (82.6, 82.6, 165), "V100": (15.7, None, None)}


def peak_tflops(device: torch.device) -> dict[str, float] | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (fp32, tf32, bf16) in PEAK_TFLOPS.items():
        if key in name:
            return {"fp32": fp32, "tf32": tf32, "bf16": bf16}
    return None


def machine_info(device: torch.device) -> str:
    parts = [f"{platform.node()}", f"python {platform.python_version()}", f"torch {torch.__version__}",
             f"{platform.system()} {platform.machine()}", f"cpus {os.cpu_count()}",
             f"torch threads {torch.get_num_threads()}"]
    if hasattr(os, "getloadavg"):
        parts.append("load %.1f" % os.getloadavg()[0])
    if device.type == "cuda":
        parts.append(f"gpu {torch.cuda.get_device_name(device)}")
    return ", ".join(parts)


def _run(images, fnet, lam, srnet, options, device, on_step, stats=None, train_srnet=None) -> None:
    import inspect
    if train_srnet is None:
        from srlrfr.training import train_srnet
    control = dict(device=str(device), progress=False, step_callback=on_step, stats=stats)
    if "control" in inspect.signature(train_srnet).parameters:  # this loop; a --compare revision may predate it
        from srlrfr.training import RunControl
        control = {"control": RunControl(**control)}
    with tempfile.TemporaryDirectory() as out_dir:
        train_srnet(images, fnet=fnet, lam=lam, out_dir=out_dir, srnet=srnet, options=options, **control)


def random_fnet(name: str):
    """A registered FNet at its random init, frozen and channels-last as load_fnet leaves it (timing only)."""
    from srlrfr.models import catalog  # noqa: F401
    from srlrfr.models.fnet import FaceRecognizer
    from srlrfr.registry import FNETS
    spec = FNETS.get(name)
    backbone = spec.build()
    if spec.fuse is not None:
        backbone = spec.fuse(backbone)
    return FaceRecognizer(spec, backbone).freeze().to(memory_format=torch.channels_last)


def crops_for(fnet_name: str, n: int) -> np.ndarray:
    from srlrfr.geometry import get_geometry
    from srlrfr.models import catalog  # noqa: F401
    from srlrfr.registry import FNETS
    g = get_geometry(FNETS.get(fnet_name).geometry)
    return np.random.default_rng(0).integers(0, 256, (n, g.height, g.width, 3), dtype=np.uint8)


def measure(*, blocks: int, feats: int, batch: int, device: torch.device, lam: float = 0.5, amp: str = "none",
            steps: int = 20, warmup: int = 3, prefetch: int = 2, count_flops: bool = True,
            fnet_name: str = "sphereface20", train_srnet=None, images: np.ndarray | None = None) -> dict:
    """One preset timed: steps_per_s, images_per_s, data_wait_share, tflops (None without count_flops)."""
    from srlrfr.training import TrainOptions

    fnet = random_fnet(fnet_name) if lam > 0 else None
    if images is None:
        images = crops_for(fnet_name, max(4 * batch, 64))
    srnet = {"type": "edsr", "n_blocks": blocks, "n_feats": feats}
    options = TrainOptions(batch_size=batch, iterations=warmup + steps, amp=amp, checkpoint_every=10**9,
                           log_every=10**9, prefetch=prefetch)
    stamps: list[float] = []

    def on_step(step: int, losses: dict) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())

    stats: dict = {}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _run(images, fnet, lam, srnet, options, device, on_step, stats, train_srnet)
    timed = stamps[warmup - 1:] if warmup > 0 else stamps
    if len(timed) < 2:
        raise ValueError("need steps >= 2")
    sec_per_step = (timed[-1] - timed[0]) / (len(timed) - 1)
    out = {"steps_per_s": 1 / sec_per_step, "images_per_s": batch / sec_per_step,
           "data_wait_share": stats["data_wait_seconds"] / stats["seconds"], "tflops": None,
           "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}
    if count_flops:
        from torch.utils.flop_counter import FlopCounterMode
        counter, totals = FlopCounterMode(display=False), []
        with counter:
            _run(images, fnet, lam, srnet, options, device, lambda s, _: totals.append(counter.get_total_flops()))
        flops = totals[-1] - totals[warmup - 1 if warmup > 0 else 0]
        out["tflops"] = flops / (sec_per_step * (len(timed) - 1)) / 1e12
    return out


def report(args, device: torch.device, r: dict) -> str:
    line = (f"EDSR {args.blocks}x{args.feats}, batch {args.batch}, lam {args.lam}, amp {args.amp}, {device}: "
            f"{r['steps_per_s']:.3f} steps/s, {r['images_per_s']:.1f} images/s, "
            f"data wait {100 * r['data_wait_share']:.1f}% of the loop")
    if r["tflops"] is not None:
        line += f", {r['tflops']:.3f} TFLOP/s achieved"
        peak = peak_tflops(device)
        if peak:
            shares = [f"{100 * r['tflops'] / v:.1f}% of {k} peak {v}" for k, v in peak.items() if v]
            line += " (" + ", ".join(shares) + ")"
        elif device.type == "cuda":
            line += " (peak unknown for this GPU)"
    if r["peak_gib"] is not None:
        line += f", peak GPU memory {r['peak_gib']:.2f} GiB"
    return line


def reference_train_srnet(rev: str):
    """train_srnet of git revision ``rev``: its whole srlrfr/training package (loop, batches, losses...),
    imported as ``srlrfr._ref_training`` beside this checkout's other modules (models, data, config)."""
    import importlib
    import importlib.util
    import subprocess
    import tarfile
    import tempfile
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "archive", rev, "srlrfr/training"], cwd=root, check=True,
                             capture_output=True).stdout
    tmp = Path(tempfile.mkdtemp(prefix=f"srlrfr-ref-{rev}-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
    folder = tmp / "srlrfr" / "training"
    name = "srlrfr._ref_training"
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{name}.loop").train_srnet


def compare(args, device: torch.device) -> None:
    """The reference loop and this one (at each thread count), rounds interleaved, same draws; images/s and ratios."""
    threads = args.threads
    sides = {_label(f"{args.compare} loop, fp32", t, threads): {"ref": args.compare, "amp": "none", "threads": t,
                                                               "malloc": "plain"} for t in threads}
    for malloc in args.malloc:
        for amp in args.amp:
            name = _this_name(amp, malloc)
            sides.update({_label(name, t, threads): {"ref": None, "amp": amp, "threads": t, "malloc": malloc}
                          for t in threads})
    rates: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.rounds):
        # every other round backwards, so a machine that drifts (a shared VM does) favours no side
        for label in list(sides) if r % 2 == 0 else reversed(list(sides)):
            out = _measure_in_process(args, device, sides[label])
            rates[label].append(out["images_per_s"])
            print(f"round {r + 1}: {label}: {out['images_per_s']:.2f} images/s", flush=True)
    print(f"\nEDSR {args.blocks}x{args.feats}, batch {args.batch}, FNet {args.fnet}, lambda {args.lam}, "
          f"{args.steps} steps per round after {args.warmup} warm-up, {args.rounds} rounds (every other one in "
          f"reverse order), each side in a fresh process. Median images/s; ratio of the medians and the median "
          f"of the rounds' own ratios, against the {args.compare} loop at the same thread count:")
    medians = {label: float(np.median(values)) for label, values in rates.items()}
    for label, values in rates.items():
        base = _label(f"{args.compare} loop, fp32", sides[label]["threads"], threads)
        paired = float(np.median(np.divide(values, rates[base])))
        print(f"  {label:<52} {medians[label]:8.2f} images/s  {medians[label] / medians[base]:5.2f}x  "
              f"{paired:5.2f}x paired   (rounds: {', '.join(f'{v:.2f}' for v in values)})")
    if len(threads) == 2 and 0 not in threads:
        _scaling(args, medians, threads)


def _measure_in_process(args, device: torch.device, side: dict) -> dict:
    """One side timed in a fresh Python process (``--worker``): nothing process-wide carries over."""
    job = {**side, "device": str(device), **{k: getattr(args, k) for k in
                                             ("blocks", "feats", "batch", "lam", "steps", "warmup", "fnet")}}
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"side {side} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker(job: dict) -> None:
    """Time one side as its training command runs it; prints one JSON line."""
    if job["malloc"] == "keep":
        from srlrfr.training.host_memory import keep_freed_memory
        keep_freed_memory()
    if job["threads"]:
        torch.set_num_threads(job["threads"])
    loop = reference_train_srnet(job["ref"]) if job["ref"] else None
    out = measure(blocks=job["blocks"], feats=job["feats"], batch=job["batch"], device=torch.device(job["device"]),
                  lam=job["lam"], amp=job["amp"], steps=job["steps"], warmup=job["warmup"], count_flops=False,
                  fnet_name=job["fnet"], train_srnet=loop, images=crops_for(job["fnet"], max(4 * job["batch"], 256)))
    print(json.dumps(out))


def _this_name(amp: str, malloc: str) -> str:
    return f"this loop, {'fp32' if amp == 'none' else amp}" + ("" if malloc == "keep" else ", plain malloc")


def _label(name: str, t: int, threads: list[int]) -> str:
    return name if len(threads) == 1 else f"{name}, {t} thread{'s' if t > 1 else ''}"


def _scaling(args, medians: dict[str, float], threads: list[int]) -> None:
    """Amdahl's law fitted to two thread counts: the parallel share p, then an estimate for 8 and 32 cores.

    An extrapolation from two points: memory bandwidth and the per-step serial work of
    a bigger machine are not measured here, so read it as an upper bound.
    """
    lo, hi = sorted(threads)
    print(f"\nthread scaling ({lo} -> {hi} threads), Amdahl fit; s/step for batch {args.batch}:")
    for amp in args.amp:
        name = _this_name(amp, args.malloc[0])
        r_lo, r_hi = medians[_label(name, lo, threads)], medians[_label(name, hi, threads)]
        speedup = r_hi / r_lo
        # speedup = 1 / ((1 - p) + p * lo / hi), solved for p, clipped to [0, 1]
        p = min(max((1 - 1 / speedup) / (1 - lo / hi), 0.0), 1.0)
        est = {n: r_lo / ((1 - p) + p * lo / n) for n in (hi, 8, 32)}
        print(f"  {name}: {hi}/{lo} threads {speedup:.2f}x, parallel share {p:.2f}; "
              + ", ".join(f"{n} cores ~{args.batch / est[n]:.3f} s/step" for n in est)
              + f" (measured {hi}: {args.batch / r_hi:.3f} s/step)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--feats", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--lam", type=float, default=0.5, help="> 0 includes the FNet forward/backward")
    ap.add_argument("--amp", nargs="+", default=["none"], choices=["none", "bf16", "fp16"],
                    help="one value; with --compare, each is timed as a side of this loop")
    ap.add_argument("--fnet", default="sphereface20", help="registered FNet (random init: timing only)")
    ap.add_argument("--compare", metavar="REF", help="time the loop of git revision REF against this one")
    ap.add_argument("--malloc", nargs="+", default=["keep"], choices=["keep", "plain"],
                    help="with --compare: this loop's sides with freed host memory kept (as srlrfr train runs) "
                         "and/or glibc's default (plain)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # one side, JSON; run by --compare in a fresh process
    ap.add_argument("--rounds", type=int, default=4,
                    help="with --compare: rounds, sides interleaved (even: each order as often)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--prefetch", type=int, nargs="+", default=[2],
                    help="batches prepared ahead; several values are timed one after another (0: no worker)")
    ap.add_argument("--threads", type=int, nargs="+", default=[0],
                    help="torch CPU threads (0: torch default); with --compare, two values give a scaling estimate")
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP-counting run")
    ap.add_argument("--iterations", type=int, default=50_000, help="for the full-run time estimate")
    args = ap.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if len(args.threads) == 1 and args.threads[0]:
        torch.set_num_threads(args.threads[0])
    from srlrfr.device import resolve_device
    device = resolve_device(args.device)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {machine_info(device)}")
    if args.compare:
        return compare(args, device)
    args.amp = args.amp[0]
    if len(args.threads) > 1:
        ap.error("several --threads values need --compare (sides interleaved)")
    for prefetch in args.prefetch:
        r = measure(blocks=args.blocks, feats=args.feats, batch=args.batch, device=device, lam=args.lam,
                    amp=args.amp, steps=args.steps, warmup=args.warmup, prefetch=prefetch,
                    count_flops=not args.no_flops, fnet_name=args.fnet)
        print(f"prefetch {prefetch}: {report(args, device, r)}; {args.iterations} iterations: "
              f"{args.iterations / r['steps_per_s'] / 3600:.2f} h", flush=True)


if __name__ == "__main__":
    main()
