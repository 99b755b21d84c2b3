"""What one GPU does with srlrfr, in a few minutes, on synthetic data (run by gpu_check.sh).

Prints, each with the command and machine:
1. training of the paper's SRNet (EDSR 32x256) with the identity loss through
   SphereFace-20 (random weights), batch 64, in fp32 and bf16: steps/s,
   images/s, the share of time waiting for data, achieved TFLOP/s against the
   GPU's data-sheet peak (benchmarks/bench_train.py);
2. MTCNN images/s (250x250 images, LFW's size, batch 16);
3. evaluation pairs/s: the evaluate step for one configuration (restore the
   x4 probes with that EDSR, embed, score, threshold search), after features
   and degrade, on synthetic aligned crops.

Each part imports what it needs when it runs; a part whose packages this
machine lacks prints SKIPPED with the missing module and the others go on
(training needs only torch, numpy, opencv, pandas, pyyaml and tqdm; srlrfr's
MTCNN also uses torchvision.ops and joblib; the evaluate step imports
srlrfr.steps, whose step table pulls in the report's plotting, matplotlib).

Data are random pixels: speed does not depend on weights, but MTCNN's later
stages see fewer candidate boxes on noise than on photographs, so its figure
is an upper bound for real images. ``--smoke`` shrinks every size to run in
about a minute on a CPU (to check the script itself, not to measure).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import machine_info, measure, report  # noqa: E402

FULL = {"blocks": 32, "feats": 256, "batch": 64, "steps": 20, "warmup": 5, "mtcnn_images": 512,
        "eval_images": 2000}
SMOKE = {"blocks": 2, "feats": 16, "batch": 4, "steps": 2, "warmup": 1, "mtcnn_images": 4, "eval_images": 40}


def mtcnn_images_per_s(device: torch.device, n: int, batch: int = 16) -> float:
    from srlrfr.face.mtcnn import MTCNN
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (250, 250, 3), dtype=np.uint8) for _ in range(n)]
    detector = MTCNN(device=str(device), min_face_size=20, thresholds=(0.6, 0.7, 0.7))
    detector.detect(images[:batch])  # warm-up: kernels, cuDNN autotuning
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for i in range(0, n, batch):
        detector.detect(images[i:i + batch])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n / (time.perf_counter() - start)


def evaluation_pairs_per_s(device: torch.device, n: int, size: dict, work: Path) -> tuple[float, int, float]:
    """(pairs/s, pairs, seconds) of the evaluate step for EDSR at x4, on n synthetic aligned crops."""
    from srlrfr.registry import FNETS
    from srlrfr.steps.degrade import degrade
    from srlrfr.steps.evaluate import EvaluateInputs, EvaluateOptions, evaluate
    from srlrfr.steps.features import features
    from srlrfr.storage import FACES, IMAGES, write_npy
    from srlrfr.training import RunControl, TrainOptions, train_srnet

    rng = np.random.default_rng(0)
    aligned = work / "aligned"
    aligned.mkdir()
    crops = rng.integers(0, 256, (n, 112, 96, 3), dtype=np.uint8)
    with write_npy(aligned / IMAGES, crops.shape) as out:
        out.write(crops)
    ids = [f"img{i:06d}" for i in range(n)]
    pd.DataFrame({"image_id": ids, "status": "ok", "landmark_ok": True}).to_csv(aligned / FACES, index=False)
    n_pairs = max(int(0.6 * n) // 10 * 10, 10)  # LFW's ratio: 6,000 pairs over ~7,700 images
    pairs = pd.DataFrame({"pair": np.arange(n_pairs), "fold": np.arange(n_pairs) * 10 // n_pairs,
                          "label": np.arange(n_pairs) % 2, "left": rng.choice(ids, n_pairs),
                          "right": rng.choice(ids, n_pairs)})
    pairs.to_csv(work / "pairs.csv", index=False)
    torch.manual_seed(0)
    weights = work / "sphereface20.pt"
    torch.save(FNETS.get("sphereface20").build().state_dict(), weights)
    train_srnet(crops[:64], fnet=None, lam=0.0, out_dir=work / "srnet", control=RunControl(device=str(device),
                                                                                           progress=False),
                srnet={"type": "edsr", "n_blocks": size["blocks"], "n_feats": size["feats"]},
                options=TrainOptions(batch_size=4, iterations=1, checkpoint_every=10**9, log_every=10**9))
    features(aligned, "sphereface20", weights, work / "features.npz", device=str(device))
    degrade(aligned, [4], "cv2_bicubic", work / "degraded", stream="lfw")
    start = time.perf_counter()
    inputs = EvaluateInputs(pairs_csv=work / "pairs.csv", aligned_dir=aligned, features_npz=work / "features.npz",
                            fnet_weights=weights, degraded_dir=work / "degraded", factor=4,
                            srnet_path=work / "srnet" / "model.pt")
    evaluate(inputs, method="edsr_lambda0", resolution="28x24", out_dir=work / "eval",
             options=EvaluateOptions(fnet_name="sphereface20", device=str(device)))
    seconds = time.perf_counter() - start
    return n_pairs / seconds, n_pairs, seconds


def part(name: str, run) -> None:
    """Run one part; a missing package skips it with its name instead of ending the check."""
    try:
        run()
    except ModuleNotFoundError as exc:
        print(f"{name:6s} SKIPPED: this python has no module {exc.name!r} (pip install it to time this part)",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the script runs (CPU is fine)")
    args = ap.parse_args()
    from srlrfr.catalog import load_all
    from srlrfr.device import resolve_device
    load_all()
    device = resolve_device(args.device)
    size = SMOKE if args.smoke else FULL
    t0 = time.perf_counter()
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {machine_info(device)}; torch CUDA {torch.version.cuda}")
    if device.type != "cuda":
        print("NOTE: no GPU in use: the figures below are CPU figures" + (" at smoke sizes" if args.smoke else ""))
    torch.backends.cudnn.benchmark = True

    def train() -> None:
        for amp in ("none", "bf16"):
            r = measure(blocks=size["blocks"], feats=size["feats"], batch=size["batch"], device=device, lam=0.5,
                        amp=amp, steps=size["steps"], warmup=size["warmup"])
            label = argparse.Namespace(blocks=size["blocks"], feats=size["feats"], batch=size["batch"], lam=0.5,
                                       amp="fp32" if amp == "none" else amp)
            print(f"train  {report(label, device, r)}", flush=True)

    def mtcnn() -> None:
        print(f"mtcnn  {mtcnn_images_per_s(device, size['mtcnn_images']):.1f} images/s "
              f"({size['mtcnn_images']} random 250x250 images, batch 16, {device})", flush=True)

    def evaluation() -> None:
        with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
            rate, n_pairs, seconds = evaluation_pairs_per_s(device, size["eval_images"], size, Path(tmp))
        print(f"eval   {rate:.1f} pairs/s ({n_pairs} pairs over {size['eval_images']} images, EDSR "
              f"{size['blocks']}x{size['feats']} at x4 + SphereFace-20 with mirrors, {seconds:.1f} s, {device})")

    for name, run in (("train", train), ("mtcnn", mtcnn), ("eval", evaluation)):
        part(name, run)
    print(f"total  {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
