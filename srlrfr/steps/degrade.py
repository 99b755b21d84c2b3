"""Rule degrade: the downsampled levels of an aligned folder.

A verification set gets its probes (``degrade.factors``: x16, x8, x4 -> 7x6,
14x12, 28x24 for 112x96); a training set gets the SRNet's pyramid
(srlrfr.training.PYRAMID_FACTORS). One code path makes both, so probes and
training inputs can never drift apart. The full-size level is the aligned
crops themselves and is not stored again. Streamed in chunks: memory stays
one chunk whatever the dataset size.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from tqdm import tqdm

from ..faults import pause_point

NAME = "degrade"
HELP = "downsample aligned crops by integer factors (probes or the training pyramid)"


def degrade(aligned_dir, factors, kernel: str, out_dir) -> Path:
    from ..atomic import atomic_path
    from ..degradation import downsample
    from ..storage import CHUNK, IMAGES, NpyArray, level_name, write_levels_manifest, write_npy

    images = NpyArray(Path(aligned_dir) / IMAGES)
    n, h, w, _ = images.shape
    factors = sorted({int(f) for f in factors} - {1})
    for f in factors:
        if h % f or w % f:
            raise ValueError(f"factor {f} does not divide the {h}x{w} crops of {aligned_dir}")
    out_dir = Path(out_dir)
    # ExitStack closes (and checks) every level file before the folder is renamed into place
    with atomic_path(out_dir, is_dir=True) as tmp, contextlib.ExitStack() as stack:
        outs = {f: stack.enter_context(write_npy(tmp / level_name(f), (n, h // f, w // f, 3))) for f in factors}
        for _, chunk in tqdm(images.chunks(CHUNK), total=-(-n // CHUNK), desc="degrade", unit="chunk"):
            for f, out in outs.items():
                out.write(downsample(chunk, f, kernel))
                pause_point("degrade:level")
        write_levels_manifest(tmp, factors=factors, kernel=kernel, n=n)
    return out_dir


def level_factors(dataset: str, cfg: dict) -> list[int]:
    """Probes for a verification set, the training pyramid for a training set."""
    from ..catalog import load_all
    from ..registry import DATASETS
    from ..training.pyramid import PYRAMID_FACTORS
    load_all()
    role = DATASETS.get(dataset).role
    return list(cfg["degrade"]["factors"]) if role == "verification" else list(PYRAMID_FACTORS)


def add_arguments(p) -> None:
    p.add_argument("dataset")
    p.add_argument("--aligned", required=True, help="aligned folder")
    p.add_argument("--out", required=True, help="degraded folder (data/degraded/<dataset>_<geometry>)")


def main(args, cfg) -> None:
    degrade(args.aligned, level_factors(args.dataset, cfg), cfg["degrade"]["kernel"], args.out)
