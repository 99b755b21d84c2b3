"""Where a run's time goes: Snakemake's per-job ``benchmark:`` files, one table row per step.

Every rule writes ``logs/benchmarks/<rule>.tsv`` or ``logs/benchmarks/<rule>/<wildcards...>.tsv``;
Snakemake fills it after the job with wall seconds (``s``), ``cpu_time`` and the peak
resident memory of the job's process tree (``max_rss``, MB, sampled every 0.5 s for the
first 15 s, then every 30 s; ``NA`` when the job ended before the first sample).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

BENCH_DIR = "benchmarks"  # the folder component the rule's name follows
JOB_COLUMNS = ("step", "job", "seconds", "cpu_seconds", "max_rss_mb")
STEP_COLUMNS = ("step", "jobs", "seconds", "longest_seconds", "cpu_seconds", "max_rss_mb", "share_pct")


def job_name(path: str | os.PathLike) -> tuple[str, str]:
    """(rule, job) of logs/benchmarks/evaluate/dlib_resnet34/bicubic/40x40.tsv ->
    ("evaluate", "dlib_resnet34/bicubic/40x40"); ("aggregate", "") for .../aggregate.tsv."""
    parts = Path(path).with_suffix("").parts
    if BENCH_DIR not in parts[:-1]:
        raise ValueError(f"{path}: a benchmark file must lie under a {BENCH_DIR!r} folder "
                         f"(logs/{BENCH_DIR}/<rule>[/<wildcards>].tsv, the rules' benchmark: directive)")
    rest = parts[parts.index(BENCH_DIR) + 1:]
    return rest[0], "/".join(rest[1:])


def read_jobs(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per job: step, job, seconds, cpu_seconds, max_rss_mb (the last run if a file has several)."""
    rows = []
    for path in paths:
        step, job = job_name(path)
        try:
            table = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise ValueError(f"{path}: not a Snakemake benchmark file ({err}); rerun the rule's job "
                             f"to rewrite it") from None
        if table.empty or "s" not in table:
            raise ValueError(f"{path}: no 's' (seconds) row in this benchmark file; rerun the rule's job")
        last = table.iloc[-1]
        rows.append({"step": step, "job": job, "seconds": float(last["s"]),
                     "cpu_seconds": float(last.get("cpu_time", float("nan"))),
                     "max_rss_mb": float(last.get("max_rss", float("nan")))})
    return pd.DataFrame(rows, columns=list(JOB_COLUMNS))


def step_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per step: jobs, summed and longest wall time, summed CPU time, peak RSS, share of all wall time;
    slowest step first."""
    if jobs.empty:
        return pd.DataFrame(columns=list(STEP_COLUMNS))
    g = jobs.groupby("step", sort=False)
    table = pd.DataFrame({"jobs": g.size(), "seconds": g["seconds"].sum(), "longest_seconds": g["seconds"].max(),
                          "cpu_seconds": g["cpu_seconds"].sum(min_count=1),
                          "max_rss_mb": g["max_rss_mb"].max()})
    total = table["seconds"].sum()
    table["share_pct"] = 100.0 * table["seconds"] / total if total > 0 else float("nan")
    table = table.sort_values("seconds", ascending=False, kind="stable").reset_index()
    return table[list(STEP_COLUMNS)].round({"seconds": 2, "longest_seconds": 2, "cpu_seconds": 2,
                                            "max_rss_mb": 1, "share_pct": 1})
