"""`srlrfr exps`: DVC experiments one row each, in 100 columns.

`dvc exp show` lists every param and metric (138 columns here). This view reads
its JSON and keeps what one compares across experiments: lambda, SRNet, FNet,
state, and the experiment's SRNet accuracy at each LFW resolution with its
difference to the baseline row (the workspace's commit). A `*` marks a cell whose
SRNet differs from bicubic on the same pairs by McNemar's exact test (p < 0.05,
`p_vs_bicubic` in results/metrics.json); a failed or queued experiment shows no
numbers rather than its baseline's.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

METRICS = "results/metrics.json"
PARAMS = "params.yaml"
ALPHA = 0.05


def exp_rows(doc: list) -> list[dict]:
    """Flatten `dvc exp show --json`: the baseline commit(s), then their experiments."""
    rows = []
    for commit in doc:
        if commit.get("rev") == "workspace":
            continue
        rows.append(_row(commit, commit.get("name") or commit["rev"][:7], "baseline"))
        for group in commit.get("experiments") or []:
            state = (group.get("executor") or {}).get("state") or "success"
            for rev in group.get("revs") or []:
                rows.append(_row(rev, rev.get("name") or group.get("name") or rev["rev"][:7],
                                 "failed" if rev.get("error") else state))
    return rows


def _row(entry: dict, name: str, state: str) -> dict:
    data = entry.get("data") or {}
    params = ((data.get("params") or {}).get(PARAMS) or {}).get("data") or {}
    metrics = ((data.get("metrics") or {}).get(METRICS) or {}).get("data") or {}
    srnet = (params.get("train") or {}).get("srnet") or {}
    srnet = srnet[0] if isinstance(srnet, list) and srnet else srnet
    ok = state in ("success", "baseline")
    return {"name": name, "state": state, "lambda": params.get("lambda"), "srnet": srnet.get("type", "?"),
            "fnet": params.get("fnet", "?"), "acc": metrics.get("acc", {}) if ok else {},
            "p": metrics.get("p_vs_bicubic", {}) if ok else {}}


def _resolutions(rows: list[dict]) -> list[str]:
    res = {r for row in rows for r in row["acc"]}
    return sorted(res, key=lambda r: int(r.split("x")[0]))


def format_table(rows: list[dict], width: int = 100) -> str:
    """One line per experiment: SRNet accuracy per resolution (low to high) with its change to the baseline."""
    base = next((r for r in rows if r["state"] == "baseline"), None)
    resolutions = [r for r in _resolutions(rows) if any(row["srnet"] in row["acc"].get(r, {}) for row in rows)]
    head = f"{'experiment':<16} {'state':<8} {'lambda':>6} {'srnet':<6} {'fnet':<13}"
    lines = [head + "".join(f" {r:>13}" for r in resolutions)]
    for row in rows:
        cells = []
        for r in resolutions:
            acc = row["acc"].get(r, {}).get(row["srnet"])
            if acc is None:
                cells.append(f" {'-':>13}")
                continue
            star = "*" if row["p"].get(r, {}).get(row["srnet"], 1.0) < ALPHA else " "
            ref = base["acc"].get(r, {}).get(base["srnet"]) if base and row is not base else None
            delta = f"{acc - ref:+5.1f}" if ref is not None else " " * 5
            cells.append(f" {acc:6.2f}{star}{delta}")
        lam = "-" if row["lambda"] is None else f"{row['lambda']:g}"
        lines.append(f"{row['name'][:16]:<16} {row['state'][:8]:<8} {lam:>6} {row['srnet'][:6]:<6} "
                     f"{row['fnet'][:13]:<13}" + "".join(cells))
    legend = ["LFW accuracy (%) of each experiment's SRNet, then its change to the baseline row;",
              "*: differs from bicubic on the same pairs (McNemar's exact p < 0.05)"]
    return "\n".join(line[:width] for line in lines + legend)


def show(repo: str | Path = ".", width: int = 100) -> str:
    out = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=repo, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(f"dvc exp show failed in {Path(repo).resolve()}: {out.stderr.strip()[-500:]}")
    return format_table(exp_rows(json.loads(out.stdout)), width)
