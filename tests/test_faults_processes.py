"""Faults around the processes of a run, each with real DVC and Snakemake on a tiny workflow:
kill -9 of `dvc repro` (no orphan runs on), two runs started together after a killed run's lock
(neither blames the other), and a retraining that diverges after Snakemake removed the
previous model.pt (that model is still there, and the message says where).
"""
from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import BIN, COUNTS, REPO, run_env, silent

from srlrfr import runs

# A Snakefile as the project's common.smk sets it up: clear a provably stale lock, record the run.
RECORDED = """import sys
from srlrfr import runs
if workflow.is_main_process:
    _note = runs.start_run()
    if _note:
        print(_note, file=sys.stderr)
"""


def env() -> dict[str, str]:
    return run_env(PYTHONPATH=str(REPO))  # this checkout's srlrfr, in every process the tools start


def working_in(folder: Path) -> list[str]:
    """Live processes whose working folder is ``folder`` (zombies are dead)."""
    folder, found = folder.resolve(), []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(proc / "cwd")).resolve() != folder or \
                    "zombie" in (proc / "status").read_text():
                continue
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            found.append(f"{proc.name}: {argv}")
        except OSError:
            continue
    return found


def wait_until(what, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


@pytest.mark.slow  # real DVC / Snakemake runs: about a minute each
def test_kill_dvc_repro_leaves_no_orphan(tmp_path: Path):
    """kill -9 of `dvc repro`: its Snakemake (through `srlrfr snakemake`, dvc.yaml's command) and the job stop."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Snakefile").write_text('rule all:\n    output: "out.txt"\n'
                                    '    shell: "echo started > {output}; sleep 600"\n')
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {
        "cmd": "srlrfr snakemake --cores 1 out.txt", "outs": ["out.txt"]}}}))
    subprocess.run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=repo, env=env(), check=True, timeout=300)
    log = (tmp_path / "dvc.log").open("w")
    COUNTS["faults injected"] += 1
    dvc = subprocess.Popen([str(BIN / "dvc"), "repro"], cwd=repo, env=env(), stdout=log, stderr=subprocess.STDOUT,
                           start_new_session=True)
    assert wait_until(lambda: (repo / "out.txt").is_file() or dvc.poll() is not None, 300), "the job never started"
    assert dvc.poll() is None, (tmp_path / "dvc.log").read_text()
    assert any("sleep 600" in p for p in working_in(repo)), working_in(repo)
    os.kill(dvc.pid, signal.SIGKILL)  # DVC only: the shell, Snakemake and its job are left to themselves
    dvc.wait()
    gone = wait_until(lambda: not working_in(repo), 30)
    left = working_in(repo)
    for line in left:  # do not leave them to the next test
        os.kill(int(line.split(":")[0]), signal.SIGKILL)
    assert gone, f"still running 30 s after kill -9 of dvc repro: {left}"
    assert "which started this run, is gone; stopping Snakemake" in (tmp_path / "dvc.log").read_text()
    COUNTS["faults survived"] += 1


@pytest.mark.slow  # real DVC / Snakemake runs: about a minute each
def test_two_runs_after_a_killed_runs_lock(tmp_path: Path):
    """Two Snakemake runs started together after a killed run's lock: one clears it, the other names that run
    as active, one of them runs the job; neither takes the other for a job of the killed run."""
    repo = tmp_path / "repo"
    repo.mkdir()
    # The job waits for the go of the test: until both runs are past their start, whatever the load.
    (repo / "Snakefile").write_text(RECORDED + 'rule all:\n    output: "out.txt"\n    shell: "for i in '
                                               '$(seq 3000); do [ -f go ] && break; sleep 0.2; done; '
                                               'echo done > {output}"\n')
    gone = subprocess.Popen(["true"])
    gone.wait()
    (repo / runs.RUNS_DIR).mkdir(parents=True)  # the killed run: its record and its lock on out.txt
    (repo / runs.RUNS_DIR / "killed.json").write_text(json.dumps({**runs.record(), "pid": gone.pid, "start": "1"}))
    (repo / runs.LOCK_DIR).mkdir(parents=True)
    (repo / runs.LOCK_DIR / "0.output.lock").write_text(f"{repo / 'out.txt'}\n")
    COUNTS["faults injected"] += 1
    cmd = [str(BIN / "snakemake"), "--cores", "1", "out.txt"]
    both = [subprocess.Popen(cmd, cwd=repo, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]

    def both_past_their_start() -> bool:  # each has recorded itself, or one has already ended
        return len(list((repo / runs.RUNS_DIR).glob("*.json"))) == 2 or any(p.poll() is not None for p in both)
    wait_until(both_past_their_start, 600)
    (repo / "go").touch()
    outs = [p.communicate(timeout=600) for p in both]
    said = [err for _, err in outs]
    assert not any("a job of the killed run" in s for s in said), said
    cleared = [i for i, s in enumerate(said) if "cleared the lock left by a killed Snakemake run" in s]
    assert len(cleared) == 1, said
    first, second = cleared[0], 1 - cleared[0]
    assert f"another Snakemake run (pid {both[first].pid}, started " in said[second], said[second]
    # Whichever then takes Snakemake's own lock first runs the job; the other stops at the lock
    # (the later one was told of the earlier above), and the output is whole.
    assert sorted(p.returncode for p in both) == [0, 1], said
    assert (repo / "out.txt").read_text() == "done\n"
    COUNTS["faults survived"] += 1


@pytest.mark.slow  # real DVC / Snakemake runs: about a minute each
def test_diverging_retrain_keeps_the_previous_model(tmp_path: Path):
    """Train through Snakemake, then retrain with train.lr 1e30: Snakemake removes model.pt before the job,
    training diverges, and the previous model is still on disk where the message says."""
    from test_bad_inputs import SETTINGS, tiny_training_set
    repo = tmp_path / "repo"
    repo.mkdir()
    aligned, degraded = tiny_training_set(repo)
    out = "models/srnets/t/edsr_lambda0"
    (repo / "Snakefile").write_text(RECORDED + f'''
rule train:
    input: aligned="{aligned}", degraded="{degraded}"
    output: model="{out}/model.pt", losses="{out}/losses.csv"
    params: settings=config["settings"]
    shell: "srlrfr train --settings {{params.settings:q}} --aligned {{input.aligned}} --degraded {{input.degraded}} "
           "--lam 0 --out-dir {out}"
''')
    diverging = json.loads(SETTINGS)
    diverging["train"].update(lr=1e30, checkpoint_every=5)
    for name, settings in (("good.yaml", SETTINGS), ("diverging.yaml", json.dumps(diverging))):
        (repo / name).write_text(yaml.safe_dump({"settings": settings}))
    target = [str(BIN / "snakemake"), "--cores", "1", f"{out}/model.pt", "--configfile"]
    first = subprocess.run(target + ["good.yaml"], cwd=repo, env=env(), capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-4000:]
    model, kept = repo / out / "model.pt", repo / "models" / "previous" / "srnets" / "t" / "edsr_lambda0" / "model.pt"
    (tmp_path / "good.pt").write_bytes(model.read_bytes())
    assert filecmp.cmp(model, kept, shallow=False)

    COUNTS["faults injected"] += 1
    second = subprocess.run(target + ["diverging.yaml"], cwd=repo, env=env(), capture_output=True, text=True,
                            timeout=900)
    assert not silent(second.returncode == 0) and "diverged" in second.stderr, second.stderr[-4000:]
    assert not model.exists(), "expected Snakemake to remove the failed job's model.pt"
    assert not silent(not filecmp.cmp(kept, tmp_path / "good.pt", shallow=False)), "the previous model was lost"
    kept_rel = kept.relative_to(repo)
    assert f"kept at {kept_rel}" in second.stderr and f"cp {kept_rel} {out}/model.pt" in second.stderr, \
        second.stderr[-4000:]
    assert "Traceback" not in second.stderr
    COUNTS["faults survived"] += 1
