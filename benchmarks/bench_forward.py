"""Each forward-pass optimisation on its own: FNet features and SRNet super-resolution.

Every variant runs the same images in this one process, interleaved round by
round; the median time per variant and its ratio to the plain network are
printed with the largest feature / pixel difference from the plain result.

- plain: the network as the authors' scripts run it (fp32, NCHW, ``no_grad``;
  the dlib FNet with its separate affine layers), features flip-concatenated.
- one change at a time on top of plain: ``inference_mode``; the FNet's ``fuse``
  rewrite (dlib: affine folded into the convs, in-place ``add_prev``);
  channels-last weights and inputs; resize and normalise once for an image and
  its mirror (they commute with the flip); one batch of 2N for both.
- srlrfr's network one batch at a time (the changes above that won), then srlrfr:
  the pipeline's own path, ``load_fnet`` + ``extract_features`` and
  ``load_srnet`` + ``super_resolve``, which on a CPU split each batch over the
  threads, one intra-op thread each (srlrfr.models.batching).
- bf16: srlrfr's path with the network in bfloat16 (AMX / AVX512-BF16 on CPU).
- ``--compile``: srlrfr's FNet under ``torch.compile``, with its compile time.

    python benchmarks/bench_forward.py [--fnet dlib_resnet34] [--images 128] [--batch 32] [--rounds 5]

Weights: the FNet's real ones (prepared like the fnet_weights rule), an EDSR of
the given size with seeded random weights (speed does not depend on them).
Pixels: ``--aligned`` crops from a pipeline run, else random.
"""
from __future__ import annotations

import argparse
import copy
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

# srlrfr's CLI sets this for every step (srlrfr/cli.py): sleeping, not spinning, OpenMP
# threads; set here too so the figures describe the pipeline (override it from the shell).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from srlrfr.device import machine_info  # noqa: E402
from srlrfr.models import catalog  # noqa: E402,F401  (fills the registries)
from srlrfr.models.fnet import FaceRecognizer, extract_features, load_fnet  # noqa: E402
from srlrfr.models.srnet import build_srnet, load_srnet, save_srnet, super_resolve, to_tensor  # noqa: E402
from srlrfr.models.weights import load_into, load_state_dict_file  # noqa: E402
from srlrfr.registry import FNETS  # noqa: E402
from srlrfr.steps.fnet_weights import fnet_weights as prepare_fnet_weights  # noqa: E402


class BF16(nn.Module):
    """Runs a module in bfloat16 behind an fp32 interface."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.to(torch.bfloat16)

    def forward(self, x):
        return self.module(x.to(torch.bfloat16)).float()


def plain_features(fnet, images, batch, *, merge_flip=False, prepare_once=False, grad_mode=torch.no_grad):
    """The authors' loop: per batch of NCHW tensors f(x) and f(mirror x), concatenated (fp32 numpy)."""
    out = []
    device = next(fnet.parameters()).device
    with grad_mode():
        for s in range(0, len(images), batch):
            x = to_tensor(images[s:s + batch], device).contiguous()
            if merge_flip:
                f = fnet(torch.cat([x, x.flip(-1)]))
                out.append(torch.cat(f.chunk(2), dim=1).cpu().numpy())
            elif prepare_once:
                p = fnet.prepare(x)
                out.append(torch.cat([fnet.backbone(p), fnet.backbone(p.flip(-1))], dim=1).cpu().numpy())
            else:
                out.append(torch.cat([fnet(x), fnet(x.flip(-1))], dim=1).cpu().numpy())
    return np.concatenate(out)


def plain_sr(model, images, batch, *, grad_mode=torch.no_grad, fmt=torch.contiguous_format):
    from srlrfr.models.srnet import to_uint8
    out = []
    device = next(model.parameters()).device
    with grad_mode():
        for s in range(0, len(images), batch):
            x = to_tensor(images[s:s + batch], device).contiguous(memory_format=fmt)  # NCHW: plain
            out.append(to_uint8(model(x)))
    return np.concatenate(out)


def timed(variants: dict, rounds: int) -> dict:
    """Interleaved rounds (one warm-up call each first): name -> (median wall s, median CPU s, result).

    CPU time (this process, all threads) is the steadier figure on shared cores:
    waiting for a core does not count, the work does."""
    results = {name: fn() for name, fn in variants.items()}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name]), results[name]) for name in variants}


def report(title: str, res: dict, n: int, unit: str, diff) -> None:
    base, base_cpu, ref = res["plain"]
    print(f"\n{title}")
    print(f"  {'variant':34s} {'wall ms':>9s} {unit + '/s':>9s} {'ratio':>6s} {'CPU ms':>9s} {'ratio':>6s}  max diff")
    for name, (sec, cpu, out) in res.items():
        print(f"  {name:34s} {sec * 1000:9.1f} {n / sec:9.1f} {base / sec:6.2f} {cpu * 1000:9.1f} "
              f"{base_cpu / cpu:6.2f}  {diff(out, ref):.1e}")


def feat_diff(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def pix_diff(a, b):
    return float(np.abs(a.astype(int) - b.astype(int)).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fnet", default="dlib_resnet34")
    ap.add_argument("--fnet-weights", help="state dict .pt (default: prepared from the fnet's default source)")
    ap.add_argument("--aligned", help="an aligned folder (data/aligned/lfw_<geometry>) for real crops")
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--srnet-blocks", type=int, default=8)
    ap.add_argument("--srnet-feats", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile on a CPU)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["fnet", "srnet"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_forward_"))
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    device = torch.device(args.device)
    print("machine:", machine_info(device))

    spec = FNETS.get(args.fnet)
    h, w = FaceRecognizer(spec, nn.Identity()).geometry.size
    if args.aligned:
        from srlrfr.storage import AlignedSet
        images = AlignedSet(args.aligned).images.read(0, args.images)
    else:
        images = np.random.default_rng(0).integers(0, 256, (args.images, h, w, 3), dtype=np.uint8)
    n = len(images)

    if "fnet" not in args.skip:
        weights = args.fnet_weights or prepare_fnet_weights(args.fnet, spec.weights_default, tmp / "fnet.pt")

        def plain_backbone():
            b = spec.build()
            load_into(b, load_state_dict_file(weights), weights)
            return b

        plain = FaceRecognizer(spec, plain_backbone()).freeze().to(device)
        fused = FaceRecognizer(spec, spec.fuse(plain_backbone()) if spec.fuse else plain_backbone()).freeze().to(device)
        nhwc = copy.deepcopy(plain).to(memory_format=torch.channels_last)
        fast = load_fnet(args.fnet, weights, device)
        bf16 = load_fnet(args.fnet, weights, device)
        bf16.backbone = BF16(bf16.backbone)
        variants = {
            "plain": lambda: plain_features(plain, images, args.batch),
            "+ inference_mode": lambda: plain_features(plain, images, args.batch,
                                                       grad_mode=torch.inference_mode),
            "+ fuse (dlib: affine folded)": lambda: plain_features(fused, images, args.batch),
            "+ channels_last": lambda: plain_features(nhwc, images, args.batch),
            "+ prepare once for image and mirror": lambda: plain_features(plain, images, args.batch,
                                                                          prepare_once=True),
            "+ image and mirror in one batch": lambda: plain_features(plain, images, args.batch, merge_flip=True),
            "srlrfr's network, one batch at a time": lambda: plain_features(fast, images, args.batch,
                                                                            prepare_once=True,
                                                                            grad_mode=torch.inference_mode),
            "srlrfr (all kept: + batch split)": lambda: extract_features(fast, images, batch_size=args.batch,
                                                                         progress=False),
            "srlrfr, batch x2": lambda: extract_features(fast, images, batch_size=2 * args.batch,
                                                         progress=False),
            "srlrfr + bf16": lambda: extract_features(bf16, images, batch_size=args.batch, progress=False),
        }
        if args.compile:
            compiled = load_fnet(args.fnet, weights, device)
            compiled.backbone = torch.compile(compiled.backbone, dynamic=False)
            t0 = time.perf_counter()
            extract_features(compiled, images, batch_size=args.batch, progress=False)
            print(f"torch.compile: first pass over {n} images (compiles) {time.perf_counter() - t0:.1f} s")
            variants["srlrfr + torch.compile"] = lambda: extract_features(compiled, images, batch_size=args.batch,
                                                                          progress=False)
        res = timed(variants, args.rounds)
        report(f"FNet {args.fnet}: {n} crops {h}x{w} (+ mirrors), batch {args.batch}", res, n, "img", feat_diff)

    if "srnet" not in args.skip:
        torch.manual_seed(0)
        model, kwargs = build_srnet("edsr", {"n_blocks": args.srnet_blocks, "n_feats": args.srnet_feats})
        path = save_srnet(tmp / "edsr.pt", model, "edsr", kwargs, "rgb")
        plain_m = build_srnet("edsr", kwargs)[0]
        load_into(plain_m, torch.load(path, weights_only=True)["state_dict"], path)
        plain_m.to(device).eval().requires_grad_(False)
        fast_m, info = load_srnet(path, device)
        bf16_m = BF16(load_srnet(path, device)[0])
        for f in (16, 8, 4):
            probes = np.ascontiguousarray(images[:, ::f, ::f])
            variants = {
                "plain": lambda p=probes: plain_sr(plain_m, p, args.batch),
                "+ inference_mode": lambda p=probes: plain_sr(plain_m, p, args.batch, grad_mode=torch.inference_mode),
                "+ channels_last": lambda p=probes: plain_sr(fast_m, p, args.batch, grad_mode=torch.inference_mode,
                                                             fmt=torch.channels_last),
                "srlrfr (+ batch split)": lambda p=probes: super_resolve(fast_m, info, p, batch_size=args.batch),
                "srlrfr + bf16": lambda p=probes: plain_sr(bf16_m, p, args.batch, grad_mode=torch.inference_mode,
                                                           fmt=torch.channels_last),
            }
            res = timed(variants, args.rounds)
            report(f"SRNet EDSR {args.srnet_blocks}x{args.srnet_feats}: {n} probes "
                   f"{probes.shape[1]}x{probes.shape[2]} -> x4, batch {args.batch}", res, n, "img", pix_diff)
    print("\nmachine at the end:", machine_info(device))


if __name__ == "__main__":
    main()
