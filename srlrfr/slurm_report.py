"""What each rule's SLURM jobs asked for and used: ``srlrfr slurm-report``.

Reads SLURM accounting (``sacct``) for one Snakemake run through
workflow/profiles/slurm, or for every srlrfr job since a time, and prints one
row per rule: jobs, their states, elapsed time, requested memory (``--mem``,
from srlrfr/resources.py) and the most a job of it used: the sum of its steps'
``MaxRSS``, since the batch step's Snakemake holds its memory while the srun
step runs the rule (both fall under ``--mem``).

The executor plugin names every job of a run after the run's ID (printed as
``SLURM run ID: ...`` and kept in .snakemake/log/) and comments it
``rule_<rule>[_wildcards_<values>]``. sacct keeps the comment only with
``AccountingStoreFlags=job_comment`` and records ``MaxRSS`` only with a
``JobAcctGatherType`` (tools/slurm_local.sh sets both); where either is
missing the report says so instead of showing blanks.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# sacct columns, in the order parse() expects them.
FIELDS = ("JobID", "JobName", "Comment", "State", "ElapsedRaw", "ReqMem", "MaxRSS", "NCPUS")
RUN_ID_LINE = re.compile(r"SLURM run ID: (\S+)")
_UNITS = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}  # to SLURM's M (MiB)
NO_COMMENT = "(no comment)"


@dataclass
class Job:
    """One SLURM job (its allocation line plus its steps' usage)."""

    job_id: str
    name: str = ""
    rule: str = NO_COMMENT
    wildcards: str = ""
    state: str = ""
    elapsed_s: int = 0
    req_mb: float | None = None
    max_rss_mb: float | None = None  # sum of its steps' MaxRSS (batch, extern, srun); None: not recorded
    steps: list[str] = field(default_factory=list)


def memory_mb(text: str, cpus: int = 1) -> float | None:
    """sacct's '3926M', '1.20G', '210260K', '4Gc' (per CPU), '16Gn' as MiB; None when blank."""
    m = re.fullmatch(r"([\d.]+)([KMGT]?)([cn]?)", text.strip())
    if not m:
        return None
    value = float(m[1]) * _UNITS[m[2] or "M"]  # bare numbers: only '0' in practice
    return value * cpus if m[3] == "c" else value


def rule_of(comment: str) -> tuple[str, str]:
    """The plugin's comment 'rule_<rule>_wildcards_<values>' as (rule, wildcards)."""
    if not comment.startswith("rule_"):
        return NO_COMMENT, ""
    rule, _, wildcards = comment[len("rule_"):].partition("_wildcards_")
    return rule, wildcards


def parse(text: str) -> list[Job]:
    """Jobs from ``sacct --parsable2 --noheader -o <FIELDS>`` text, steps folded into their job."""
    jobs: dict[str, Job] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        cols = line.split("|")
        if len(cols) != len(FIELDS):
            raise ValueError(f"sacct line has {len(cols)} fields, expected {len(FIELDS)} "
                             f"({','.join(FIELDS)}): {line!r}")
        row = dict(zip(FIELDS, cols))
        job_id, dot, step = row["JobID"].partition(".")
        job = jobs.setdefault(job_id, Job(job_id))
        rss = memory_mb(row["MaxRSS"])
        if rss:  # summed: the batch step's Snakemake waits, holding its memory, while the srun step runs the rule
            job.max_rss_mb = (job.max_rss_mb or 0.0) + rss
        if dot:
            job.steps.append(step)
            continue
        job.name, job.state = row["JobName"], row["State"].split(" ")[0]  # "CANCELLED by 0"
        job.rule, job.wildcards = rule_of(row["Comment"])
        job.elapsed_s = int(row["ElapsedRaw"] or 0)
        job.req_mb = memory_mb(row["ReqMem"], int(row["NCPUS"] or 1))
    return list(jobs.values())


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}M"


def summary(jobs: list[Job]) -> list[dict]:
    """One row per rule: jobs, states, elapsed (sum and longest), requested and used memory."""
    rows = []
    for rule in sorted({j.rule for j in jobs}):
        mine = [j for j in jobs if j.rule == rule]
        states: dict[str, int] = {}
        for j in mine:
            states[j.state] = states.get(j.state, 0) + 1
        reqs = [j.req_mb for j in mine if j.req_mb is not None]
        used = [j.max_rss_mb for j in mine if j.max_rss_mb is not None]
        # Of the job that came closest to its request: the figure to size mem_mb by.
        ratios = [j.max_rss_mb / j.req_mb for j in mine if j.max_rss_mb is not None and j.req_mb]
        rows.append({
            "rule": rule, "jobs": len(mine),
            "states": ", ".join(f"{n} {s}" for s, n in sorted(states.items())),
            "elapsed": sum(j.elapsed_s for j in mine), "longest": max(j.elapsed_s for j in mine),
            "requested": max(reqs) if reqs else None, "max_rss": max(used) if used else None,
            "used": max(ratios) if ratios else None,
        })
    return rows


def render(jobs: list[Job], per_job: bool = False) -> str:
    if not jobs:
        return "no SLURM jobs found"
    head = ("rule", "jobs", "elapsed", "longest", "requested", "MaxRSS", "used", "states")
    rows = [(r["rule"], str(r["jobs"]), duration(r["elapsed"]), duration(r["longest"]), _mb(r["requested"]),
             _mb(r["max_rss"]), "-" if r["used"] is None else f"{r['used']:.0%}", r["states"])
            for r in summary(jobs)]
    lines = _table(head, rows, left={0, 7})
    if per_job:
        jhead = ("job", "rule", "wildcards", "state", "elapsed", "requested", "MaxRSS")
        jrows = [(j.job_id, j.rule, j.wildcards or "-", j.state, duration(j.elapsed_s), _mb(j.req_mb),
                  _mb(j.max_rss_mb)) for j in sorted(jobs, key=lambda j: _job_order(j.job_id))]
        lines += [""] + _table(jhead, jrows, left={1, 2, 3})
    notes = []
    if all(j.rule == NO_COMMENT for j in jobs):
        notes.append("no job has a rule comment: sacct keeps comments only with AccountingStoreFlags=job_comment "
                     "in slurm.conf (tools/slurm_local.sh sets it)")
    finished = [j for j in jobs if j.state not in ("PENDING", "RUNNING")]
    if finished and all(j.max_rss_mb is None for j in finished):
        notes.append("no MaxRSS recorded: SLURM samples memory only with JobAcctGatherType=jobacct_gather/linux "
                     "(or cgroup) in slurm.conf")
    return "\n".join(lines + [f"note: {n}" for n in notes])


def _job_order(job_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", job_id))


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], left: set[int]) -> list[str]:
    """Columns padded to their widest cell; the ``left`` ones (text) left-aligned, numbers right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:{'<' if i in left else '>'}{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*head).rstrip()] + [fmt.format(*r).rstrip() for r in rows]


def latest_run_id(log_dir: Path = Path(".snakemake/log")) -> str:
    """The SLURM run ID of the newest Snakemake log here that has one."""
    logs = sorted(log_dir.glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    for log in logs:
        m = RUN_ID_LINE.search(log.read_text(errors="replace"))
        if m:
            return m[1]
    raise FileNotFoundError(f"no 'SLURM run ID:' line in {log_dir}/*.snakemake.log: run "
                            "`snakemake --profile workflow/profiles/slurm ...` here first, or pass --run or --since")


def sacct(run_id: str | None, since: str) -> str:
    """sacct's text for one run (job name = run ID), or for every job since ``since``."""
    if shutil.which("sacct") is None:
        raise FileNotFoundError("sacct not found: slurm-report reads SLURM accounting; "
                                "run it where sbatch and sacct work")
    cmd = ["sacct", "--parsable2", "--noheader", "-o", ",".join(FIELDS), "-S", since]
    cmd += ["--name", run_id] if run_id else []
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def live_comments() -> dict[str, str]:
    """squeue's comments of queued and running jobs: sacct stores a comment only once its job ends."""
    if shutil.which("squeue") is None:
        return {}
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True, timeout=60)
    return dict(line.split("|", 1) for line in out.stdout.splitlines() if "|" in line) if not out.returncode else {}


def with_live_comments(jobs: list[Job], comments: dict[str, str]) -> list[Job]:
    for job in jobs:
        if job.rule == NO_COMMENT and job.job_id in comments:
            job.rule, job.wildcards = rule_of(comments[job.job_id])
    return jobs


def report(run_id: str | None = None, since: str | None = None, per_job: bool = False) -> str:
    """The table for ``run_id`` (default: this directory's latest SLURM run), or for all rule jobs since ``since``."""
    if since and not run_id:
        jobs = [j for j in with_live_comments(parse(sacct(None, since)), live_comments()) if j.rule != NO_COMMENT]
        title = f"srlrfr's SLURM jobs since {since}"
    else:
        run_id = run_id or latest_run_id()
        jobs = with_live_comments(parse(sacct(run_id, since or "now-30days")), live_comments())
        title = f"SLURM run {run_id}"
    return f"{title}\n{render(jobs, per_job)}"
