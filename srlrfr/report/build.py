"""The report step: figures, DVC plot data and the HTML page, from saved results only."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..aggregate import FULL, long_table, resolution_order
from ..atomic import write_csv
from ..metrics.verification import load_scores
from .html import write_report
from .paper import compare_to_paper, comparison_markdown
from .plots import plot_accuracy_vs_resolution, plot_face_grid, plot_roc, plot_training_curves


# Columns of the DVC plot data: fixed names, so `dvc plots diff` lines up
# experiments; 'edsr' is the experiment's own SRNet (its lambda is a param).
PLOT_METHODS = ("bicubic", "bilinear_authors", "edsr")


def write_dvc_plot_data(long: pd.DataFrame, logs: dict[str, pd.DataFrame], cfg: dict, plots_dir: Path) -> None:
    """Wide tables that `dvc plots show/diff` draws itself (see dvc.yaml)."""
    from ..config import lambda_tag
    lam = lambda_tag(cfg["lambda"])
    names = {"bicubic": "bicubic", "bilinear_authors": "bilinear_authors", f"edsr_lambda{lam}": "edsr"}
    sub = long[long["method"].isin(names)].assign(method=lambda d: d["method"].map(names))
    wide = sub.pivot_table(index="resolution", columns="method", values="acc_mean").reindex(columns=PLOT_METHODS)
    wide = wide.dropna(subset=["edsr"])  # the low resolutions: SRNets have no full-resolution cell
    wide.insert(0, "height", [int(r.split("x")[0]) for r in wide.index])
    write_csv(plots_dir / "accuracy.csv", wide.sort_values("height").reset_index())
    if lam in logs:
        cols = ["step", "loss_pixel", "loss_identity", "loss_total"]
        write_csv(plots_dir / "losses.csv", logs[lam][cols].fillna(0.0))


def build_report(cfg: dict, *, summary_csv, pairs_csv, scores_files, train_logs, out_dir) -> Path:
    """Everything comes from the given files (.../<method>/<resolution>/scores.csv, with
    examples.npz beside each), so results of other experiments never leak in."""
    out_dir = Path(out_dir)
    runs: dict[str, dict[str, Path]] = {}
    for path in map(Path, scores_files):
        runs.setdefault(path.parent.name, {})[path.parent.parent.name] = path.parent
    pairs = pd.read_csv(pairs_csv)
    figures_dir, plots_dir = out_dir / "figures", out_dir / "plots"
    summary = pd.read_csv(summary_csv)
    resolutions = resolution_order(summary["resolution"])
    low = [r for r in resolutions if not (summary[summary["resolution"] == r]["method"] == FULL).any()]
    figures: dict[str, Path] = {}

    long = long_table(summary)
    figures["LFW accuracy vs probe resolution"] = plot_accuracy_vs_resolution(
        long, figures_dir / "accuracy_vs_resolution.png", paper=True)
    for res in resolutions:
        scores = {}
        for m, run in sorted(runs.get(res, {}).items()):
            table = load_scores(run / "scores.csv", expected_pairs=pairs, pairs_path=pairs_csv)
            scores[m] = table[table["used"]] if "used" in table else table
        figures[f"ROC at {res}"] = plot_roc(scores, figures_dir / f"roc_{res}.png", title=f"LFW ROC, probes at {res}")
    for res in low:
        rows: list[tuple[str, np.ndarray]] = []
        truth = None
        for method, run in sorted(runs.get(res, {}).items()):
            with np.load(run / "examples.npz") as z:
                if not rows:
                    rows.append((f"probe {res}", z["probe"]))
                rows.append((method, z["restored"]))
                truth = z["ground_truth"]
        rows.append(("ground truth", truth))
        figures[f"Restored faces from {res}"] = plot_face_grid(rows, figures_dir / f"faces_{res}.png")

    logs = {}
    for path in train_logs:
        lam = Path(path).parent.name.removeprefix("edsr_lambda")
        logs[lam] = pd.read_csv(path)
    if logs:
        figures["SRNet training losses"] = plot_training_curves(
            {f"lambda={lam}": df for lam, df in logs.items()}, figures_dir / "training_losses.png")
    write_dvc_plot_data(long, logs, cfg, plots_dir)

    table = pd.read_csv(out_dir / "accuracy.csv")
    folds = pd.read_csv(out_dir / "folds.csv").pivot_table(
        index=["fnet", "method", "resolution"], columns="fold", values="accuracy", sort=False).round(2)
    folds.columns = [f"fold {c}" for c in folds.columns]
    tables = {
        "LFW verification accuracy (%)": table,
        "Per-fold accuracy (%)": folds.reset_index(),
        "Comparison with the published table": comparison_markdown(compare_to_paper(long)),
        "All metrics": summary,
    }
    return write_report(out_dir / "report.html", title=f"srlrfr: low-resolution LFW verification ({cfg['fnet']})",
                        tables=tables, figures=figures, params=cfg)
