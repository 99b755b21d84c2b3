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
  provably dead (same host and boot, pid gone or reused) and no other
  Snakemake or srlrfr process works in this folder. Otherwise (another run
  active, or one recorded on another host) nothing is touched and Snakemake's
  own message stands: check ``pgrep -af snakemake``, then ``snakemake --unlock``.
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

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
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]


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


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
    return pids


def _workers(root: Path) -> list[str]:
    """Other Snakemake or srlrfr processes of this user whose working folder is ``root``."""
    root, mine, found = root.resolve(), _ancestors(), []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int(proc.name) in mine or Path(os.readlink(proc / "cwd")).resolve() != root:
                continue
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError):
            continue
        if any(Path(a).name in ("snakemake", "srlrfr") for a in argv[:2]) or argv[1:2] == ["-m"] and \
                argv[2:3] in (["snakemake"], ["srlrfr"]):
            found.append(f"pid {proc.name}: {' '.join(argv)[:120]}")
    return found


def clear_stale_lock(root: str | os.PathLike = ".") -> str | None:
    """Remove the lock a killed run left, when that is provably safe; say what was done (or why not)."""
    root = Path(root)
    records = _records(root)
    dead = [(p, r) for p, r in records if alive(r) is False]
    others = [r for _, r in records if alive(r) is not False]
    locks = sorted((root / LOCK_DIR).glob("*.lock")) if (root / LOCK_DIR).is_dir() else []
    if not locks or not dead:
        if not others:
            for path, _ in dead:
                path.unlink(missing_ok=True)
        return None
    if others:
        where = ", ".join(f"pid {r.get('pid')} on {r.get('host')}" for r in others)
        return (f"srlrfr: the lock in {root / LOCK_DIR} is kept: another Snakemake run may be active ({where}). "
                f"If none is, run `snakemake --unlock` and start again")
    busy = _workers(root)
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
    """In Snakemake's main process: clear a provably stale lock, then record this run for its jobs."""
    note = clear_stale_lock(root)
    rec = record()
    if rec["start"] is None:  # no /proc: nothing can be proven, so nothing is recorded
        return note
    path = Path(root) / RUNS_DIR / f"{rec['host']}.{rec['pid']}.json"
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
