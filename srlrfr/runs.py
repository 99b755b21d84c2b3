"""A Snakemake run killed with kill -9: its orphaned job stops, and the next run clears its lock.

Snakemake, killed outright, cannot stop its jobs or remove its lock
(``.snakemake/locks``): the running step goes on as an orphan, and the next
run refuses to start until ``snakemake --unlock``. Two pieces fix that here:

- common.smk records each Snakemake run (host, boot, pid and the process's
  start time, so a reused pid is not mistaken for it) in
  ``.snakemake/srlrfr-runs/`` and passes the same record to its jobs in
  ``SRLRFR_SNAKEMAKE``; every ``srlrfr <step>`` watches that process and
  stops (cleaning its temporary files) within seconds of its death.
- At the next start, the lock is cleared only when every recorded run is
  provably dead (same host and boot, pid gone or reused) and none of their
  jobs (processes whose environment carries a dead run's record) still works
  in this folder. Reading the records and adding one's own happen under one
  file lock, so two runs started together do not take each other for a job of
  the killed run: the second sees the first as live and names it. Otherwise
  (a run recorded on another host) nothing is touched and Snakemake's own
  message stands: check ``pgrep -af snakemake``, then ``snakemake --unlock``.
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from .cachelock import proc_stat

ENV = "SRLRFR_SNAKEMAKE"
RUNS_DIR = Path(".snakemake") / "srlrfr-runs"
LOCK_DIR = Path(".snakemake") / "locks"
POLL_S = 1.0
GRACE_S = 30.0  # after asking the step to stop, the longest it may take to clean up


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), None if gone."""
    fields = proc_stat(pid)
    return fields[19] if fields else None


def record(pid: int | None = None) -> dict:
    pid = os.getpid() if pid is None else pid
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "start": _start_time(pid)}


def alive(rec: dict) -> bool | None:
    """True/False for a run of this host and boot; None when that cannot be told from here."""
    if rec.get("host") != socket.gethostname() or not rec.get("boot") or rec.get("boot") != _boot_id():
        return None
    return _start_time(int(rec["pid"])) == rec.get("start")


# ---------------------------------------------------------------- the job side (srlrfr <step>)

def _orphaned(signum, frame) -> None:
    raise KeyboardInterrupt("the Snakemake run that started this job is gone")


def watch_snakemake() -> None:
    """Stop this step once the Snakemake run that started it is gone: KeyboardInterrupt in the main
    thread, so temporary files are removed on the way out. Call from the main thread."""
    try:
        rec = json.loads(os.environ.get(ENV, ""))
    except ValueError:
        return
    if alive(rec) is None:  # another host or boot: nothing can be told from here
        return
    # Snakemake's jobs may ignore SIGINT; a signal of our own reaches the handler whatever they inherit.
    signal.signal(signal.SIGUSR1, _orphaned)
    main = threading.main_thread().ident

    def watch() -> None:
        while alive(rec):
            time.sleep(POLL_S)
        print(f"srlrfr: the Snakemake run that started this job (pid {rec['pid']}) is gone; stopping this "
              f"orphaned job (the next run redoes it)", file=sys.stderr, flush=True)
        signal.pthread_kill(main, signal.SIGUSR1)
        time.sleep(GRACE_S)
        os._exit(130)

    threading.Thread(target=watch, name="srlrfr-watch-snakemake", daemon=True).start()


# ---------------------------------------------------------------- the Snakemake side (common.smk)

def _records(root: Path) -> list[tuple[Path, dict]]:
    out = []
    for path in sorted((root / RUNS_DIR).glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return out


@contextlib.contextmanager
def _guard(root: Path):
    """One run at a time between reading the records and adding its own: two runs started together
    must not each take the other, not yet recorded, for a job of the killed run."""
    path = root / RUNS_DIR.parent / "srlrfr-runs.guard"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
    except OSError:  # a read-only checkout: Snakemake reports that itself
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _jobs_of(root: Path, dead: list[dict]) -> list[str]:
    """Processes in ``root`` started by one of the dead runs: their environment carries its record."""
    root, found = root.resolve(), []
    wanted = {(str(r.get("pid")), r.get("start")) for r in dead}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(proc / "cwd")).resolve() != root:
                continue
            env = dict(e.split("=", 1) for e in (proc / "environ").read_bytes().decode(errors="replace")
                       .split("\0") if "=" in e)
            rec = json.loads(env.get(ENV, "null")) or {}
            if (str(rec.get("pid")), rec.get("start")) not in wanted:
                continue
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError, AttributeError):
            continue
        found.append(f"pid {proc.name}: {' '.join(argv)[:120]}")
    return found


def _since(rec: dict) -> str:
    """When the run started, as local time (its start in clock ticks after boot)."""
    try:
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(boot + int(rec["start"]) / os.sysconf("SC_CLK_TCK")))
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return "at an unknown time"


def _active(rec: dict) -> str:
    return f"pid {rec.get('pid')}, started {_since(rec)}"


def clear_stale_lock(root: str | os.PathLike = ".") -> str | None:
    """Remove the lock a killed run left, when that is provably safe; say what was done (or why not)."""
    with _guard(Path(root)):
        return _clear_stale_lock(Path(root))


def _clear_stale_lock(root: Path) -> str | None:
    records = _records(root)
    dead = [(p, r) for p, r in records if alive(r) is False]
    live = [r for _, r in records if alive(r)]
    unknown = [r for _, r in records if alive(r) is None]
    locks = sorted((root / LOCK_DIR).glob("*.lock")) if (root / LOCK_DIR).is_dir() else []
    if live:  # a run of this machine works here: whatever lock there is may be its own
        return (f"srlrfr: another Snakemake run ({'; '.join(map(_active, live))}) is active in this folder. "
                f"If Snakemake says the directory cannot be locked, that run holds the lock: wait for it "
                f"or stop it; do not --unlock")
    if not locks or not dead:
        if not unknown:
            for path, _ in dead:
                path.unlink(missing_ok=True)
        return None
    if unknown:
        where = ", ".join(f"pid {r.get('pid')} on {r.get('host')}" for r in unknown)
        return (f"srlrfr: the lock in {root / LOCK_DIR} is kept: another Snakemake run may be active ({where}). "
                f"If none is, run `snakemake --unlock` and start again")
    busy = _jobs_of(root, [r for _, r in dead])
    if busy:
        return (f"srlrfr: the lock in {root / LOCK_DIR} is kept: a job of the killed run is still running "
                f"({'; '.join(busy[:3])}); wait a few seconds (it stops by itself) or kill it, then start again")
    for path in locks:
        path.unlink(missing_ok=True)
    for path, _ in dead:
        path.unlink(missing_ok=True)
    pids = ", ".join(str(r["pid"]) for _, r in dead)
    return (f"srlrfr: cleared the lock left by a killed Snakemake run (pid {pids}); its jobs are gone, and the "
            f"interrupted ones are redone (rerun-incomplete)")


def start_run(root: str | os.PathLike = ".") -> str | None:
    """In Snakemake's main process: clear a provably stale lock, then record this run for its jobs
    (both under one guard, so a run started at the same time sees this one as live)."""
    root = Path(root)
    with _guard(root):
        note = _clear_stale_lock(root)
        rec = record()
        if rec["start"] is None:  # no /proc: nothing can be proven, so nothing is recorded
            return note
        path = root / RUNS_DIR / f"{rec['host']}.{rec['pid']}.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rec))
        except OSError:  # a read-only checkout: Snakemake reports that itself
            return note
    atexit.register(lambda: path.unlink(missing_ok=True))
    os.environ[ENV] = json.dumps(rec)
    return note


# ---------------------------------------------------------------- what a finished run tells the console

def run_notes(root: str | os.PathLike = ".") -> list[str]:
    """Warnings a user must see without reading the step logs: damaged images, CelebA images missing
    on disk, pairs left out of scoring (Snakemake prints these when the run succeeds)."""
    # deferred: loads pandas
    import pandas as pd
    root, notes = Path(root), []
    for report in sorted((root / "data" / "landmarks").glob("*_no_face.csv")):
        counts = pd.read_csv(report)["status"].value_counts() if report.stat().st_size else {}
        damaged = {s: int(counts.get(s, 0)) for s in ("corrupt", "unreadable") if counts.get(s, 0)}
        if damaged:
            notes.append(f"{report.name.removesuffix('_no_face.csv')}: "
                         + ", ".join(f"{n} {s}" for s, n in damaged.items())
                         + f" image(s), never scored or trained on (listed in {report})")
        if counts.get("bad_landmarks", 0):  # wrong points look like any others: say so, not only in the log
            notes.append(f"{report.name.removesuffix('_no_face.csv')}: {int(counts['bad_landmarks'])} image(s) "
                         f"whose landmarks are not a face's (outside the image, implausible eye distance or "
                         f"order), treated as no face (listed with the reason in {report})")
    for summary in sorted((root / "data" / "index").glob("*/summary.json")):
        info = json.loads(summary.read_text())
        if info.get("missing"):
            notes.append(f"{summary.parent.name}: {info['missing']} of {info['listed']} listed images are missing "
                         f"on disk and were skipped (see {summary})")
    metrics = root / "results" / "summary.csv"
    if metrics.is_file():
        table = pd.read_csv(metrics)
        if "n_excluded" in table and table["n_excluded"].fillna(0).any():
            notes.append(f"evaluation: up to {int(table['n_excluded'].max())} pairs per configuration excluded "
                         f"(n_excluded and excluded_* in {metrics})")
    return notes
