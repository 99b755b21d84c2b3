"""The report step: figures, DVC plot data and the HTML page, from saved results only."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..aggregate import FULL, long_table, resolution_order
from ..atomic import write_csv
from ..metrics.verification import load_scores
from .html import write_report
from .paper import PAPER_NOTE, compare_to_paper, comparison_markdown
from .plots import plot_accuracy_vs_resolution, plot_face_grid, plot_roc, plot_training_curves


def _methods_at(eval_root: Path, res: str) -> list[str]:
    return sorted(p.parent.parent.name for p in eval_root.glob(f"*/{res}/scores.csv"))


def build_report(cfg: dict, *, summary_csv, pairs_csv, eval_root, train_logs, out_dir) -> Path:
    out_dir, eval_root = Path(out_dir), Path(eval_root)
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
        for m in _methods_at(eval_root, res):
            table = load_scores(eval_root / m / res / "scores.csv", expected_pairs=pairs, pairs_path=pairs_csv)
            scores[m] = table[table["used"]] if "used" in table else table
        figures[f"ROC at {res}"] = plot_roc(scores, figures_dir / f"roc_{res}.png", title=f"LFW ROC, probes at {res}")
    for res in low:
        rows: list[tuple[str, np.ndarray]] = []
        truth = None
        for method in _methods_at(eval_root, res):
            with np.load(eval_root / method / res / "examples.npz") as z:
                if not rows:
                    rows.append((f"probe {res}", z["probe"]))
                rows.append((method, z["restored"]))
                truth = z["ground_truth"]
        rows.append(("ground truth", truth))
        figures[f"Restored faces from {res}"] = plot_face_grid(rows, figures_dir / f"faces_{res}.png")

    logs = {}
    for path in train_logs:
        lam = Path(path).parent.name.removeprefix("edsr_lambda")
        logs[f"lambda={lam}"] = pd.read_csv(path)
    if logs:
        figures["SRNet training losses"] = plot_training_curves(logs, figures_dir / "training_losses.png")
        write_csv(plots_dir / "losses.csv",
                  pd.concat([df.assign(run=name) for name, df in logs.items()], ignore_index=True))

    # Long-form data that `dvc plots show/diff` draws itself.
    acc = long[["fnet", "method", "resolution", "acc_mean"]].rename(columns={"acc_mean": "accuracy"})
    write_csv(plots_dir / "accuracy.csv", acc)

    table = pd.read_csv(out_dir / "accuracy.csv")
    folds = pd.read_csv(out_dir / "folds.csv").pivot_table(
        index=["fnet", "method", "resolution"], columns="fold", values="accuracy", sort=False).round(2)
    folds.columns = [f"fold {c}" for c in folds.columns]
    tables = {
        "LFW verification accuracy (%)": table,
        "Per-fold accuracy (%)": folds.reset_index(),
        "Comparison with the published table": comparison_markdown(compare_to_paper(long)) + "\n\n" + PAPER_NOTE,
        "All metrics": summary,
    }
    return write_report(out_dir / "report.html", title=f"srlrfr: low-resolution LFW verification ({cfg['fnet']})",
                        tables=tables, figures=figures, params=cfg)
