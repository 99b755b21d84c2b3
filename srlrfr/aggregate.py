"""Collect per-configuration metrics into the paper's table and DVC metrics."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .atomic import write_csv, write_json, write_text

FULL = "hr"  # method name of the undegraded configuration


def collect(metric_files: list[str | Path]) -> pd.DataFrame:
    """Long-form summary, one row per (fnet, method, resolution)."""
    from .report.paper import summary_row
    rows = []
    for path in metric_files:
        m = json.loads(Path(path).read_text())
        rows.append(summary_row(m["fnet"], m["method"], m["resolution"], m, m.get("restoration")))
    if not rows:
        raise ValueError("no evaluation metrics to aggregate")
    return pd.DataFrame(rows)


def fold_table(metric_files: list[str | Path]) -> pd.DataFrame:
    """Per-fold accuracy (%) and the threshold chosen on the other folds, per configuration."""
    rows = []
    for path in metric_files:
        m = json.loads(Path(path).read_text())
        for fold, acc, thd in zip(m["folds"], m["fold_acc"], m["fold_thresholds"]):
            rows.append({"fnet": m["fnet"], "method": m["method"], "resolution": m["resolution"],
                         "fold": fold, "accuracy": acc, "threshold": thd})
    return pd.DataFrame(rows)


def resolution_order(names) -> list[str]:
    """Small to large: '7x6' < '14x12' < '28x24' < '112x96'."""
    return sorted(set(names), key=lambda r: int(r.split("x")[0]))


def is_sr(method: str) -> bool:
    return "edsr" in method


def long_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per-method rows, with the undegraded evaluation as every baseline's full-resolution cell.

    At full resolution no resampling happens, so one evaluation serves all
    interpolation baselines; SRNets have no full-resolution cell, as in the paper.
    """
    parts = [summary[summary["method"] != FULL]]
    full = summary[summary["method"] == FULL]
    for (fnet, method) in summary[["fnet", "method"]].drop_duplicates().itertuples(index=False):
        if method != FULL and not is_sr(method):
            parts.append(full[full["fnet"] == fnet].assign(method=method))
    return pd.concat(parts, ignore_index=True)


def accuracy_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows FNet x method, columns the resolutions (mean %), then their fold std."""
    long = long_table(summary)
    res = resolution_order(long["resolution"])
    keys = ["fnet", "method"]
    order = long[keys].drop_duplicates()
    mean = long.pivot_table(index=keys, columns="resolution", values="acc_mean", aggfunc="first")
    std = long.pivot_table(index=keys, columns="resolution", values="acc_std", aggfunc="first")
    mean = mean.reindex(columns=res).round(2)
    std = std.reindex(columns=res).round(2).add_suffix("_std")
    table = mean.join(std).reset_index()
    return order.merge(table, on=keys, how="left").reset_index(drop=True)


def dvc_metrics(summary: pd.DataFrame, experiment_method: str, lam: float) -> dict:
    """Stable metric names for `dvc exp show` / `dvc metrics diff`.

    The experiment's own SRNet is reported as 'edsr' (its lambda is a param),
    so keys stay the same across experiments and compare cell by cell.
    """
    out: dict = {"lambda": lam}
    keep = summary[summary["method"].isin(["bicubic", "bilinear_authors", experiment_method, FULL])]
    for _, r in keep.iterrows():
        name = "edsr" if r["method"] == experiment_method else r["method"]
        for key, value in (("acc", r["acc_mean"]), ("std", r["acc_std"]), ("auc", r["auc"]), ("eer", r["eer"])):
            if not (isinstance(value, float) and math.isnan(value)):
                out.setdefault(key, {}).setdefault(r["resolution"], {})[name] = round(float(value), 4)
    return out


def aggregate(metric_files, out_dir, *, experiment_method: str, lam: float) -> pd.DataFrame:
    from .report.paper import compare_to_paper, comparison_markdown
    out_dir = Path(out_dir)
    summary = collect(metric_files)
    table = accuracy_table(summary)
    write_csv(out_dir / "summary.csv", summary)
    write_csv(out_dir / "folds.csv", fold_table(metric_files))
    write_csv(out_dir / "accuracy.csv", table)
    write_json(out_dir / "metrics.json", dvc_metrics(summary, experiment_method, lam))
    write_text(out_dir / "paper_comparison.md", comparison_markdown(compare_to_paper(long_table(summary))))
    return table
