"""Report figures (matplotlib Agg, PNG, dpi 100, sizes fixed by the inputs' shape).

Sizes in pixels: accuracy vs resolution max(900, 450 * n_fnets) x 500 (one
panel per FNet); ROC 600x500; training curves 1500x450; face grid
(160 + 120 K) x (rows * round(120 H / W)), K faces per row, HxW the largest face.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from srlrfr.atomic import atomic_path  # noqa: E402
from srlrfr.metrics.verification import roc_curve  # noqa: E402
from srlrfr.report.paper import PAPER, PAPER_ROW_LABELS, paper_row_for  # noqa: E402

DPI = 100
LOSS_COLUMNS = ("step", "loss_pixel", "loss_identity", "loss_total")


def _save(fig, out_png: str | os.PathLike) -> Path:
    out_png = Path(out_png)
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)  # no bbox 'tight': keeps the pixel size fixed
    finally:
        plt.close(fig)
    return out_png


def _resolution_area(res: str) -> int:
    try:
        h, w = (int(v) for v in str(res).lower().split("x"))
    except ValueError:
        raise ValueError(f"resolution {res!r} is not of the form 'HxW'") from None
    return h * w


def plot_accuracy_vs_resolution(summary_df: pd.DataFrame, out_png, paper: bool = True) -> Path:
    """Accuracy (%) vs probe resolution, one line per method (error bars: fold std).

    Published points (``paper=True``) are hollow markers on dashed lines in the
    colour of the first matching method.
    """
    needed = {"fnet", "method", "resolution", "acc_mean", "acc_std"}
    if not needed <= set(summary_df.columns):
        raise ValueError(f"summary table lacks {sorted(needed - set(summary_df.columns))}")
    df = summary_df.dropna(subset=["acc_mean"])
    if len(df) and df["acc_mean"].max() <= 1.0:
        raise ValueError("acc_mean looks like fractions (all <= 1); expected percent")
    fnets = sorted(df["fnet"].unique()) or ["(none)"]
    fig, axes = plt.subplots(1, len(fnets), figsize=(max(9.0, 4.5 * len(fnets)), 5.0),
                             dpi=DPI, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, fnet in zip(axes[0], fnets):
        sub = df[df["fnet"] == fnet]
        resolutions = sorted(sub["resolution"].unique(), key=_resolution_area)
        xpos = {r: i for i, r in enumerate(resolutions)}
        methods = sorted(sub["method"].unique())
        colour_of = {m: colours[j % len(colours)] for j, m in enumerate(methods)}
        for method in methods:
            m = sub[sub["method"] == method]
            m = m.iloc[np.argsort([_resolution_area(r) for r in m["resolution"]])]
            ax.errorbar([xpos[r] for r in m["resolution"]], m["acc_mean"], yerr=m["acc_std"].fillna(0),
                        marker="o", color=colour_of[method], capsize=3, label=method)
        # each published row once, in the colour of the method that reproduces it most directly
        drawn_rows: set[str] = set()
        for method in sorted(methods, key=lambda m: (m != "bilinear_authors", not m.startswith("authors_"), m)):
            key, _ = paper_row_for(method)
            published = PAPER.get((fnet, key)) if key else None
            pts = [(xpos[r], v) for r, v in (published or {}).items() if r in xpos]
            if paper and pts and key not in drawn_rows:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, linestyle="--", marker="s", markerfacecolor="none",
                        color=colour_of[method], label=f"paper: {PAPER_ROW_LABELS[key]}")
                drawn_rows.add(key)
        ax.set_xticks(range(len(resolutions)), resolutions)
        ax.set_xlabel("probe resolution (H x W)")
        ax.set_ylabel("LFW accuracy (%)")
        ax.set_title(fnet)
        ax.grid(alpha=0.3)
        if len(sub):
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, out_png)


def plot_roc(scores_by_method: dict[str, pd.DataFrame], out_png, title: str) -> Path:
    """ROC curves (TAR vs FAR, log FAR axis) from per-method score tables (label, score)."""
    fig, ax = plt.subplots(figsize=(6.0, 5.0), dpi=DPI)
    min_far = 1.0
    for method, frame in scores_by_method.items():
        if not {"label", "score"} <= set(frame.columns):
            raise ValueError(f"scores for {method!r} lack columns label/score; has {list(frame.columns)}")
        far, tar, _ = roc_curve(frame["score"].to_numpy(), frame["label"].to_numpy())
        keep = far > 0  # FAR 0 has no place on a log axis
        ax.step(far[keep], tar[keep], where="post", label=method)
        min_far = min(min_far, 1.0 / int((frame["label"] == 0).sum()))
    ax.set_xscale("log")
    ax.set_xlim(min_far, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    if scores_by_method:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, out_png)


def plot_face_grid(rows: list[tuple[str, np.ndarray]], out_png) -> Path:
    """Rows of faces, each row labelled; faces are enlarged (nearest) to the largest size.

    ``rows``: (label, K uint8 RGB images as (K,H,W,3) array or list of (H,W,3)).
    """
    if not rows:
        raise ValueError("plot_face_grid got no rows")
    k = {len(imgs) for _, imgs in rows}
    if len(k) != 1 or 0 in k:
        raise ValueError(f"every row needs the same non-zero number of faces, got {sorted(k)}")
    k = k.pop()
    for label, imgs in rows:
        for img in imgs:
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"row {label!r}: faces must be uint8 (H,W,3), got {img.dtype} {img.shape}")
    h = max(img.shape[0] for _, imgs in rows for img in imgs)
    w = max(img.shape[1] for _, imgs in rows for img in imgs)
    cell_w, label_w = 1.2, 1.6  # inches
    cell_h = round(100 * cell_w * h / w) / 100
    fig = plt.figure(figsize=(label_w + cell_w * k, cell_h * len(rows)), dpi=DPI)
    fig_w, fig_h = label_w + cell_w * k, cell_h * len(rows)
    pad = 0.04  # fraction of a cell left blank around each face
    for r, (label, imgs) in enumerate(rows):
        bottom = (len(rows) - 1 - r) * cell_h / fig_h
        fig.text(0.5 * label_w / fig_w, bottom + 0.5 * cell_h / fig_h, label,
                 ha="center", va="center", fontsize=9, wrap=True)
        for c, img in enumerate(imgs):
            big = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
            ax = fig.add_axes([(label_w + c * cell_w) / fig_w + pad * cell_w / fig_w,
                               bottom + pad * cell_h / fig_h,
                               (1 - 2 * pad) * cell_w / fig_w, (1 - 2 * pad) * cell_h / fig_h])
            ax.imshow(big, interpolation="nearest")
            ax.set_axis_off()
    return _save(fig, out_png)


def plot_training_curves(logs: dict[str, pd.DataFrame], out_png) -> Path:
    """Pixel, identity and total loss vs step, one line per run (e.g. per lambda)."""
    fig, axes = plt.subplots(1, 3, figsize=(15.0, 4.5), dpi=DPI)
    for name, frame in logs.items():
        missing = [c for c in LOSS_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"training log {name!r} lacks columns {missing}; has {list(frame.columns)}")
        for ax, col in zip(axes, LOSS_COLUMNS[1:]):
            ax.plot(frame["step"], frame[col], label=str(name), linewidth=1)
    for ax, col in zip(axes, LOSS_COLUMNS[1:]):
        ax.set_title(col.replace("_", " "))
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if logs:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out_png)


def plot_cmc(curves: dict[str, dict[str, list[float]]], out_png, n_gallery: int) -> Path:
    """CMC curves (identification rate % vs rank), one panel per probe resolution, one line per method.

    ``curves``: resolution -> method -> rate at ranks 1..K. Size (1 + 4 * n_panels, 4.5) inches at DPI.
    """
    res = sorted(curves, key=_resolution_area)
    fig, axes = plt.subplots(1, max(1, len(res)), figsize=(1.0 + 4.0 * max(1, len(res)), 4.5), dpi=DPI,
                             squeeze=False, sharey=True)
    for ax, r in zip(axes[0], res):
        for method, curve in sorted(curves[r].items()):
            ax.plot(np.arange(1, len(curve) + 1), curve, marker=".", label=method)
        ax.set_title(f"probes at {r}")
        ax.set_xlabel("rank")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel(f"identification rate (%), gallery of {n_gallery}")
    fig.tight_layout()
    return _save(fig, out_png)


def plot_resolution_matrix(table: pd.DataFrame, out_png) -> Path:
    """Heat map of accuracy (%): rows the first image's (gallery) resolution, columns the probe's. 600x500."""
    order = sorted(set(table["gallery"]) | set(table["probe"]), key=_resolution_area)
    grid = table.pivot_table(index="gallery", columns="probe", values="acc_mean").reindex(index=order, columns=order)
    fig, ax = plt.subplots(figsize=(6.0, 5.0), dpi=DPI)
    image = ax.imshow(grid.to_numpy(), cmap="viridis", vmin=50.0, vmax=100.0)
    ax.set_xticks(range(len(order)), order)
    ax.set_yticks(range(len(order)), order)
    for (i, j), v in np.ndenumerate(grid.to_numpy()):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="w" if v < 80 else "k", fontsize=9)
    ax.set_xlabel("second image (probe) resolution")
    ax.set_ylabel("first image (gallery) resolution")
    ax.set_title(f"LFW accuracy (%), {table['method'].iloc[0]}")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return _save(fig, out_png)
