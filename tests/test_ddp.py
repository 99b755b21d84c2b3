"""Data-parallel training on the CPU (gloo, 2 processes) against one process on
the same global batch: same loss curve and weights within floating-point
tolerance; and `srlrfr train` relaunching itself under torchrun when train.gpus > 1."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from srlrfr.models.srnet import load_srnet
from srlrfr.training import RunControl, TrainOptions, train_srnet
from srlrfr.training.ddp import torchrun_command

REPO = Path(__file__).resolve().parents[1]
OPTIONS = dict(batch_size=4, iterations=6, log_every=1, checkpoint_every=3, seed=5, lr=1e-3)


def crops(n: int = 8) -> np.ndarray:
    small = np.random.default_rng(1).integers(0, 256, (n, 7, 6, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 16, axis=1), 16, axis=2)


def train_once(out_dir: Path) -> Path:
    torch.set_num_threads(1)
    return train_srnet(crops(), fnet=None, lam=0.0, out_dir=out_dir, srnet={"type": "edsr", "n_blocks": 2,
                       "n_feats": 8}, options=TrainOptions(**OPTIONS), control=RunControl(device="cpu", progress=False))


def _rank(rank: int, world: int, init: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        train_once(Path(out_dir))
    finally:
        dist.destroy_process_group()


def losses(out_dir: Path) -> pd.DataFrame:
    return pd.read_csv(out_dir / "train_log.csv")


def assert_same_training(a: Path, b: Path) -> None:
    la, lb = losses(a.parent), losses(b.parent)
    assert list(la["step"]) == list(lb["step"]) == list(range(1, OPTIONS["iterations"] + 1))
    np.testing.assert_allclose(la["loss_total"], lb["loss_total"], rtol=1e-5)
    ma, mb = load_srnet(a)[0].state_dict(), load_srnet(b)[0].state_dict()
    for k in ma:
        torch.testing.assert_close(ma[k], mb[k], rtol=1e-4, atol=1e-6, msg=k)


def test_ddp_two_gloo_processes_match_one_process(tmp_path):
    single = train_once(tmp_path / "single")
    mp.spawn(_rank, args=(2, f"file://{tmp_path / 'rendezvous'}", str(tmp_path / "ddp")), nprocs=2, join=True)
    assert_same_training(single, tmp_path / "ddp" / "model.pt")
    assert load_srnet(tmp_path / "ddp" / "model.pt")[1]["meta"]["trained_on"] == "2 x cpu (DDP)"
    # the update is not trivially equal: a different batch gives different weights
    assert not torch.equal(load_srnet(single)[0].conv1.weight,
                           load_srnet(train_srnet(crops()[::-1].copy(), fnet=None, lam=0.0, out_dir=tmp_path / "other",
                                                  srnet={"type": "edsr", "n_blocks": 2, "n_feats": 8},
                                                  options=TrainOptions(**OPTIONS),
                                                  control=RunControl(device="cpu", progress=False)))[0].conv1.weight)


def test_batch_must_split_over_the_processes(tmp_path):
    opts = TrainOptions(**{**OPTIONS, "batch_size": 3})
    with pytest.raises(ValueError, match="does not split over 2"):
        opts.check(0.0, None, None, world=2)


def test_torchrun_command_shares_the_threads():
    cmd = torchrun_command(4, ["train", "--threads", "8", "--lam", "0"])
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4"]
    assert cmd[5:] == ["-m", "srlrfr", "train", "--threads", "2", "--lam", "0"]


def test_srlrfr_train_relaunches_under_torchrun(tmp_path):
    """The CLI path: train.gpus = 2 on the CPU runs two gloo processes and matches train.gpus = 1."""
    from srlrfr.config import validate
    from srlrfr.steps.degrade import degrade
    from srlrfr.steps.train import train
    from srlrfr.storage import IMAGES, write_npy
    from srlrfr.training import PYRAMID_FACTORS
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    with write_npy(aligned / IMAGES, crops().shape) as w:
        w.write(crops())
    degrade(aligned, PYRAMID_FACTORS, "cv2_bicubic", tmp_path / "degraded")
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    settings = {"train": {"srnet": {"type": "edsr", "n_blocks": 2, "n_feats": 8}, "device": "cpu", **OPTIONS}}
    single = train(aligned, tmp_path / "degraded", validate(settings), lam=0.0, fnet_weights=None,
                   out_dir=tmp_path / "gpus1")
    settings["train"]["gpus"] = 2
    proc = subprocess.run([sys.executable, "-m", "srlrfr", "train", "--settings", json.dumps(settings),
                           "--threads", "2", "--aligned", str(aligned), "--degraded", str(tmp_path / "degraded"),
                           "--lam", "0", "--out-dir", str(tmp_path / "gpus2")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch.distributed.run" in proc.stderr  # relaunched itself
    ddp = tmp_path / "gpus2" / "model.pt"
    assert load_srnet(ddp)[1]["meta"]["trained_on"] == "2 x cpu (DDP)"
    assert (tmp_path / "gpus2" / "losses.csv").is_file()
    assert_same_training(single, ddp)
