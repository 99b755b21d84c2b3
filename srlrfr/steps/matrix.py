"""Rule matrix: one method's resolution matrix, the first image of each pair at one resolution, the second at another.

Reads the features the evaluations already computed (their features.npz, which
hold both images of every pair for evaluate.matrix's method, and the
full-resolution features), so nothing is restored or embedded again. The
diagonal is lr_vs_lr, the full-resolution row is the paper's hr_vs_lr.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import write_csv
from ..metrics.protocols import Features, resolution_matrix
from ..storage import AlignedSet
from .evaluate import exclusion_causes

NAME = "matrix"
HELP = "one method's gallery-resolution x probe-resolution verification matrix"


def matrix(*, pairs_csv, aligned_dir, features: dict[str, str | Path], method: str, out_csv, no_face: str = "center",
           threshold_steps: int = 10001, far_targets=(1e-2, 1e-3)) -> pd.DataFrame:
    """``features``: resolution -> that evaluation's features.npz, the full resolution's (the features rule's)
    among them. Writes long-form rows (gallery, probe, acc...)."""
    # deferred: loads cv2
    from ..report.tables import resolution_order

    pairs = pd.read_csv(pairs_csv)
    aligned = AlignedSet(aligned_dir)
    keep = exclusion_causes(aligned, aligned.rows(pairs["left"]), aligned.rows(pairs["right"]), no_face) == ""
    by_res = {r: Features.load(p) for r, p in features.items()}
    by_res = {r: by_res[r] for r in resolution_order(by_res)}
    table = resolution_matrix(pairs[keep], by_res, threshold_steps=threshold_steps, far_targets=far_targets)
    table.insert(0, "method", method)
    write_csv(out_csv, table)
    print(f"matrix {method}: {len(by_res)}x{len(by_res)} resolutions, {int(keep.sum())} pairs each")
    return table


def add_arguments(p) -> None:
    p.add_argument("--pairs", required=True)
    p.add_argument("--aligned", required=True, help="aligned folder (which pairs are excluded)")
    p.add_argument("--full-features", required=True, help="full-resolution features (features rule)")
    p.add_argument("--full-resolution", required=True)
    p.add_argument("--features", nargs="+", required=True, help="<method>/<resolution>/features.npz files")
    p.add_argument("--method", required=True)
    p.add_argument("--out", required=True)


def main(args, cfg) -> None:
    features = {args.full_resolution: args.full_features, **{Path(f).parent.name: f for f in args.features}}
    matrix(pairs_csv=args.pairs, aligned_dir=args.aligned, features=features, method=args.method, out_csv=args.out,
           no_face=cfg["align"]["no_face"], threshold_steps=cfg["evaluate"]["threshold_steps"],
           far_targets=cfg["report"]["far_targets"])
