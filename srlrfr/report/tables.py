"""Tables from per-configuration metrics: the summary, the paper's table, per-fold rows, DVC metrics.

Used by the aggregate and report steps (srlrfr.steps), never the other way round.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..methods import BASELINES, FULL, SRNetId

# summary table: one row per (dataset, fnet, method, resolution); NaN where not applicable
# (plus tar_far_<tag> and n_negative_far_<tag> per FAR target)
PAPER_SET = "lfw"  # the paper's dataset; metrics.json written before datasets existed are LFW's
SUMMARY_COLUMNS = ("dataset", "fnet", "method", "resolution", "acc_mean", "acc_std", "auc", "eer",
                   "n_pairs", "n_excluded", "psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")


def summary_row(fnet: str, method: str, resolution: str, verification: dict | None = None,
                restoration: dict | None = None, dataset: str = PAPER_SET) -> dict:
    """One summary-table row from ``verification_report`` / ``restoration_report`` dicts."""
    row = {c: math.nan for c in SUMMARY_COLUMNS}
    row.update(dataset=dataset, fnet=fnet, method=method, resolution=resolution)
    if verification:
        row.update({k: verification[k] for k in ("acc_mean", "acc_std", "auc", "eer", "n_pairs")})
        row["n_excluded"] = verification.get("n_excluded", 0)
        for cause, n in verification.get("excluded", {}).items():  # why pairs were left out
            row[f"excluded_{cause}"] = n
        for tag, entry in verification.get("tar_at_far", {}).items():
            row[f"tar_far_{tag}"] = entry["tar"]
            row[f"n_negative_far_{tag}"] = entry["n_negative"]
    if verification and "lr_vs_lr" in verification:  # protocols beyond the paper (srlrfr.metrics.protocols)
        row.update({f"lr_vs_lr_{k}": verification["lr_vs_lr"][k] for k in ("acc_mean", "acc_std", "auc", "eer")})
    if verification and "identification" in verification:
        ident = verification["identification"]
        row.update(rank1=ident["rank1"], rank5=ident["rank5"], id_probes=ident["n_probes"],
                   id_gallery=ident["n_gallery"])
    if restoration:
        for k in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"):
            value = restoration.get(k)
            row[k] = math.nan if value is None else value
    return row


def collect(metric_files: list[str | Path]) -> pd.DataFrame:
    """Long-form summary, one row per (fnet, method, resolution)."""
    rows = []
    for path in metric_files:
        m = json.loads(Path(path).read_text())
        rows.append(summary_row(m["fnet"], m["method"], m["resolution"], m, m.get("restoration"),
                                dataset=m.get("dataset", PAPER_SET)))
    if not rows:
        raise ValueError("no evaluation metrics to aggregate")
    return pd.DataFrame(rows)


def fold_table(metric_files: list[str | Path]) -> pd.DataFrame:
    """Per-fold accuracy (%) and the threshold chosen on the other folds, per configuration."""
    rows = []
    for path in metric_files:
        m = json.loads(Path(path).read_text())
        for fold, acc, thd in zip(m["folds"], m["fold_acc"], m["fold_thresholds"]):
            rows.append({"dataset": m.get("dataset", PAPER_SET), "fnet": m["fnet"], "method": m["method"],
                         "resolution": m["resolution"],
                         "fold": fold, "accuracy": acc, "threshold": thd})
    return pd.DataFrame(rows)


def exclusion_note(summary: pd.DataFrame) -> str:
    """One sentence on the pairs left out of scoring, by cause (the most in any configuration)."""
    causes = [c for c in summary.columns if c.startswith("excluded_")]
    if "n_excluded" not in summary or not summary["n_excluded"].fillna(0).any():
        return "No pair was excluded: every image of every pair was read and scored."
    parts = [f"{int(summary[c].fillna(0).max())} {c.removeprefix('excluded_').replace('_', ' ')}" for c in causes]
    return (f"Up to {int(summary['n_excluded'].max())} pairs per configuration were excluded from scoring "
            f"({', '.join(parts)}): see n_excluded in the metrics below and the landmarks' no-face report. "
            f"Corrupt or unreadable images are always excluded (align.corrupt); images without a face only "
            f"under align.no_face: exclude.")


def with_dataset(summary: pd.DataFrame) -> pd.DataFrame:
    """A summary with its dataset column (a summary.csv from before it existed is LFW's)."""
    return summary if "dataset" in summary else summary.assign(dataset=PAPER_SET)


def paper_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of the paper's dataset (LFW): the figures and the paper comparison use these."""
    summary = with_dataset(summary)
    return summary[summary["dataset"] == PAPER_SET].reset_index(drop=True)


def resolution_order(names) -> list[str]:
    """Small to large: '7x6' < '14x12' < '28x24' < '112x96'."""
    return sorted(set(names), key=lambda r: int(r.split("x")[0]))


def long_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per-method rows, with the undegraded evaluation as every baseline's full-resolution cell.

    At full resolution no resampling happens, so one evaluation serves all
    interpolation baselines; SRNets have no full-resolution cell, as in the paper.
    """
    summary = with_dataset(summary)
    parts = [summary[summary["method"] != FULL]]
    full = summary[summary["method"] == FULL]
    for (dataset, fnet, method) in summary[["dataset", "fnet", "method"]].drop_duplicates().itertuples(index=False):
        if method in BASELINES:
            parts.append(full[(full["fnet"] == fnet) & (full["dataset"] == dataset)].assign(method=method))
    return pd.concat(parts, ignore_index=True)


# protocol -> the summary columns of its mean (%) and fold std; hr_vs_lr is the paper's table
PROTOCOL_COLUMNS = {"hr_vs_lr": ("acc_mean", "acc_std"), "lr_vs_lr": ("lr_vs_lr_acc_mean", "lr_vs_lr_acc_std"),
                    "identification_rank1": ("rank1", None), "identification_rank5": ("rank5", None)}


def accuracy_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows dataset x FNet x method, columns the resolutions (mean %), then their fold std.

    With protocols beyond the paper's, their rows follow the paper's table and
    a last column ``protocol`` names each row's (hr_vs_lr, lr_vs_lr,
    identification_rank1/_rank5); without, the table is the paper's alone.
    """
    long = long_table(summary)
    res = resolution_order(long["resolution"])
    keys = ["dataset", "fnet", "method"]
    order = long[keys].drop_duplicates()
    parts = []
    for protocol, (mean_col, std_col) in PROTOCOL_COLUMNS.items():
        if mean_col not in long or not long[mean_col].notna().any():
            continue
        mean = long.pivot_table(index=keys, columns="resolution", values=mean_col, aggfunc="first")
        mean = mean.reindex(columns=res).round(2)
        if std_col is None:
            std = pd.DataFrame(float("nan"), index=mean.index, columns=res)
        else:
            std = long.pivot_table(index=keys, columns="resolution", values=std_col, aggfunc="first")
        std = std.reindex(columns=res).round(2).add_suffix("_std")
        table = order.merge(mean.join(std).reset_index(), on=keys, how="left").reset_index(drop=True)
        parts.append(table.assign(protocol=protocol))
    table = pd.concat(parts, ignore_index=True)
    return table.drop(columns="protocol") if len(parts) == 1 else table


def metric_name(method: str, lam: float) -> str | None:
    """The stable DVC metric name of a method in an experiment with lambda ``lam``.

    Baselines and ``hr`` keep their names; an SRNet trained here with this
    experiment's lambda is named by its SRNet alone (``edsr``: its lambda is a
    param), so keys compare cell by cell across experiments. Other rows
    (other lambdas of the grid, the authors' checkpoints) are not DVC metrics.
    """
    if method == FULL or method in BASELINES:
        return method
    sr = SRNetId.parse(method)
    if sr and not sr.authors and sr.lam == float(lam):
        return sr.srnet
    return None


def dvc_metrics(summary: pd.DataFrame, lam: float) -> dict:
    """``{"lambda": lam, "acc": {res: {name: value}}, "std": ..., "auc": ..., "eer": ...}`` for LFW, plus
    ``lr_vs_lr`` (the same four) and ``identification`` (rank1, rank5) when evaluated; every other
    dataset's cells under its name: ``{"xqlfw": {"acc": {res: {name: value}}, ...}}``."""
    out: dict = {"lambda": lam}
    for _, r in with_dataset(summary).iterrows():
        name = metric_name(r["method"], lam)
        if name is None:
            continue
        root = out if r["dataset"] == PAPER_SET else out.setdefault(r["dataset"], {})
        for group, prefix, keys in _METRIC_GROUPS:
            node = root.setdefault(group, {}) if group else root
            for key, column in keys:
                value = r.get(prefix + column, math.nan)
                if not (isinstance(value, float) and math.isnan(value)):
                    node.setdefault(key, {}).setdefault(r["resolution"], {})[name] = round(float(value), 4)
    return _pruned(out)


def significance_metrics(sig: pd.DataFrame, lam: float, baseline: str = "bicubic") -> dict:
    """``{res: {name: p}}``: McNemar's p of each LFW method (by metric name) against ``baseline``,
    from srlrfr.metrics.significance rows, so `dvc exp show` and `srlrfr exps` can mark a difference."""
    out: dict = {}
    rows = sig[(sig["dataset"] == PAPER_SET) & ((sig["method_a"] == baseline) | (sig["method_b"] == baseline))]
    for r in rows.itertuples(index=False):
        other = r.method_b if r.method_a == baseline else r.method_a
        name = metric_name(other, lam)
        if name is not None:
            out.setdefault(r.resolution, {})[name] = round(float(r.p_mcnemar), 6)
    return out


def _pruned(node: dict) -> dict:
    """``node`` without the groups no row filled (protocols not evaluated), at any depth."""
    out = {}
    for k, v in node.items():
        if isinstance(v, dict):
            v = _pruned(v)
            if v == {}:
                continue
        out[k] = v
    return out


# (top-level group or '' for the paper's, summary column prefix, (metric key, summary column)):
# keys `acc.<res>.<name>`, `lr_vs_lr.acc.<res>.<name>`, `identification.rank1.<res>.<name>`
_PAIR_KEYS = (("acc", "acc_mean"), ("std", "acc_std"), ("auc", "auc"), ("eer", "eer"))
_METRIC_GROUPS = (("", "", _PAIR_KEYS), ("lr_vs_lr", "lr_vs_lr_", _PAIR_KEYS),
                  ("identification", "", (("rank1", "rank1"), ("rank5", "rank5"))))
