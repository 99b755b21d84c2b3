"""Per-job GPU leases (srlrfr.leases, srlrfr.device) with simulated GPUs: jobs are real processes,
the GPUs are lock names; a kill -9 must free its GPU."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from srlrfr import device, leases

REPO = Path(__file__).resolve().parents[1]
JOB = """
import sys, time
from pathlib import Path
from srlrfr.leases import lease
got = lease(sys.argv[2].split(","), Path(sys.argv[1]), wait=float(sys.argv[3]))
print("none" if got is None else got, flush=True)
time.sleep(120)
"""


def start_job(lock_dir: Path, gpus: str, wait: float) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen([sys.executable, "-c", JOB, str(lock_dir), gpus, str(wait)], stdout=subprocess.PIPE,
                            text=True, env=env)


def leased(job: subprocess.Popen) -> str:
    return job.stdout.readline().strip()


@pytest.fixture
def jobs():
    started: list[subprocess.Popen] = []
    yield started
    for job in started:
        job.kill()
        job.wait()


def test_two_jobs_two_gpus_distinct_and_freed_by_kill_9(tmp_path, jobs):
    gpus = "gpu-a,gpu-b"
    jobs += [start_job(tmp_path, gpus, wait=0)]
    first = leased(jobs[0])
    jobs += [start_job(tmp_path, gpus, wait=0)]
    second = leased(jobs[1])
    assert {first, second} == {"0", "1"}  # two concurrent jobs, two different GPUs

    jobs += [start_job(tmp_path, gpus, wait=0)]
    assert leased(jobs[2]) == "none"  # both leased: a third job gets none

    waiting = start_job(tmp_path, gpus, wait=60)  # waits for a GPU to be freed
    jobs.append(waiting)
    os.kill(jobs[0].pid, signal.SIGKILL)  # no clean-up code runs
    jobs[0].wait()
    assert leased(waiting) == first  # the killed job's GPU went to the waiting one


def test_a_process_keeps_its_lease_and_frees_it(tmp_path):
    try:
        assert leases.lease(["gpu-a", "gpu-b"], tmp_path) == 0
        assert leases.lease(["gpu-a", "gpu-b"], tmp_path) == 0  # asking again: the one it holds
        assert leases.lease(["gpu-b", "gpu-a"], tmp_path) == 1
    finally:
        leases.release_all()
    assert leases.try_lease("gpu-a", tmp_path)
    leases.release_all()


def fake_cuda(monkeypatch, n: int) -> list[int]:
    current: list[int] = []
    props = [types.SimpleNamespace(uuid=f"fake-{i}") for i in range(n)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props[i])
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    return current


def test_resolve_device_auto_skips_a_gpu_leased_elsewhere(tmp_path, monkeypatch, jobs):
    monkeypatch.setenv(leases.LOCK_DIR_ENV, str(tmp_path))
    current = fake_cuda(monkeypatch, 2)
    jobs.append(start_job(tmp_path, "gpu-fake-0", wait=0))
    assert leased(jobs[0]) == "0"  # another job holds GPU 0
    try:
        assert device.resolve_device("auto") == torch.device("cuda", 1)
        assert current == [1]
        assert device.resolve_device("cuda") == torch.device("cuda", 1)  # same process: same lease
        # an explicit index is honoured even when leased elsewhere (with a warning)
        assert device.resolve_device("cuda:0") == torch.device("cuda", 0)
        monkeypatch.setenv(device.WAIT_ENV, "0")
        leases.release_all()
        jobs.append(start_job(tmp_path, "gpu-fake-1", wait=0))
        assert leased(jobs[1]) == "0"
        with pytest.raises(RuntimeError, match="no free GPU"):
            device.resolve_device("auto")
    finally:
        leases.release_all()
    assert device.resolve_device("cpu") == torch.device("cpu")


def test_resolve_device_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        device.resolve_device("cuda:0")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        device.resolve_device("tpu")
