"""``srlrfr snakemake ...``: Snakemake that stops when the command that started it is killed.

DVC runs a stage's command through a shell. Killed with SIGKILL, DVC cannot pass
anything on: the shell and Snakemake are reparented and run on, and so do their
jobs. This wrapper (dvc.yaml's stage command) starts Snakemake in a process group
of its own and watches its callers: the shells above it and the first process
above them that is not a shell (DVC). Once one of them is gone, the group gets
SIGINT, as from Ctrl-C (Snakemake cancels its jobs, which clean up), then SIGTERM
and SIGKILL should it still run after a grace period. Jobs watch their Snakemake
as well (srlrfr.runs.watch_snakemake). Ctrl-C or a scheduler's SIGTERM reaching
the wrapper is passed on to the group; and should the wrapper itself be killed
outright, the kernel kills Snakemake too (PR_SET_PDEATHSIG, Linux), and its jobs
stop as after kill -9 of Snakemake.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

from .cachelock import proc_stat
from .runs import alive, record

SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "busybox"}
POLL_S = 0.5
GRACE_S = 30.0  # after SIGINT: Snakemake cancels its jobs; each removes its temporary files
PR_SET_PDEATHSIG = 1


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _parent(pid: int) -> int:
    fields = proc_stat(pid)
    return int(fields[1]) if fields else 0


def callers() -> list[dict]:
    """The shells between this process and the program that ran them, and that program (host, pid, start)."""
    found, pid = [], os.getppid()
    while pid > 1:
        rec = record(pid)
        if rec["start"] is None:  # no /proc (not Linux) or already gone
            break
        found.append(rec | {"name": _comm(pid)})
        if found[-1]["name"] not in SHELLS:
            break
        pid = _parent(pid)
    return found


def _child_setup(parent: int) -> None:
    """In the child before exec. SIGINT as by default: a caller started in the background of a script
    ignores it, and Snakemake would inherit that. Then SIGKILL once this wrapper dies (say, DVC's process
    group killed with SIGKILL): as after kill -9 of Snakemake, its jobs stop by themselves and the next run
    clears the lock (srlrfr.runs). SIGINT would reach Snakemake alone, which then waits for its jobs."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the callers are still watched
        return
    if os.getppid() != parent:  # the wrapper died before prctl took effect
        os._exit(1)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGINT, GRACE_S), (signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _say(text: str) -> None:
    try:
        print(f"srlrfr snakemake: {text}", file=sys.stderr, flush=True)
    except OSError:  # the killed caller held our stderr
        pass


def main(argv: list[str]) -> int:
    watched = callers()
    me = os.getpid()
    proc = subprocess.Popen(["snakemake", *argv], process_group=0, preexec_fn=lambda: _child_setup(me))

    def forward(signum, frame) -> None:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    while proc.poll() is None:
        gone = [r for r in watched if alive(r) is False]
        if gone:
            _say(f"{gone[0]['name'] or 'the caller'} (pid {gone[0]['pid']}), which started this run, is gone; "
                 f"stopping Snakemake (pid {proc.pid}) and its jobs")
            _stop(proc)
            break
        try:
            proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass
    code = proc.wait()
    return 128 - code if code < 0 else code
