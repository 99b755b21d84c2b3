"""Rule report: figures, DVC plot data and the self-contained HTML page, from saved results only."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..atomic import atomic_path, write_csv
from ..catalog import load_all
from ..config import srnet_names
from ..damaged import load_npz
from ..methods import FULL, sr_method
from ..metrics.verification import load_scores
from ..paths import relative_params
from ..registry import BASELINES
from ..report.html import write_report
from ..report.paper import PAPER_NOTE, compare_to_paper, degradation_note
from ..report.plots import (
    plot_accuracy_vs_resolution,
    plot_cmc,
    plot_face_grid,
    plot_resolution_matrix,
    plot_roc,
    plot_training_curves,
)
from ..report.steps import read_jobs, step_table
from ..report.tables import exclusion_note, long_table, metric_name, paper_rows, resolution_order

NAME = "report"
HELP = "figures and the self-contained HTML report"
OUTPUTS_TOGETHER = True  # all outputs appear at once, or none (srlrfr.cli)


def plot_methods(cfg: dict) -> list[str]:
    """Columns of the DVC plot data: the baselines, then each SRNet trained here (by SRNet name,
    its lambda being a param), so `dvc plots diff` lines up experiments."""
    load_all()
    return list(BASELINES.keys()) + srnet_names(cfg)


def write_dvc_plot_data(long: pd.DataFrame, logs: dict[str, pd.DataFrame], cfg: dict, plots_dir: Path) -> None:
    """Wide tables that `dvc plots show/diff` draws itself (see dvc.yaml); the loss curves are
    the first SRNet's at this experiment's lambda."""
    names = srnet_names(cfg)
    own = sr_method(names[0], cfg["lambda"])
    columns = plot_methods(cfg)
    metric = long["method"].map(lambda m: metric_name(m, float(cfg["lambda"])))
    sub = long[metric.isin(columns)].assign(method=metric[metric.isin(columns)])
    wide = sub.pivot_table(index="resolution", columns="method", values="acc_mean").reindex(columns=columns)
    wide = wide.dropna(subset=names, how="all")  # the low resolutions: SRNets have no full-resolution cell
    wide.insert(0, "height", [int(r.split("x")[0]) for r in wide.index])
    write_csv(plots_dir / "accuracy.csv", wide.sort_values("height").reset_index())
    if own in logs:
        cols = ["step", "loss_pixel", "loss_identity", "loss_total"]
        write_csv(plots_dir / "losses.csv", logs[own][cols].fillna(0.0))


def _significance(path: Path) -> pd.DataFrame | str:
    if not path.is_file():
        return "results/significance.csv is missing: rerun the aggregate step."
    return pd.read_csv(path).round({"acc_a": 2, "acc_b": 2, "diff": 2, "ci_low": 2, "ci_high": 2})


@dataclass(frozen=True)
class ReportInputs:
    """The saved results a report reads, and nothing else, so results of other experiments never
    leak in: the summary and the pairs table; .../<method>/<resolution>/scores.csv (examples.npz
    beside each); the SRNets' losses.csv; the jobs' benchmark files; the evaluations' metrics.json
    (CMC curves); resolution matrices."""
    summary_csv: str | os.PathLike
    pairs_csv: str | os.PathLike
    scores_files: Sequence[str | os.PathLike]
    train_logs: Sequence[str | os.PathLike] = ()
    benchmarks: Sequence[str | os.PathLike] = ()
    metrics_files: Sequence[str | os.PathLike] = ()
    matrix_files: Sequence[str | os.PathLike] = ()


def report(cfg: dict, inputs: ReportInputs, out_dir) -> Path:
    """steps.csv, the figures, the DVC plot data and report.html in ``out_dir``; the page shows
    ``cfg`` with paths inside the repository relative, so it reads the same in every clone.

    The figure and plot folders are written whole (atomically), so a killed run
    never leaves a partial set of figures for DVC to hash."""
    out_dir = Path(out_dir)
    jobs = read_jobs(list(inputs.benchmarks))
    steps = step_table(jobs)
    write_csv(out_dir / "steps.csv", steps)
    with atomic_path(out_dir / "figures", is_dir=True) as figures_dir, \
            atomic_path(out_dir / "plots", is_dir=True) as plots_dir:
        figures, long, every_set = _verification_figures(inputs, figures_dir)
        extra_tables = _protocol_figures(figures, figures_dir, inputs.metrics_files, inputs.matrix_files)
        logs = {Path(path).parent.name: pd.read_csv(path) for path in inputs.train_logs}  # .../<method>/losses.csv
        if logs:
            figures["SRNet training losses"] = plot_training_curves(logs, figures_dir / "training_losses.png")
        write_dvc_plot_data(long, logs, cfg, plots_dir)
        tables = _tables(cfg, out_dir, long, every_set, extra_tables, jobs, steps)
        return write_report(out_dir / "report.html",
                            title=f"srlrfr: low-resolution LFW verification ({cfg['fnet']})",
                            tables=tables, figures=figures, params=relative_params(cfg))  # the same page in every clone


def _verification_figures(inputs: ReportInputs, figures_dir: Path) -> tuple[dict[str, Path], pd.DataFrame,
                                                                                 pd.DataFrame]:
    """LFW's accuracy against resolution, ROC curves and restored faces per resolution; with the
    long table of LFW rows and the summary of every dataset."""
    runs: dict[str, dict[str, Path]] = {}
    for path in map(Path, inputs.scores_files):
        runs.setdefault(path.parent.name, {})[path.parent.parent.name] = path.parent
    pairs = pd.read_csv(inputs.pairs_csv)
    every_set = pd.read_csv(inputs.summary_csv)
    summary = paper_rows(every_set)  # figures are LFW's; other datasets' rows are in the tables
    resolutions = resolution_order(summary["resolution"])
    low = [r for r in resolutions if not (summary[summary["resolution"] == r]["method"] == FULL).any()]
    figures: dict[str, Path] = {}
    long = long_table(summary)
    figures["LFW accuracy vs probe resolution"] = plot_accuracy_vs_resolution(
        long, figures_dir / "accuracy_vs_resolution.png", paper=True)
    for res in resolutions:
        scores = {}
        for m, run in sorted(runs.get(res, {}).items()):
            table = load_scores(run / "scores.csv", expected_pairs=pairs, pairs_path=inputs.pairs_csv)
            scores[m] = table[table["used"]] if "used" in table else table
        figures[f"ROC at {res}"] = plot_roc(scores, figures_dir / f"roc_{res}.png", title=f"LFW ROC, probes at {res}")
    for res in low:
        figures[f"Restored faces from {res}"] = _face_grid(res, runs.get(res, {}), figures_dir)
    return figures, long, every_set


def _face_grid(res: str, runs: dict[str, Path], figures_dir: Path) -> Path:
    """The probes at ``res``, each method's restorations and the ground truth."""
    rows: list[tuple[str, np.ndarray]] = []
    truth = None
    for method, run in sorted(runs.items()):
        z = load_npz(run / "examples.npz", ("probe", "restored", "ground_truth"))
        if not rows:
            rows.append((f"probe {res}", z["probe"]))
        rows.append((method, z["restored"]))
        truth = z["ground_truth"]
    rows.append(("ground truth", truth))
    return plot_face_grid(rows, figures_dir / f"faces_{res}.png")


def _tables(cfg: dict, out_dir: Path, long: pd.DataFrame, every_set: pd.DataFrame, extra_tables: dict,
            jobs: pd.DataFrame, steps: pd.DataFrame) -> dict:
    table = pd.read_csv(out_dir / "accuracy.csv")
    folds = pd.read_csv(out_dir / "folds.csv")
    keys = [c for c in ("dataset", "fnet", "method", "resolution") if c in folds]
    folds = folds.pivot_table(index=keys, columns="fold", values="accuracy", sort=False).round(2)
    folds.columns = [f"fold {c}" for c in folds.columns]
    return {
        "Verification accuracy (%), per dataset": table,
        "Per-fold accuracy (%)": folds.reset_index(),
        "Comparison with the published table": degradation_note(cfg["degrade"]["model"]) or _comparison(long),
        "The paper's Bicubic row": PAPER_NOTE,
        "Paired significance (a - b, percentage points; 95% bootstrap CI; McNemar's exact p)":
            _significance(out_dir / "significance.csv"),
        **extra_tables,
        "Excluded pairs": exclusion_note(every_set),
        "All metrics": every_set,
        "Time per step": _steps_note(steps),
        "Time and memory per step": steps,
        "Time and memory per job": jobs.sort_values("seconds", ascending=False, kind="stable"),
    }


def _protocol_figures(figures: dict, figures_dir: Path, metrics_files, matrix_files) -> dict:
    """CMC curves (from the evaluations' metrics.json) and resolution-matrix heat maps, when evaluated."""
    curves: dict[str, dict[str, list[float]]] = {}
    n_gallery = 0
    for path in metrics_files:
        m = json.loads(Path(path).read_text())
        if "identification" in m:
            curves.setdefault(m["resolution"], {})[m["method"]] = m["identification"]["cmc"]
            n_gallery = m["identification"]["n_gallery"]
    if curves:
        figures["Identification: CMC curves"] = plot_cmc(curves, figures_dir / "cmc.png", n_gallery)
    tables = {}
    for path in matrix_files:
        table = pd.read_csv(path)
        method = table["method"].iloc[0]
        figures[f"Resolution matrix, {method}"] = plot_resolution_matrix(table, figures_dir / f"matrix_{method}.png")
        tables[f"Resolution matrix, {method}: accuracy (%), rows the first image's resolution"] = table.pivot_table(
            index="gallery", columns="probe", values="acc_mean", sort=False).round(2).reset_index()
    return tables


def _steps_note(steps: pd.DataFrame) -> str:
    if steps.empty:
        return "No benchmark files were given, so no step times are shown."
    return (f"{int(steps['jobs'].sum())} jobs took {steps['seconds'].sum():.1f} s of wall time in all "
            f"(summed over jobs: parallel jobs overlap) and {steps['cpu_seconds'].sum():.1f} s of CPU time; "
            f"the slowest step was {steps['step'].iloc[0]} ({steps['share_pct'].iloc[0]:.1f}%). "
            "From the rules' benchmark files (logs/benchmarks/); peak memory is the largest resident set "
            "Snakemake sampled, in MB. The report's own job is not included.")


def _comparison(long: pd.DataFrame) -> pd.DataFrame | str:
    table = compare_to_paper(long)
    if table.empty:
        return "The paper reports SphereFace-20 only; this run's FNet has no published numbers to compare with."
    return table.drop(columns=["cell"]).rename(columns={"ours": "ours (%)", "paper": "paper (%)", "diff": "diff (pp)"})


def add_arguments(p) -> None:
    p.add_argument("--summary", required=True)
    p.add_argument("--pairs", required=True, help="the pairs table every scores file must match")
    p.add_argument("--scores", nargs="+", required=True, help="<method>/<resolution>/scores.csv files")
    p.add_argument("--metrics", nargs="*", default=[], help="the evaluations' metrics.json (CMC curves)")
    p.add_argument("--matrix", nargs="*", default=[], help="resolution matrices (matrix rule)")
    p.add_argument("--train-logs", nargs="*", default=[])
    p.add_argument("--benchmarks", nargs="*", default=[], help="the jobs' Snakemake benchmark files")
    p.add_argument("--out-dir", required=True)


def main(args, cfg) -> None:
    inputs = ReportInputs(summary_csv=args.summary, pairs_csv=args.pairs, scores_files=args.scores,
                          train_logs=args.train_logs, benchmarks=args.benchmarks, metrics_files=args.metrics,
                          matrix_files=args.matrix)
    # the params as written, not this clone's resolved paths (srlrfr.cli): report.html the same in any clone
    report(cfg, inputs, args.out_dir)
