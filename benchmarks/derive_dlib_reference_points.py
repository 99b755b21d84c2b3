"""Derive the 5 reference points of the ``dlib_160x160`` geometry.

dlib's face descriptor expects dlib's own 150x150 chips
(``dlib.get_face_chip(img, shape5, size=150, padding=0.25)``). srlrfr aligns
with 5 points and a similarity transform instead, so this script measures
where those 5 points land on dlib's chips: for each sample face it detects
(frontal detector + 5-point predictor), cuts dlib's chip, runs the 68-point
predictor on the chip and takes eye centres (mean of 36-41 and 42-47), nose tip
(30) and mouth corners (48, 54). The mean over faces is mapped to a 160x160
canvas with the same framing (pixel-centre convention, matching the 160->150
resize in the FNet wrapper: x160 = (x150 + 0.5) * 160/150 - 0.5).

Order: left eye = the eye on the LEFT of the image (iBUG points 36-41), as in
the SphereFace reference points.

dlib is a test/benchmark-only dependency (pip package dlib-bin).

    python benchmarks/derive_dlib_reference_points.py [--data DIR] [--per-source 100]
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

CHIP, CANVAS, PADDING = 150, 160, 0.25
NAMES = ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")


def model_dir() -> Path:
    import importlib.util
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs the pip package face-recognition-models (dlib's model files)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def sample_files(data: Path, per_source: int) -> dict[str, list[Path]]:
    """Evenly spaced files from each source (sorted paths, deterministic)."""
    sources = {"lfw": sorted((data / "lfw-fold1" / "images").glob("*/*.jpg")),
               "celeba": sorted((data / "celeba-sample" / "images").glob("*.jpg"))}
    out = {}
    for name, files in sources.items():
        if not files:
            sys.exit(f"no images for {name} under {data}")
        idx = np.linspace(0, len(files) - 1, min(per_source, len(files))).round().astype(int)
        out[name] = [files[i] for i in sorted(set(idx))]
    return out


def largest(rects):
    return max(rects, key=lambda r: r.width() * r.height()) if len(rects) else None


def five_points_on_chip(shape68) -> np.ndarray:
    p = np.array([[shape68.part(i).x, shape68.part(i).y] for i in range(68)], dtype=np.float64)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data",
                    help="folder with lfw-fold1/ and celeba-sample/ (default ../shared/data)")
    ap.add_argument("--per-source", type=int, default=100, help="faces tried per source")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)

    import dlib  # benchmark-only oracle
    models = model_dir()
    detector = dlib.get_frontal_face_detector()
    sp5 = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    sp68 = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))

    points, counts = [], {}
    for source, files in sample_files(args.data, args.per_source).items():
        c = counts[source] = {"tried": len(files), "no_face": 0, "no_face_on_chip": 0, "used": 0}
        for path in tqdm(files, desc=source, leave=False):
            img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            face = largest(detector(img, 1))
            if face is None:
                c["no_face"] += 1
                continue
            chip = dlib.get_face_chip(img, sp5(img, face), size=CHIP, padding=PADDING)
            # The 68-point predictor wants a frontal-detector box: detect again on the chip.
            box = largest(detector(chip, 1))
            if box is None:
                c["no_face_on_chip"] += 1
                continue
            points.append(five_points_on_chip(sp68(chip, box)))
            c["used"] += 1
    if not points:
        sys.exit("no face could be measured")
    pts = np.stack(points)
    mean150, std150 = pts.mean(0), pts.std(0)
    mean160 = (mean150 + 0.5) * (CANVAS / CHIP) - 0.5
    if not (mean160[0, 0] < mean160[1, 0] and mean160[3, 0] < mean160[4, 0]):
        sys.exit("left/right order came out mirrored; check the landmark indices")

    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print("counts:", json.dumps(counts), f"total used: {len(pts)}")
    print(f"{'point':12s} {'x150':>9s} {'y150':>9s} {'sd_x':>6s} {'sd_y':>6s} {'x160':>9s} {'y160':>9s}")
    for name, m, s, q in zip(NAMES, mean150, std150, mean160):
        print(f"{name:12s} {m[0]:9.4f} {m[1]:9.4f} {s[0]:6.2f} {s[1]:6.2f} {q[0]:9.4f} {q[1]:9.4f}")
    print("reference (160x160):", tuple((round(float(x), 4), round(float(y), 4)) for x, y in mean160))
    if args.json:
        from srlrfr.atomic import write_json
        write_json(args.json, {"counts": counts, "n": len(pts), "names": NAMES,
                               "chip150_mean": mean150.round(4).tolist(), "chip150_std": std150.round(4).tolist(),
                               "canvas160": mean160.round(4).tolist()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
