"""srlrfr.training.host_memory: after keep_freed_memory, a large block freed and allocated again
costs no page faults (the reason it exists); without it, every allocation faults its pages in.
Each case runs in its own process: the setting is process-wide and cannot be undone."""
from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc's mallopt")

PROBE = textwrap.dedent("""
    import resource, sys, torch
    from srlrfr.training.host_memory import keep_freed_memory
    took = keep_freed_memory() if sys.argv[1] == "keep" else None
    faults = []
    for _ in range(4):  # 100 MB, over glibc's largest mmap threshold (32 MiB)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        x = torch.ones(25_000_000)
        del x
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(took, faults[-1])
""")


def _last_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    took, faults = out.stdout.split()
    return took, int(faults)


def test_freed_blocks_are_reused_without_page_faults():
    took, kept = _last_faults("keep")
    _, plain = _last_faults("plain")
    assert took == "True"
    assert plain > 10  # glibc's default: a fresh mmap each time (4 KiB pages: ~24,000 faults)
    assert kept <= plain / 100


TRAIN = textwrap.dedent("""
    import hashlib, sys, tempfile
    import torch
    from srlrfr.training.host_memory import keep_freed_memory
    sys.path.insert(0, sys.argv[2])
    from test_train import run, smooth_faces  # test_train's tiny preset and its random tiny FNet
    if sys.argv[1] == "keep":
        keep_freed_memory()
    with tempfile.TemporaryDirectory() as out:
        state = torch.load(run(smooth_faces(), out), weights_only=False)
    digest = hashlib.sha256()
    for name, value in sorted(state["state_dict"].items()):
        digest.update(name.encode() + value.numpy().tobytes())
    print(digest.hexdigest())
""")


def test_kept_memory_trains_the_same_weights():
    """Reused (not freshly zeroed) blocks change no value: a run with and one without, bit for bit.
    The tiny run's activations (1 MB at 112x96) are over glibc's first mmap threshold (128 KiB)."""
    tests = str(Path(__file__).resolve().parent)
    digests = [subprocess.run([sys.executable, "-c", TRAIN, mode, tests], capture_output=True, text=True,
                              check=True).stdout.split()[-1] for mode in ("keep", "plain")]
    assert digests[0] == digests[1]
