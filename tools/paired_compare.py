"""Paired comparison of one method evaluated in two runs (e.g. an SRNet trained in fp32 and in bf16).

Each argument is a method's evaluation folder, ``results/eval/<set>/<fnet>/<method>``,
holding one subfolder per resolution (``metrics.json`` and ``scores.csv``). For every
resolution both runs evaluated, prints the accuracy of each, their difference with a
95% paired bootstrap interval and McNemar's exact p (srlrfr.metrics.significance), on
the pairs both scored.

    python tools/paired_compare.py ../cpu-run/results/eval/lfw/dlib_resnet34/edsr_lambda0.5 \
        results/eval/lfw/dlib_resnet34/edsr_lambda0.5 --labels fp32 bf16
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srlrfr.metrics.significance import compare, load_decisions
from srlrfr.report.tables import resolution_order


def resolutions(folder: Path) -> set[str]:
    return {p.parent.name for p in folder.glob("*/metrics.json")}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="evaluation folder of the first run (the difference is a - b)")
    ap.add_argument("b", type=Path, help="evaluation folder of the second run")
    ap.add_argument("--labels", nargs=2, default=["a", "b"])
    args = ap.parse_args(argv)
    common = resolution_order(resolutions(args.a) & resolutions(args.b))
    if not common:
        sys.exit(f"no resolution evaluated in both {args.a} and {args.b} (expected <res>/metrics.json)")
    la, lb = args.labels
    print(f"| resolution | {la} | {lb} | {la} − {lb} [95% CI] | McNemar p | pairs |")
    print("|---|---|---|---|---|---|")
    for res in common:
        _, da = load_decisions(args.a / res / "metrics.json")
        _, db = load_decisions(args.b / res / "metrics.json")
        c = compare(da, db)
        print(f"| {res} | {c['acc_a']:.2f} | {c['acc_b']:.2f} | {c['diff']:+.2f} [{c['ci_low']:+.2f}, "
              f"{c['ci_high']:+.2f}] | {c['p_mcnemar']:.3g} | {c['n_pairs']} |")


if __name__ == "__main__":
    main()
