"""Rule aggregate: every configuration's metrics -> the paper's table, per-fold table, DVC metrics,
paired significance of every two methods at each resolution (srlrfr.metrics.significance)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import write_csv, write_json, write_text
from ..metrics.significance import significance_table

NAME = "aggregate"
HELP = "the accuracy table, paper comparison and DVC metrics"
OUTPUTS_TOGETHER = True  # all outputs appear at once, or none (srlrfr.cli)


def aggregate(metric_files, out_dir, *, lam: float, degradation: dict | None = None) -> pd.DataFrame:
    """``degradation``: degrade.model; the paper is compared with only for its plain probes."""
    # deferred: loads cv2
    from ..report.paper import compare_to_paper, comparison_markdown, degradation_note, significance_markdown
    from ..report.tables import (
        accuracy_table,
        collect,
        dvc_metrics,
        exclusion_note,
        fold_table,
        long_table,
        paper_rows,
        significance_metrics,
    )
    out_dir = Path(out_dir)
    summary = collect(metric_files)
    table = accuracy_table(summary)
    write_csv(out_dir / "summary.csv", summary)
    write_csv(out_dir / "folds.csv", fold_table(metric_files))
    write_csv(out_dir / "accuracy.csv", table)
    significance = significance_table(metric_files)
    p_vs_bicubic = significance_metrics(significance, lam)
    write_json(out_dir / "metrics.json", dvc_metrics(summary, lam) | ({"p_vs_bicubic": p_vs_bicubic}
                                                                      if p_vs_bicubic else {}))
    write_csv(out_dir / "significance.csv", significance)
    note = degradation_note(degradation)
    paper = note + "\n" if note else comparison_markdown(compare_to_paper(long_table(paper_rows(summary))))
    write_text(out_dir / "paper_comparison.md", paper + "\n" + significance_markdown(significance))
    print(f"aggregate: {len(summary)} configurations. {exclusion_note(summary)}")
    return table


def add_arguments(p) -> None:
    p.add_argument("--metrics", nargs="+", required=True, help="every configuration's metrics.json")
    p.add_argument("--out-dir", required=True)


def main(args, cfg) -> None:
    aggregate(args.metrics, args.out_dir, lam=float(cfg["lambda"]), degradation=cfg["degrade"]["model"])
