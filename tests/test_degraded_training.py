"""Training under a degradation model: the SRNet sees degraded inputs and is scored against
clean targets; the pyramid on disk trains the same model as the one built in memory; the
degradation reaches the model's metadata, and a stale pyramid is refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from srlrfr import config
from srlrfr.models.base import SRNetSpec
from srlrfr.models.srnet import load_srnet, to_tensor
from srlrfr.models.srnets.edsr import EDSR
from srlrfr.registry import SRNETS
from srlrfr.training import PyramidData, RunControl, TrainOptions, train_srnet
from srlrfr.training import losses as losses_module

torch.set_num_threads(1)
NOISY = {"type": "down_noise", "noise_sigma": 25.0}


@pytest.fixture(scope="module")
def hr_images() -> np.ndarray:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (5, 7, 6, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 16, axis=1), 16, axis=2)


def train(data, out_dir, iterations=3, srnet=None):
    return train_srnet(data, fnet=None, lam=0.0, out_dir=out_dir, srnet=srnet or {"type": "edsr", "n_blocks": 1,
                                                                                   "n_feats": 4},
                       options=TrainOptions(batch_size=3, iterations=iterations, checkpoint_every=100, log_every=1,
                                            seed=4), control=RunControl(device="cpu", progress=False))


class InputRecordingEDSR(EDSR):
    inputs: list[torch.Tensor] = []

    def forward(self, x):
        InputRecordingEDSR.inputs.append(x.detach().clone())
        return super().forward(x)


def _orientation(batch: torch.Tensor, rows: np.ndarray) -> list[int | None]:
    """Per sample: 0 if it equals its row, 1 if it equals the mirrored row, None if neither."""
    ref = to_tensor(rows)
    return [0 if torch.equal(b, r) else 1 if torch.equal(b, r.flip(-1)) else None for b, r in zip(batch, ref)]


def test_inputs_are_degraded_levels_and_targets_are_clean(hr_images, tmp_path, monkeypatch):
    data = PyramidData.from_images(hr_images, "cv2_bicubic", NOISY, seed=2)
    if "edsr_input_probe" not in SRNETS:
        SRNETS.register("edsr_input_probe", SRNetSpec("edsr_input_probe", InputRecordingEDSR, scale=4,
                                                      defaults={"n_blocks": 1, "n_feats": 4}))
    targets: list[torch.Tensor] = []
    real_l1 = losses_module.F.l1_loss

    def recording_l1(sr, target):
        targets.append(target.detach().clone())
        return real_l1(sr, target)

    monkeypatch.setattr(losses_module.F, "l1_loss", recording_l1)
    InputRecordingEDSR.inputs = []
    train(data, tmp_path, iterations=12, srnet={"type": "edsr_input_probe"})
    from srlrfr.training import BatchSampler
    sampler = BatchSampler(len(data), 3, 4)
    factors = set()
    for step, (x, t) in enumerate(zip(InputRecordingEDSR.inputs, targets)):
        idx = sampler.indices(step)
        f = data.size[0] // x.shape[-2]
        factors.add(f)
        seen = _orientation(x, data.inputs[f].take(idx))
        assert None not in seen, f"step {step + 1}: inputs are not the degraded 1/{f} level"
        assert _orientation(t, data.levels[f // 4].take(idx)) == seen, f"step {step + 1}: targets not clean"
        assert None in _orientation(x, data.levels[f].take(idx))  # the degradation did change the inputs
    assert factors == {4, 8, 16}


def test_pyramid_on_disk_trains_like_the_one_in_memory(hr_images, tmp_path):
    import pandas as pd

    from srlrfr.steps.degrade import degrade
    from srlrfr.storage import write_npy
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    with write_npy(aligned / "images.npy", hr_images.shape) as w:
        w.write(hr_images)
    pd.DataFrame({"image_id": [f"{k:06d}.jpg" for k in range(len(hr_images))], "status": "ok",
                  "landmark_ok": True}).to_csv(aligned / "faces.csv", index=False)
    degrade(aligned, [2, 4, 8, 16], "cv2_bicubic", tmp_path / "degraded", model=NOISY, seed=2, inputs=[4, 8, 16])
    disk = PyramidData.open(aligned, tmp_path / "degraded")
    memory = PyramidData.from_images(hr_images, "cv2_bicubic", NOISY, seed=2)
    a, b = train(disk, tmp_path / "disk"), train(memory, tmp_path / "memory")
    for va, vb in zip(load_srnet(a)[0].state_dict().values(), load_srnet(b)[0].state_dict().values()):
        assert torch.equal(va, vb)
    plain = train(hr_images, tmp_path / "plain")
    assert not torch.equal(load_srnet(plain)[0].conv1.weight, load_srnet(a)[0].conv1.weight)
    meta = load_srnet(a)[1]["meta"]
    assert meta["degradation"] == {"model": {**NOISY}, "kernel": "cv2_bicubic", "seed": 2}
    assert load_srnet(plain)[1]["meta"]["degradation"]["model"] == {"type": "resize"}


def test_train_step_refuses_a_pyramid_made_with_another_degradation(hr_images, tmp_path):
    from srlrfr.steps.train import check_degradation
    cfg = config.validate({"degrade": {"model": NOISY, "seed": 2}})
    check_degradation({"model": NOISY, "kernel": "cv2_bicubic", "seed": 2}, cfg, "deg")
    with pytest.raises(ValueError, match="rerun its degrade step"):
        check_degradation({"model": NOISY, "kernel": "cv2_bicubic", "seed": 3}, cfg, "deg")
    with pytest.raises(ValueError, match="rerun its degrade step"):
        check_degradation(None, cfg, "deg")  # a folder from before degradation models: plain
