"""``train_srnet``: one SRNet for one identity-loss weight.

loss = L1(SR, target) + lam * identity_loss; Adam with step decay; data order
a pure function of (seed, step) and every random state checkpointed, so runs
are resumable and (on the CPU) bit-for-bit deterministic. Batches are prepared
ahead of the step (srlrfr.training.batches).

Data parallel: when ``torch.distributed`` is initialised (``srlrfr train``
under torchrun, see srlrfr.training.ddp), each of the W processes draws the
same global batch and trains on its 1/W slice; DDP averages the gradients, so
the updates are those of one process on the whole batch, up to floating-point
rounding. Rank 0 alone writes the log, checkpoints and the model.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ..device import resolve_device
from ..faults import pause_point
from ..models.fnet import FaceRecognizer
from ..models.srnet import build_srnet, save_srnet
from . import checkpoint as ckpt
from .batches import BatchStream, to_device
from .hr_features import hr_feature_table
from .losses import UPSAMPLE_MODES, identity_loss
from .pyramid import SR_SCALE, BatchSampler, PyramidData

log = logging.getLogger(__name__)

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CONFIG_VERSION = 1


@dataclass(frozen=True)
class TrainOptions:
    """The optimisation settings of one run (params.yaml ``train``, less the SRNet and device)."""
    batch_size: int = 64
    iterations: int = 50_000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    lr_step: int = 25_000
    lr_gamma: float = 0.5
    identity_upsample: str = "bilinear"
    amp: str = "none"
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 50
    prefetch: int = 2  # batches prepared ahead (0: in the main thread); results do not depend on it
    cache_hr_features: bool = True  # FNet(HR) once per crop and flip (srlrfr.training.hr_features)

    @classmethod
    def from_params(cls, train: dict) -> "TrainOptions":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in train.items() if k in names})

    def check(self, lam: float, fnet: FaceRecognizer | None, data: PyramidData, world: int = 1) -> None:
        if self.batch_size % world:
            raise ValueError(f"batch_size {self.batch_size} does not split over {world} data-parallel processes "
                             f"(train.gpus): make it a multiple of {world}")
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {self.amp!r}")
        if self.identity_upsample not in UPSAMPLE_MODES:
            raise ValueError(f"identity_upsample must be one of {UPSAMPLE_MODES}, got {self.identity_upsample!r}")
        if lam > 0:
            if not isinstance(fnet, FaceRecognizer):
                raise ValueError(f"lam = {lam} > 0 needs fnet (a FaceRecognizer, see load_fnet), "
                                 f"got {type(fnet).__name__}")
            if data.size != fnet.geometry.size:
                raise ValueError(f"crops are {data.size[0]}x{data.size[1]} but FNet {fnet.name} wants geometry "
                                 f"{fnet.geometry.name} ({fnet.geometry.height}x{fnet.geometry.width})")


class TrainingDiverged(RuntimeError):
    """A NaN or infinite loss (or weights): the run stops and writes no model.pt."""


class _FiniteWatch:
    """Notices a non-finite loss without a device sync per step: the first bad step stays on the
    device and is read where the loop syncs anyway (log and checkpoint steps, the last step), before
    anything is logged or saved. The weights are checked there too (the last step's loss cannot show
    what its update did)."""

    def __init__(self, model: torch.nn.Module, dev: torch.device, opt: "TrainOptions", world: int, hint: str):
        self.model, self.opt, self.world, self.hint = model, opt, world, hint
        self.none = opt.iterations + 1  # no bad step yet
        self.first = torch.full((), self.none, dtype=torch.long, device=dev)

    def after(self, step: int, loss: Tensor) -> None:
        self.first = torch.where(torch.isfinite(loss.detach()), self.first, self.first.clamp(max=step))
        opt = self.opt
        if step % opt.log_every == 0 or step % opt.checkpoint_every == 0 or step == opt.iterations:
            self._check(step)

    def _check(self, step: int) -> None:
        first = self.first.clone()
        if self.world > 1:  # the same steps on every rank: all stop together
            dist.all_reduce(first, op=dist.ReduceOp.MIN)
        if int(first) != self.none:
            raise TrainingDiverged(f"training diverged at step {int(first)}: the loss is NaN or infinite. "
                                   f"{self.hint}")
        if not torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all():
            raise TrainingDiverged(f"training diverged by step {step}: the SRNet's weights are NaN or infinite. "
                                   f"{self.hint}")


def _divergence_hint(opt: "TrainOptions", srnet_type: str, kwargs: dict) -> str:
    """What to change: the step size, the precision, and the residual scaling of the SRNet."""
    scale = f"res_scale ({kwargs['res_scale']})" if "res_scale" in kwargs else f"kwargs ({kwargs})"
    return (f"Nothing was saved as model.pt. Look at train.lr ({opt.lr:g}; lower it), train.amp ({opt.amp}; "
            f"'none' computes in fp32) and the SRNet's {scale} in train.srnet (type {srnet_type})")


def _run_config(srnet_type: str, kwargs: dict, kernel: str, lam: float, fnet, opts: TrainOptions,
                data: PyramidData) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed."""
    return {"version": CONFIG_VERSION, "arch": srnet_type, "arch_kwargs": kwargs, "kernel": kernel,
            "degradation": data.degradation, "lam": lam,
            "fnet": fnet.name if lam > 0 else None, "batch_size": int(opts.batch_size),
            "iterations": int(opts.iterations), "lr": float(opts.lr), "betas": [float(b) for b in opts.betas],
            "lr_step": int(opts.lr_step), "lr_gamma": float(opts.lr_gamma),
            "identity_upsample": opts.identity_upsample, "amp": opts.amp, "seed": int(opts.seed),
            "data": {"n": len(data), "usable": len(data.usable), "hw": list(data.size), "sha256": data.fingerprint()}}


def train_srnet(data: PyramidData | np.ndarray, *, fnet: FaceRecognizer | None, lam: float,
                out_dir: str | os.PathLike, srnet: dict | None = None, options: TrainOptions = TrainOptions(),
                kernel: str = "cv2_bicubic", device: str | torch.device = "auto", progress: bool = True,
                stale_checkpoint: str = "error",
                step_callback: Callable[[int, dict[str, float]], None] | None = None,
                stats: dict | None = None) -> Path:
    """Train an SRNet; returns ``out_dir/model.pt``.

    ``data``: the training pyramid, or uint8 crops (N, H, W, 3) whose levels
    are then built here with ``kernel`` (plain downsampling). ``srnet``: ``{"type": name, **kwargs}``
    of a registered SRNet (default EDSR). ``fnet`` may be None when lam == 0.
    Resumes from ``out_dir/checkpoint.pt`` when its run config matches.
    ``step_callback(step, losses)`` runs after every step (monitoring, tests;
    under DDP give it on every rank or none). ``stats``, if given, receives
    steps, seconds and the seconds spent waiting for data.
    """
    out_dir = Path(out_dir)
    rank, world = _distributed()
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    lam = float(lam)
    if not isinstance(data, PyramidData):
        data = PyramidData.from_images(data, kernel)
    srnet = dict(srnet or {"type": "edsr"})
    srnet_type = srnet.pop("type")
    with torch.random.fork_rng(devices=[]):  # init from the seed, caller's RNG untouched
        torch.manual_seed(options.seed)
        model, kwargs = build_srnet(srnet_type, srnet)
    if int(getattr(model, "scale", SR_SCALE)) != SR_SCALE:
        raise ValueError(f"the training scheme maps 1/2^k -> 1/2^(k-2) (x{SR_SCALE}); "
                         f"the SRNet has scale {model.scale}")
    options.check(lam, fnet, data, world)
    dev = resolve_device(str(device))
    config = _run_config(srnet_type, kwargs, kernel, lam, fnet, options, data)

    # channels-last: the layout oneDNN and cuDNN convolutions run fastest in (bench_train.py)
    model.to(dev, memory_format=torch.channels_last).train()
    hr_features = None
    if lam > 0:
        fnet.freeze().to(dev, memory_format=torch.channels_last)
        if options.cache_hr_features:
            hr_features = hr_feature_table(fnet, data, dev, progress=progress and rank == 0)
    opt = options
    optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr, betas=tuple(opt.betas))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=opt.lr_step, gamma=opt.lr_gamma)
    scaler = torch.amp.GradScaler(dev.type, enabled=opt.amp == "fp16")
    np_rng = np.random.default_rng(opt.seed)  # scale k per step
    torch_rng = torch.Generator().manual_seed(opt.seed)  # flips per sample

    start, state = 0, _load_state(out_dir, config, stale_checkpoint, rank)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        np_rng.bit_generator.state = state["np_rng"]
        torch_rng.set_state(state["torch_rng"])
        start = int(state["step"])
        log.info("resuming %s from step %d", out_dir, start)
    net = model
    if world > 1:  # gradients averaged over the ranks during backward
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    losslog = ckpt.LossLog(out_dir / ckpt.LOG, resume_step=start) if rank == 0 else None
    if rank == 0:
        log.info("training on %d of %d crops; %d dropped (no face or unreadable)", len(data.usable), len(data),
                 data.dropped)
    sampler = BatchSampler(len(data.usable), opt.batch_size, opt.seed)  # positions in data.usable
    part = opt.batch_size // world
    stream = BatchStream(data, sampler, np_rng, torch_rng, first=start + 1, last=opt.iterations, identity=lam > 0,
                         shard=slice(rank * part, (rank + 1) * part), pin=dev.type == "cuda", depth=opt.prefetch,
                         hr_features=hr_features)
    amp_dtype = AMP_DTYPES[opt.amp]
    watch = _FiniteWatch(model, dev, opt, world, _divergence_hint(opt, srnet_type, kwargs))

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()

    def one_step(batch: dict[str, Tensor]) -> dict[str, Any]:
        batch = to_device(batch, dev)
        with autocast():
            sr = net(batch["input"])
            loss_pixel = F.l1_loss(sr.float(), batch["target"])
            loss_id = None
            loss = loss_pixel
            if lam > 0:
                if "hr_features" in batch:
                    hr_feat = batch["hr_features"]
                else:
                    with torch.no_grad():
                        hr_feat = fnet(batch["hr"])
                loss_id = identity_loss(fnet, sr, hr_feat, opt.identity_upsample)
                loss = loss_pixel + lam * loss_id
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        return {"lr": lr, "pixel": loss_pixel, "identity": loss_id, "total": loss}

    def save_checkpoint(step: int, rng_state: dict) -> None:
        losslog.sync()
        ckpt.save_state(out_dir, {"config": config, "step": step, "model": model.state_dict(),
                                  "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                  "scaler": scaler.state_dict(), **rng_state})
        pause_point("train:checkpoint")

    was_det = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    losses: dict[str, Any] = {}
    began = time.perf_counter()
    try:
        with tqdm(total=opt.iterations, initial=start, disable=not progress or rank != 0,
                  desc=f"train {srnet_type} lam={lam:g}", unit="it") as bar:
            for step in range(start + 1, opt.iterations + 1):
                draw, batch = stream.next()
                out = one_step(batch)
                watch.after(step, out["total"])
                if step % opt.log_every == 0 or step_callback is not None:
                    losses = _mean_over_ranks(out, world)
                if rank == 0 and step % opt.log_every == 0:
                    losslog.write(step, out["lr"], losses)
                    ident = losses["loss_identity"]
                    bar.set_postfix(pix=f"{losses['loss_pixel']:.4f}",
                                    id="-" if ident is None else f"{ident:.4f}", lr=f"{out['lr']:.1e}")
                bar.update(1)
                if rank == 0 and (step % opt.checkpoint_every == 0 or step == opt.iterations):
                    save_checkpoint(step, draw.rng_state)
                if step_callback is not None:
                    step_callback(step, losses)
    finally:
        stream.close()
        if losslog is not None:
            losslog.close()
        if dev.type == "cpu":
            torch.use_deterministic_algorithms(was_det, warn_only=was_warn)
    elapsed = time.perf_counter() - began
    steps = opt.iterations - start
    if steps:
        log.info("%d steps in %.1f s (%.2f steps/s); waiting for data %.1f%% of it", steps, elapsed,
                 steps / elapsed, 100 * stream.wait_s / max(elapsed, 1e-9))
    if stats is not None:
        stats.update(steps=steps, seconds=elapsed, data_wait_seconds=stream.wait_s)

    meta = {"lambda": lam, "iterations": int(opt.iterations), "fnet": fnet.name if lam > 0 else None,
            "fnet_weights": fnet.source if lam > 0 else None, "seed": int(opt.seed), "kernel": kernel,
            "degradation": data.degradation,
            "batch_size": int(opt.batch_size), "lr": float(opt.lr), "lr_step": int(opt.lr_step),
            "lr_gamma": float(opt.lr_gamma), "identity_upsample": opt.identity_upsample, "amp": opt.amp,
            "data_sha256": config["data"]["sha256"], "n_images": len(data), "n_dropped": data.dropped,
            "trained_on": str(dev) if world == 1 else f"{world} x {dev.type} (DDP)"}
    if rank != 0:
        return out_dir / "model.pt"
    return save_srnet(out_dir / "model.pt", model, srnet_type, kwargs, channel_order="rgb", meta=meta)


def _distributed() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless torch.distributed is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _load_state(out_dir: Path, config: dict, stale: str, rank: int) -> dict | None:
    """Rank 0 decides (and may set a stale checkpoint aside) before the others look."""
    if rank == 0:
        state = ckpt.load_resumable(out_dir, config, stale)
    if _distributed()[1] > 1:
        dist.barrier()
    if rank != 0:
        state = ckpt.load_resumable(out_dir, config, "error")
    return state


def _mean_over_ranks(out: dict[str, Any], world: int) -> dict[str, Any]:
    """The step's losses as floats, averaged over the ranks (each the mean of its equal slice)."""
    names = {"loss_pixel": "pixel", "loss_total": "total"} | ({"loss_identity": "identity"}
                                                              if out["identity"] is not None else {})
    values = torch.stack([out[v].detach().float() for v in names.values()])
    if world > 1:
        dist.all_reduce(values)
        values = values / world
    losses: dict[str, Any] = {"lr": out["lr"], "loss_identity": None}
    losses.update(zip(names, values.tolist()))
    return losses
