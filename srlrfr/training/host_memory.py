"""Freed host memory kept in the process for the next step, not handed back to the kernel.

glibc's malloc serves every block above its mmap threshold (32 MiB at most) with a fresh
mmap and unmaps it when freed. A CPU training step frees and allocates the same large
activations every step (one batch of 16 dlib crops at 160x160 with 32 channels is 52 MB),
so every step the kernel maps and zeroes them again: 40,000 minor page faults a step in
fp32 with bench_train's dlib preset, 8-13% of the step on 2 cores. With mmap off and
trimming deferred, freed blocks stay in the heap and are reused: about 1 fault a step, and
peak RSS there moved from 1298 to 1361 MB. The maths is untouched (same kernels, same
values). glibc cannot undo it (mallopt fixes a threshold for good), so the training command
calls it for its own process (srlrfr.steps.train), not ``train_srnet`` for its caller's.
"""
from __future__ import annotations

import ctypes
import logging
import platform

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's <malloc.h>
TRIM_ABOVE = 2**31 - 1  # bytes free at the heap's top before it shrinks: mallopt's largest (an int)


def keep_freed_memory() -> bool:
    """Serve large blocks from the heap and keep freed ones there (glibc only); whether it took."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False  # other allocators (macOS, musl) keep their own policies
    libc = ctypes.CDLL(None)
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    done = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE) == 1
    if not done:
        log.warning("mallopt refused; large host blocks stay mmap'ed (slower CPU training, same results)")
    return done
