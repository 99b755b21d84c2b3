"""Peak memory (RSS) of each pipeline step at two dataset sizes, and its projection to all of CelebA.

Each step runs as the pipeline runs it, ``python -m srlrfr <step> --params ...``
in its own process; its peak RSS is the child's ``ru_maxrss`` from ``wait4``.
Data: a synthetic CelebA of N images made by repeating the sample faces
(symlinks and an identity file in a temporary folder; the sample folder is
only read), so N can grow without new files. The evaluation set is a
synthetic LFW cut from the aligned synthetic CelebA: M images and 0.6 M pairs
(the real LFW protocol: 7,700 images, 6,000 pairs). The FNet is SphereFace-20
with random weights and the SRNet is trained here for a few steps: memory
does not depend on the weights.

The projection fits rss = a + b N through the two sizes (b: the bytes a step
holds per image, taken as 0 when the larger size measured less) and evaluates
it at CelebA's 202,599 images (LFW's 7,700 images and 6,000 pairs for
features and evaluate). "flat" means the larger size's peak is within 25% of
the smaller's.

    python benchmarks/bench_memory.py --data ../shared/data/celeba-sample \\
        [--celeba 1000 10000] [--landmarks 200 2000] [--lfw 100 1000]
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
CELEBA, LFW_IMAGES, LFW_PAIRS = 202_599, 7_700, 6_000


def machine() -> str:
    import platform
    load = " load average %.1f %.1f %.1f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.node()}: {os.cpu_count()} CPUs, {mem:.0f} GiB RAM, python {platform.python_version()},{load}"


def peak_rss_mb(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd``; (its peak RSS in MB, seconds). Fails loudly with the step's log."""
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{log.read_text()[-3000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # ru_maxrss is in KiB on Linux


def synthetic_celeba(sample: Path, n: int, dest: Path, distinct: int) -> Path:
    """``n`` CelebA-style entries (20 per identity); entry i links to the sample's image i mod ``distinct``."""
    files = sorted(p.name for p in (sample / "images").glob("*.jpg"))[:distinct]
    (dest / "images").mkdir(parents=True)
    lines = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        (dest / "images" / name).symlink_to((sample / "images" / files[i % len(files)]).resolve())
        lines.append(f"{name} {i // 20 + 1}")
    (dest / "identity_CelebA.txt").write_text("\n".join(lines) + "\n")
    return dest


def tile_landmarks(detected: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """Landmarks of synthetic image i are those of the sample image it links to (i mod len(detected))."""
    rows = detected.iloc[np.arange(len(index)) % len(detected)].reset_index(drop=True)
    return rows.assign(image_id=index["image_id"].to_numpy(), path=index["path"].to_numpy())


def lfw_like(aligned: Path, m: int, dest: Path, seed: int = 0) -> tuple[Path, Path]:
    """An aligned folder of the first ``m`` crops and 0.6 m pairs in 10 folds."""
    from srlrfr.storage import FACES, IMAGES, NpyArray, write_npy
    src = NpyArray(aligned / IMAGES)
    dest.mkdir(parents=True)
    with write_npy(dest / IMAGES, (m, *src.shape[1:])) as out:
        for start in range(0, m, 256):
            out.write(src.read(start, min(start + 256, m)))
    faces = pd.read_csv(aligned / FACES).head(m)
    faces.to_csv(dest / FACES, index=False)
    rng = np.random.default_rng(seed)
    n_pairs = max(int(0.6 * m) // 10 * 10, 10)  # 10 folds, one pair each at least
    ids = faces["image_id"].to_numpy()
    pairs = pd.DataFrame({"pair": np.arange(n_pairs), "fold": np.arange(n_pairs) * 10 // n_pairs,
                          "label": np.arange(n_pairs) % 2, "left": rng.choice(ids, n_pairs),
                          "right": rng.choice(ids, n_pairs)})
    pairs_csv = dest.parent / f"{dest.name}_pairs.csv"
    pairs.to_csv(pairs_csv, index=False)
    return dest, pairs_csv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(os.environ.get("SRLRFR_SHARED_DATA") or "/work/shared/data")
    ap.add_argument("--data", type=Path, default=shared / "celeba-sample", help="the CelebA sample folder")
    ap.add_argument("--celeba", type=int, nargs=2, default=[1000, 10000], help="CelebA sizes (align..train)")
    ap.add_argument("--landmarks", type=int, nargs=2, default=[200, 2000],
                    help="images through MTCNN (CPU-bound: smaller; beyond the sample's images they repeat)")
    ap.add_argument("--lfw", type=int, nargs=2, default=[100, 1000], help="evaluation images (pairs: 0.6 x)")
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="keep the work folder here")
    args = ap.parse_args()

    from srlrfr.catalog import load_all
    from srlrfr.registry import FNETS, GEOMETRIES
    load_all()
    geom = GEOMETRIES.get(FNETS.get("sphereface20").geometry)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    srlrfr = [sys.executable, "-m", "srlrfr"]
    results: list[dict] = []

    def measure(step: str, size: int, cmd: list[str], tag: str) -> None:
        rss, secs = peak_rss_mb(srlrfr + [step, *cmd, "--threads", str(args.threads)], work / f"{step}_{tag}.log")
        results.append({"step": step, "n": size, "rss_mb": rss, "seconds": secs})
        print(f"  {step:9s} n={size:>6,}  peak RSS {rss:7.0f} MB  {secs:6.1f} s", flush=True)

    import torch
    torch.manual_seed(0)
    fnet_pt = work / "sphereface20_random.pt"
    torch.save(FNETS.get("sphereface20").build().state_dict(), fnet_pt)

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {machine()}")
    print(f"work folder: {work}")
    if not (args.data / "images").is_dir():
        sys.exit(f"no CelebA sample at {args.data} (images/ missing): pass --data or set SRLRFR_SHARED_DATA")
    # The synthetic sets repeat this many sample images; landmarks sizes above it see
    # each image again, which separates per-image state from the variety of image sizes.
    distinct = min(max(args.landmarks), len(list((args.data / "images").glob("*.jpg"))))

    def params_file(d: Path, n: int) -> list[str]:
        params = {"fnet": "sphereface20",
                  "data": {"celeba": {"source": str(synthetic_celeba(args.data, n, d / "celeba", distinct))},
                           "cache": str(d / "downloads")},
                  "align": {"device": "cpu", "min_face_size": 40},
                  "train": {"srnet": {"type": "edsr", "n_blocks": 2, "n_feats": 16}, "batch_size": 8,
                            "iterations": args.train_steps, "checkpoint_every": 10, "log_every": 5,
                            "device": "cpu"},
                  "evaluate": {"batch_size": 32, "device": "cpu"}}
        (d / "params.yaml").write_text(yaml.safe_dump(params))
        return ["--params", str(d / "params.yaml")]

    for n_lm in sorted(args.landmarks):  # MTCNN (the CPU-bound step) on fewer images
        d = work / f"lm{n_lm}"
        p = params_file(d, n_lm)
        subprocess.run(srlrfr + ["ingest", "celeba", *p, "--out", str(d / "index")], check=True,
                       capture_output=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
        measure("landmarks", n_lm, ["celeba", *p, "--index", str(d / "index" / "images.csv"), "--out",
                                    str(d / "landmarks.csv"), "--report", str(d / "no_face.csv")], f"n{n_lm}")
    detected = pd.read_csv(work / f"lm{max(args.landmarks)}" / "landmarks.csv").head(distinct)
    for size_no, (n, m) in enumerate(zip(args.celeba, args.lfw)):
        d = work / f"n{n}"
        p = params_file(d, n)
        print(f"size {size_no + 1}: CelebA {n:,} images, evaluation {m:,} images", flush=True)
        measure("ingest", n, ["celeba", *p, "--out", str(d / "index")], f"n{n}")
        index = pd.read_csv(d / "index" / "images.csv")
        tile_landmarks(detected, index).to_csv(d / "landmarks.csv", index=False)
        measure("align", n, [*p, "--index", str(d / "index" / "images.csv"), "--landmarks",
                             str(d / "landmarks.csv"), "--geometry", geom.name, "--out", str(d / "aligned")], f"n{n}")
        measure("degrade", n, ["celeba", *p, "--aligned", str(d / "aligned"), "--out", str(d / "degraded")], f"n{n}")
        measure("train", n, [*p, "--aligned", str(d / "aligned"), "--degraded", str(d / "degraded"), "--lam", "0.5",
                             "--weights", str(fnet_pt), "--out-dir", str(d / "srnet")], f"n{n}")
        lfw, pairs = lfw_like(d / "aligned", m, d / "lfw_aligned")
        measure("degrade", m, ["lfw", *p, "--aligned", str(lfw), "--out", str(d / "lfw_degraded")], f"lfw{m}")
        results[-1]["step"] = "degrade (LFW)"
        measure("features", m, [*p, "--aligned", str(lfw), "--weights", str(fnet_pt), "--out",
                                str(d / "features.npz")], f"m{m}")
        measure("evaluate", m, [*p, "--pairs", str(pairs), "--aligned", str(lfw), "--features",
                                str(d / "features.npz"), "--weights", str(fnet_pt), "--degraded",
                                str(d / "lfw_degraded"), "--factor", "16", "--srnet", str(d / "srnet" / "model.pt"),
                                "--method", "edsr_lambda0.5", "--resolution", "7x6", "--out-dir",
                                str(d / "eval")], f"m{m}")

    table = pd.DataFrame(results)
    print("\npeak RSS (MB) per step, as `srlrfr <step>` runs it (one process per step)")
    print(f"{'step':15s} {'n small':>8s} {'RSS':>7s} {'n large':>8s} {'RSS':>7s} {'large/small':>11s} "
          f"{'MB per 1k':>9s} {'flat':>4s} {'projected':>18s}")
    for step, rows in table.groupby("step", sort=False):
        (n0, r0), (n1, r1) = rows[["n", "rss_mb"]].to_numpy()
        per = max(r1 - r0, 0.0) / (n1 - n0)
        full = {"features": LFW_IMAGES, "evaluate": LFW_IMAGES, "degrade (LFW)": LFW_IMAGES}.get(step, CELEBA)
        print(f"{step:15s} {int(n0):>8,} {r0:>7.0f} {int(n1):>8,} {r1:>7.0f} {r1 / r0:>10.2f}x "
              f"{1000 * per:>9.2f} {'yes' if r1 / r0 <= 1.25 else 'NO':>4s} "
              f"{r1 + per * (full - n1):>7.0f} MB at {full:,}")
    table.to_csv(work / "bench_memory.csv", index=False)
    print(f"\nraw figures: {work / 'bench_memory.csv'}")


if __name__ == "__main__":
    main()
