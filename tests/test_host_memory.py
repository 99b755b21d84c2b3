"""srlrfr.training.host_memory: after keep_freed_memory, a large block freed and allocated again
costs no page faults (the reason it exists); without it, every allocation faults its pages in.
Each case runs in its own process: the setting is process-wide and cannot be undone."""
from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

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
