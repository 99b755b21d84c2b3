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


TRAIN = textwrap.dedent("""
    import dataclasses, hashlib, sys, tempfile
    import numpy as np, torch
    from srlrfr.models.fnet import FaceRecognizer
    from srlrfr.models.fnets.sphereface import SphereFace20
    from srlrfr.registry import FNETS
    from srlrfr.training import RunControl, TrainOptions, train_srnet
    from srlrfr.training.host_memory import keep_freed_memory
    if sys.argv[1] == "keep":
        keep_freed_memory()
    torch.set_num_threads(1)
    spec = dataclasses.replace(FNETS.get("sphereface20"), feature_dim=16,
                               build=lambda: SphereFace20(widths=(4, 8, 8, 8), feature_dim=16))
    torch.manual_seed(0)
    fnet = FaceRecognizer(spec, spec.build())
    small = np.random.default_rng(0).integers(0, 256, (6, 7, 6, 3), dtype=np.uint8)
    images = np.repeat(np.repeat(small, 16, axis=1), 16, axis=2)
    with tempfile.TemporaryDirectory() as out:
        train_srnet(images, fnet=fnet, lam=0.5, out_dir=out, srnet={"type": "edsr", "n_blocks": 2, "n_feats": 8},
                    options=TrainOptions(batch_size=3, iterations=4, checkpoint_every=2, log_every=1, seed=3),
                    control=RunControl(device="cpu", progress=False))
        state = torch.load(out + "/model.pt", weights_only=False)
    digest = hashlib.sha256()
    for name, value in sorted(state["state_dict"].items()):
        digest.update(name.encode() + value.numpy().tobytes())
    print(digest.hexdigest())
""")


def test_kept_memory_trains_the_same_weights():
    """Reused (not freshly zeroed) blocks change no value: a run with and one without, bit for bit.
    The tiny run's activations (1 MB at 112x96) are over glibc's first mmap threshold (128 KiB)."""
    digests = [subprocess.run([sys.executable, "-c", TRAIN, mode], capture_output=True, text=True,
                              check=True).stdout.split()[-1] for mode in ("keep", "plain")]
    assert digests[0] == digests[1]
