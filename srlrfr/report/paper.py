"""The published LFW table (Lai, He & Lam, ICIP 2019) and the comparison with ours.

Method names are srlrfr.methods'; accuracies are percent.
"""
from __future__ import annotations

import math

import pandas as pd

from ..methods import SRNetId

FNET_PAPER = "sphereface20"
RESOLUTIONS_PAPER = ("7x6", "14x12", "28x24", "112x96")

# LFW accuracy (%), 10-fold mean; keys (fnet, paper row).
PAPER: dict[tuple[str, str], dict[str, float]] = {
    ("sphereface20", "bicubic_authors"): {"7x6": 59.03, "14x12": 82.75, "28x24": 97.60, "112x96": 99.07},
    ("sphereface20", "edsr_lambda0"): {"7x6": 73.42, "14x12": 92.25, "28x24": 98.48},
    ("sphereface20", "edsr_lambda0.5"): {"7x6": 84.03, "14x12": 94.73, "28x24": 98.85},
}

PAPER_ROW_LABELS = {
    "bicubic_authors": "Bicubic (in fact bilinear)",
    "edsr_lambda0": "EDSR, lambda = 0",
    "edsr_lambda0.5": "EDSR, lambda = 0.5",
}

PAPER_NOTE = ("The paper's 'Bicubic' row was produced by bilinear upsampling: the authors' OpenCV "
              "resize call passes the interpolation flag where the output argument goes, so the "
              "default (bilinear) is used. Our 'bilinear_authors' reproduces that row; 'bicubic' "
              "is true bicubic upsampling and is expected to differ from it.")

def degradation_note(model: dict | None) -> str | None:
    """Why there is no cell-by-cell comparison when the probes are not the paper's plain downsamples."""
    if not model or model.get("type") == "resize":
        return None
    params = ", ".join(f"{k} {v}" for k, v in model.items() if k != "type")
    return (f"The probes of this experiment are degraded with '{model['type']}' ({params or 'its defaults'}); "
            "the paper's are plain bicubic downsamples, so its table is not compared cell by cell. "
            "Run with degrade.model: {type: resize} for the reproduction check.")


def paper_row_for(method: str) -> tuple[str | None, str]:
    """(paper row key or None, note) that a pipeline method is compared with."""
    if method == "bilinear_authors":
        return "bicubic_authors", "reproduces the paper's (bilinear) Bicubic row"
    if method == "bicubic":
        return "bicubic_authors", "true bicubic vs the paper's (bilinear) Bicubic row"
    sr = SRNetId.parse(method)
    if sr and sr.srnet == "edsr":
        return SRNetId("edsr", sr.lam).method, "authors' checkpoint" if sr.authors else "trained here"
    return None, ""


def _check_percent(summary_df: pd.DataFrame) -> None:
    missing = [c for c in ("fnet", "method", "resolution", "acc_mean") if c not in summary_df.columns]
    if missing:
        raise ValueError(f"summary table lacks columns {missing}; has {list(summary_df.columns)}")
    acc = summary_df["acc_mean"].dropna()
    if len(acc) and acc.max() <= 1.0:
        raise ValueError("summary acc_mean looks like fractions (all <= 1); expected percent")


def compare_to_paper(summary_df: pd.DataFrame) -> pd.DataFrame:
    """Our accuracy next to the published one for every cell the paper reports.

    Columns: cell, fnet, method, resolution, paper_row, ours, paper, diff
    (ours - paper, percentage points), note.
    """
    _check_percent(summary_df)
    rows = []
    for rec in summary_df.itertuples(index=False):
        key, note = paper_row_for(rec.method)
        published = PAPER.get((rec.fnet, key), {}) if key else {}
        if rec.resolution not in published:
            continue
        paper_acc = published[rec.resolution]
        rows.append({
            "cell": f"{rec.fnet} / {rec.method} / {rec.resolution}",
            "fnet": rec.fnet, "method": rec.method, "resolution": rec.resolution,
            "paper_row": PAPER_ROW_LABELS[key],
            "ours": float(rec.acc_mean), "paper": paper_acc,
            "diff": float(rec.acc_mean) - paper_acc, "note": note,
        })
    columns = ["cell", "fnet", "method", "resolution", "paper_row", "ours", "paper", "diff", "note"]
    out = pd.DataFrame(rows, columns=columns)
    order = [(r["fnet"], r["paper_row"], r["method"], RESOLUTIONS_PAPER.index(r["resolution"])) for r in rows]
    return out.iloc[sorted(range(len(rows)), key=order.__getitem__)].reset_index(drop=True)


def _fmt(value, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:+.2f}" if signed else f"{value:.2f}"
    return str(value).replace("|", "\\|")


def comparison_markdown(df: pd.DataFrame) -> str:
    """Markdown pipe table of ``compare_to_paper`` output, plus the Bicubic note."""
    if df.empty:
        return ("The paper reports SphereFace-20 only; this run's FNet has no published numbers "
                "to compare with.\n\n" + PAPER_NOTE + "\n")
    cols = ["fnet", "method", "resolution", "paper_row", "ours", "paper", "diff", "note"]
    lines = ["| FNet | Method | Resolution | Paper row | Ours (%) | Paper (%) | Diff (pp) | Note |",
             "|---|---|---|---|---:|---:|---:|---|"]
    for rec in df[cols].itertuples(index=False):
        cells = [_fmt(v, signed=(name == "diff")) for name, v in zip(cols, rec)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + PAPER_NOTE + "\n"


def significance_markdown(sig: pd.DataFrame) -> str:
    """Markdown table of srlrfr.metrics.significance rows: which differences the pairs support."""
    if sig.empty:
        return ""
    lines = ["## Paired significance (ours; the paper reports none)", "",
             "Each two methods at each resolution, on the same pairs: accuracy difference (a - b) with a 95% "
             "paired-bootstrap interval, and McNemar's exact p on the per-pair decisions (each pair at its own "
             "fold's threshold). `*`: p < 0.05, no correction for multiple comparisons.", "",
             "| Dataset | FNet | Resolution | a | b | a - b (pp) | 95% CI | only a right | only b right | p |",
             "|---|---|---|---|---|---:|---|---:|---:|---:|"]
    for r in sig.itertuples(index=False):
        star = " *" if r.significant else ""
        lines.append(f"| {r.dataset} | {r.fnet} | {r.resolution} | {r.method_a} | {r.method_b} | "
                     f"{r.diff:+.2f}{star} | [{r.ci_low:+.2f}, {r.ci_high:+.2f}] | {r.a_only} | {r.b_only} | "
                     f"{r.p_mcnemar:.3g} |")
    return "\n".join(lines) + "\n"
