"""Rule degrade: the low-resolution levels of an aligned folder.

A verification set gets its probes (``degrade.factors``: x16, x8, x4 -> 7x6,
14x12, 28x24 for 112x96); a training set gets the SRNet's pyramid
(srlrfr.training.PYRAMID_FACTORS). One code path makes both, so probes and
training inputs can never drift apart. Every factor gets its plain downsample
(``x<f>.npy``: pixel targets); under a degradation model that is not plain
(``degrade.model``, srlrfr.degradation.models) each input factor (the probes;
the pyramid's SR inputs) also gets its degraded level (``x<f>_lq.npy``). The
full-size level is the aligned crops themselves and is not stored again.
Streamed in chunks: memory stays one chunk whatever the dataset size.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from tqdm import tqdm

from ..atomic import atomic_path
from ..catalog import load_all
from ..faults import pause_point
from ..registry import DATASETS
from ..storage import CHUNK, IMAGES, NpyArray, level_name, write_levels_manifest, write_npy

NAME = "degrade"
HELP = "downsample (and degrade) aligned crops by integer factors (probes or the training pyramid)"


def degrade(aligned_dir, factors, kernel: str, out_dir, *, model: dict | None = None, seed: int = 0,
            stream: str = "", inputs=None) -> Path:
    """Write the levels of ``aligned_dir``; ``inputs`` (default: every factor) are the levels that get
    the degraded version; ``stream`` (the dataset) keeps its random draws apart from other sets'."""
    # deferred: loads cv2
    from ..degradation import Degradation

    images = NpyArray(Path(aligned_dir) / IMAGES)
    n, h, w, _ = images.shape
    factors = sorted({int(f) for f in factors} - {1})
    inputs = factors if inputs is None else sorted({int(f) for f in inputs} - {1})
    if not set(inputs) <= set(factors):
        raise ValueError(f"input factors {inputs} are not all among the factors {factors}")
    for f in factors:
        if h % f or w % f:
            raise ValueError(f"factor {f} does not divide the {h}x{w} crops of {aligned_dir}")
    deg = Degradation(model, kernel, seed=seed, stream=stream)
    files = {f: level_name(f, degraded=not deg.plain) for f in inputs}
    out_dir = Path(out_dir)
    # ExitStack closes (and checks) every level file before the folder is renamed into place
    with atomic_path(out_dir, is_dir=True) as tmp, contextlib.ExitStack() as stack:
        def open_out(f: int, name: str):
            return stack.enter_context(write_npy(tmp / name, (n, h // f, w // f, 3)))
        clean_outs = {f: open_out(f, level_name(f)) for f in factors}
        degraded_outs = {} if deg.plain else {f: open_out(f, files[f]) for f in inputs}
        for start, chunk in tqdm(images.chunks(CHUNK), total=-(-n // CHUNK), desc="degrade", unit="chunk"):
            clean, degraded = deg.levels(chunk, factors, inputs, start)
            for f, out in clean_outs.items():
                out.write(clean[f])
                pause_point("degrade:level")
            for f, out in degraded_outs.items():
                out.write(degraded[f])
                pause_point("degrade:level")
        write_levels_manifest(tmp, factors=factors, kernel=kernel, n=n, degradation=deg.describe(),
                              inputs={str(f): files[f] for f in inputs})
    return out_dir


def level_factors(dataset: str, cfg: dict) -> tuple[list[int], list[int]]:
    """(factors, input factors): the probes for a verification set; the training pyramid and its
    SR inputs for a training set."""
    # deferred: loads torch
    from ..training.pyramid import INPUT_FACTORS, PYRAMID_FACTORS
    load_all()
    if DATASETS.get(dataset).role != "training":  # verification and identification: probes
        return list(cfg["degrade"]["factors"]), list(cfg["degrade"]["factors"])
    return list(PYRAMID_FACTORS), list(INPUT_FACTORS)


def add_arguments(p) -> None:
    p.add_argument("dataset")
    p.add_argument("--aligned", required=True, help="aligned folder")
    p.add_argument("--out", required=True, help="degraded folder (data/degraded/<dataset>_<geometry>)")


def main(args, cfg) -> None:
    d = cfg["degrade"]
    factors, inputs = level_factors(args.dataset, cfg)
    degrade(args.aligned, factors, d["kernel"], args.out, model=d["model"], seed=d["seed"], stream=args.dataset,
            inputs=inputs)
