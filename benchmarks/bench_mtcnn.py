"""MTCNN on CPU: srlrfr's batched detector vs facenet-pytorch's, same images, same process.

    PYTHONPATH=. python benchmarks/bench_mtcnn.py --images ../shared/data/lfw-fold1/images \\
        [--limit 200] [--threads 2] [--batch 16] [--rounds 3] [--reference-csv points.csv] [--compare REV]

Both detectors get the same decoded RGB images (decoded once, not timed), the
same batch size, minimum face size (20), thresholds (0.6, 0.7, 0.7) and scale
factor (0.709). Every batch runs on both, alternating which goes first, so
that load from other processes hits both alike; img/s = images / summed time.

``--compare REV`` also times srlrfr's detector as it was at git revision REV
(srlrfr/face/mtcnn.py of that revision, imported beside this one) in the
same alternation, and says how far its chosen faces' points are from this
one's.

facenet-pytorch (2.6.0) is a benchmark-only package: its metadata pins an old
torch, so install it with ``pip install --no-deps facenet-pytorch==2.6.0`` into
a scratch environment. Without it only srlrfr is timed.

Landmarks of the chosen face (:func:`srlrfr.face.detect.choose_face`) are
compared with facenet-pytorch's and, given ``--reference-csv`` (a landmark CSV
with boxes, e.g. written by another MTCNN port), with those, on the images
where both chose the same face: mean and spread of the per-point offset
(srlrfr minus other), in srlrfr's convention and in the edge-based one it
used before (see ``srlrfr.face.mtcnn``).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from srlrfr.face import mtcnn as M
from srlrfr.face.detect import choose_face, read_rgb
from srlrfr.face.landmarks_io import BOX_COLUMNS, landmarks_array, read_landmarks_csv

POINTS = ("left eye", "right eye", "nose", "left mouth", "right mouth")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def facenet_detector(args):
    try:
        from facenet_pytorch import MTCNN as FacenetMTCNN
    except ImportError as err:
        print(f"facenet-pytorch not timed: {err} (pip install --no-deps facenet-pytorch==2.6.0 "
              "in a scratch environment)")
        return None
    det = FacenetMTCNN(min_face_size=args.min_face, thresholds=list(args.thresholds), factor=args.factor,
                       device="cpu")

    def run(batch):
        boxes, _, points = det.detect(batch, landmarks=True)
        return [(np.zeros((0, 4)) if b is None else b, np.zeros((0, 5, 2)) if p is None else p)
                for b, p in zip(boxes, points)]
    return run


def reference_mtcnn(rev: str):
    """srlrfr/face/mtcnn.py at git revision ``rev``, imported beside this checkout's modules."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{rev}:srlrfr/face/mtcnn.py"], cwd=root, check=True,
                            capture_output=True, text=True).stdout
    name = "srlrfr.face._reference_mtcnn"
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
    module.__package__ = "srlrfr.face"
    sys.modules[name] = module
    exec(compile(source, f"{rev}:srlrfr/face/mtcnn.py", "exec"), module.__dict__)
    return module


def moved(ours: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> str:
    """How many images' chosen points differ between two runs, and by how much (largest coordinate)."""
    d = np.abs(ours["points"] - other["points"]).reshape(len(ours["points"]), -1).max(axis=1)
    one = np.isnan(ours["width"]) != np.isnan(other["width"])
    d = d[~np.isnan(d)]
    return (f"{int((d > 0).sum())} images' points differ at all, {int((d > 1e-3).sum())} by more than 0.001 px, "
            f"{int((d > 0.1).sum())} by more than 0.1 px (largest {d.max(initial=0):.3f} px); "
            f"a face in one run only: {int(one.sum())}")


def chosen(faces: list[tuple[np.ndarray, np.ndarray]], images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Box centre, box width and points of the protocol's face per image (NaN where none)."""
    out = {"centre": np.full((len(images), 2), np.nan), "width": np.full(len(images), np.nan),
           "points": np.full((len(images), 5, 2), np.nan)}
    for n, ((boxes, points), img) in enumerate(zip(faces, images)):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        dets = M.Detections(boxes, np.ones(len(boxes)), np.asarray(points, np.float64).reshape(-1, 5, 2))
        k = choose_face(dets, img.shape)
        if k is not None:
            out["centre"][n] = (boxes[k, :2] + boxes[k, 2:]) / 2
            out["width"][n] = boxes[k, 2] - boxes[k, 0]
            out["points"][n] = dets.landmarks[k]
    return out


def offsets(name: str, ours: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> None:
    """Offsets on images where both chose the same face (box centres closer than 20% of our box width)."""
    p1, p2 = ours["points"], other["points"]
    found1, found2 = ~np.isnan(ours["width"]), ~np.isnan(other["centre"][:, 0])
    with np.errstate(invalid="ignore"):
        same = found1 & found2 & (np.hypot(*(ours["centre"] - other["centre"]).T) < 0.2 * ours["width"])
    print(f"  vs {name}: same face in {same.sum()} images; a face in one only: {int((found1 != found2).sum())}, "
          f"different faces chosen: {int((found1 & found2 & ~same).sum())}")
    for label, shift in (("srlrfr", 0.0), ("old edge-based", -M.LANDMARK_SHIFT)):
        d = p1[same] + shift - p2[same]  # (n, 5, 2)
        mean, sd = d.mean(axis=0), d.std(axis=0)
        overall = d.reshape(-1, 2).mean(axis=0)
        print(f"    {label:>15} convention: mean offset x {overall[0]:+.3f} px, y {overall[1]:+.3f} px; "
              "per point mean (sd): "
              + ", ".join(f"{p} ({m[0]:+.2f}, {m[1]:+.2f}) ({s[0]:.2f}, {s[1]:.2f})"
                          for p, m, s in zip(POINTS, mean, sd)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="folder searched for *.jpg (recursively)")
    parser.add_argument("--limit", type=int, help="use the first N images (sorted by path)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the images")
    parser.add_argument("--min-face", type=int, default=20)
    parser.add_argument("--thresholds", type=float, nargs=3, default=(0.6, 0.7, 0.7))
    parser.add_argument("--factor", type=float, default=0.709)
    parser.add_argument("--reference-csv", help="landmark CSV to compare the chosen faces' points with")
    parser.add_argument("--compare", metavar="REV", help="also time srlrfr's MTCNN of git revision REV")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    files = sorted(Path(args.images).rglob("*.jpg"))[:args.limit]
    if not files:
        sys.exit(f"no *.jpg under {args.images}")
    images = [read_rgb(f) for f in files]
    batches = [images[i:i + args.batch] for i in range(0, len(images), args.batch)]
    ours = M.MTCNN(min_face_size=args.min_face, thresholds=tuple(args.thresholds), scale_factor=args.factor)
    runners = {"srlrfr": ours.detect}
    if args.compare:
        old = reference_mtcnn(args.compare).MTCNN(min_face_size=args.min_face, thresholds=tuple(args.thresholds),
                                                   scale_factor=args.factor)
        runners[f"srlrfr {args.compare}"] = old.detect
    facenet = facenet_detector(args)
    if facenet is not None:
        runners["facenet-pytorch"] = facenet

    for run in runners.values():  # warm-up (allocators, oneDNN kernels)
        run(batches[0])
    load_before = os.getloadavg()[0]
    seconds = dict.fromkeys(runners, 0.0)
    results = {name: [] for name in runners}
    ours.stage_seconds = {}
    for r in range(args.rounds):
        for b, batch in enumerate(batches):
            names = list(runners) if (r + b) % 2 == 0 else list(runners)[::-1]
            for name in names:
                t0 = time.perf_counter()
                out = runners[name](batch)
                seconds[name] += time.perf_counter() - t0
                if r == 0:
                    results[name] += out

    n = len(images) * args.rounds
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.platform()}, python "
          f"{platform.python_version()}, torch {torch.__version__}, torch threads {torch.get_num_threads()}; "
          f"load average (1 min) {load_before:.1f} before the timed runs, {os.getloadavg()[0]:.1f} after")
    print(f"data: {len(images)} images from {args.images}, batch {args.batch}, {args.rounds} rounds, "
          f"min face {args.min_face}, thresholds {tuple(args.thresholds)}, factor {args.factor}")
    for name, s in seconds.items():
        print(f"{name:>16}: {n / s:6.1f} img/s ({s:.1f} s)")
    if facenet is not None:
        print(f"           ratio: {seconds['facenet-pytorch'] / seconds['srlrfr']:.2f}x (srlrfr / facenet-pytorch)")
    if args.compare:
        print(f"           ratio: {seconds[f'srlrfr {args.compare}'] / seconds['srlrfr']:.2f}x "
              f"(this srlrfr / srlrfr {args.compare}, images/s)")
    total = sum(ours.stage_seconds.values())
    print("srlrfr stages: " + ", ".join(f"{k} {v / n * 1e3:.1f} ms/img ({100 * v / total:.0f}%)"
                                        for k, v in ours.stage_seconds.items()))

    ours = chosen([(d.boxes, d.landmarks) for d in results["srlrfr"]], images)
    print(f"chosen face: {int((~np.isnan(ours['width'])).sum())}/{len(images)} images; landmark offsets "
          "(srlrfr minus other, x right / y down):")
    if facenet is not None:
        offsets("facenet-pytorch 2.6.0", ours, chosen(results["facenet-pytorch"], images))
    if args.compare:
        print(f"  vs srlrfr {args.compare}: " + moved(ours, chosen(
            [(d.boxes, d.landmarks) for d in results[f"srlrfr {args.compare}"]], images)))
    if args.reference_csv:
        ref = read_landmarks_csv(args.reference_csv)
        ids = [f.stem for f in files]
        points, _ = landmarks_array(ref, ids)
        boxes = ref.set_index("image_id").loc[ids, BOX_COLUMNS].to_numpy(np.float64)
        offsets(Path(args.reference_csv).name, ours, {"centre": (boxes[:, :2] + boxes[:, 2:]) / 2, "points": points})

if __name__ == "__main__":
    main()
