"""Why each job of a failed Snakemake run failed, in one line: its step's own error.

Every rule writes its step's console to ``logs/<rule>_*.log``, and a step that
fails ends it with ``srlrfr <step>: error: <file, cause, fix>``. Snakemake
names that log, but on SLURM its message for the job says only "SLURM status
is: 'FAILED'. Reason: Unknown", and the logs it prints with
``show-failed-logs`` run to a hundred lines of the node's Snakemake headers.
The Snakefile's ``onerror`` hands this module the run's log, and it prints
the cause of every failed job last, where a reader looks.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ERROR_BLOCK = re.compile(r"^Error in rule (\w+)")
LOG_LINE = re.compile(r"^ +log: (.*?) \(check log file")
ERROR_WORD = re.compile(r"\berror\b", re.IGNORECASE)


def failed_jobs(run_log: str) -> list[tuple[str, list[str]]]:
    """(rule, its logs) of each 'Error in rule' block of a Snakemake log, once each.

    SLURM's own per-job logs (under .snakemake/) are left out: they hold the
    node's Snakemake output, whose error blocks repeat the same rule logs.
    """
    found: list[tuple[str, list[str]]] = []
    rule = None
    for line in run_log.splitlines():
        m = ERROR_BLOCK.match(line)
        if m:
            rule = m[1]
            continue
        m = LOG_LINE.match(line)
        if rule and m:
            logs = [p for p in m[1].split(", ") if ".snakemake/" not in p]
            if logs and (rule, logs) not in found:
                found.append((rule, logs))
            rule = None
    return found


def cause(log: Path) -> str:
    """The step's own error line: the last line saying 'error', else the last line."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError as exc:
        return f"(log not readable: {exc.strerror})"
    if not lines:
        return "(log is empty)"
    return next((ln for ln in reversed(lines) if ERROR_WORD.search(ln)), lines[-1])


def summary(run_log: str, root: Path = Path(".")) -> str:
    jobs = failed_jobs(run_log)
    if not jobs:
        return ""
    out = [f"srlrfr: why {'the job' if len(jobs) == 1 else f'the {len(jobs)} jobs'} failed (from each rule's log):"]
    for rule, logs in jobs:
        for log in logs:
            out.append(f"  {rule} ({log}): {cause(root / log)}")
    return "\n".join(out)


def print_causes(run_logs: list[str]) -> None:
    """What Snakefile's ``onerror`` calls with Snakemake's log file(s) of the run."""
    text = "".join(Path(p).read_text(errors="replace") for p in run_logs if Path(p).is_file())
    message = summary(text)
    if message:
        print(message, file=sys.stderr)
