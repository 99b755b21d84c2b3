"""Rule features: flip-concatenated FNet features of every full-resolution crop.

Computed once per FNet and shared by every (method, resolution) evaluation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..atomic import save_npz
from ..faults import pause_point
from ..storage import CHUNK, AlignedSet

NAME = "features"
HELP = "flip-concatenated FNet features of all full-resolution crops"


def features(aligned_dir, fnet_name: str, fnet_weights, out_path, *, batch_size: int = 128,
             device: str = "auto", precision: str = "fp32") -> Path:
    """``precision``: the dtype the FNet runs in (evaluate.precision; bf16 where the hardware has it)."""
    # deferred: loads torch
    from ..device import inference_dtype, resolve_device
    from ..models.fnet import extract_features, load_fnet
    dev = resolve_device(device)
    aligned = AlignedSet(aligned_dir)
    fnet = load_fnet(fnet_name, fnet_weights, dev, inference_dtype(dev, precision))
    rows = batch_size * max(1, CHUNK // batch_size)  # whole batches per chunk: same batches as one pass
    chunks = tqdm(aligned.images.chunks(rows), total=-(-len(aligned) // rows), desc=f"features {fnet_name}",
                  unit="chunk")
    parts = []
    for _, chunk in chunks:
        parts.append(extract_features(fnet, chunk, batch_size=batch_size, device=dev, progress=False))
        pause_point("features:chunk")
    feats = np.concatenate(parts)
    save_npz(out_path, features=feats.astype(np.float32), ids=aligned.ids.astype(np.str_))
    return Path(out_path)


def add_arguments(p) -> None:
    p.add_argument("--aligned", required=True, help="aligned folder")
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)


def main(args, cfg) -> None:
    e = cfg["evaluate"]
    features(args.aligned, cfg["fnet"], args.weights, args.out, batch_size=e["batch_size"], device=e["device"],
             precision=e["precision"]["fnet"])
