"""``train_srnet``: one SRNet for one identity-loss weight, run by a small ``Trainer``.

loss = pixel(SR, target) + lam * identity (registered losses, srlrfr.training.losses: L1 and
cosine by default); Adam with step decay; data order a pure function of (seed, step) and every
random state checkpointed, so runs are resumable and (on the CPU) bit-for-bit deterministic.
Batches are prepared ahead of the step (srlrfr.training.batches).

Data parallel: when ``torch.distributed`` is initialised (``srlrfr train``
under torchrun, see srlrfr.training.ddp), each of the W processes draws the
same global batch and trains on its 1/W slice; DDP averages the gradients, so
the updates are those of one process on the whole batch, up to floating-point
rounding. Rank 0 alone writes the log, checkpoints and the model.

The trainer's stages, each a method: ``data`` (the batch stream), ``step`` (forward, losses,
update), ``log`` (loss log, progress bar) and ``checkpoint`` (resumable state); ``train`` strings
them together and ``finish`` writes the model.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from tqdm.auto import tqdm

from ..device import resolve_device
from ..faults import pause_point
from ..models.fnet import FaceRecognizer
from ..models.srnet import build_srnet, save_srnet
from . import checkpoint as ckpt
from .batches import BatchStream, Placement, to_device
from .hr_features import hr_feature_table
from .losses import ROLES, UPSAMPLE_MODES, loss_class
from .pyramid import SR_SCALE, BatchSampler, PyramidData

log = logging.getLogger(__name__)

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CONFIG_VERSION = 1
DEFAULT_LOSSES = {"pixel": "l1", "identity": "cosine"}  # the paper's (params schema: train.losses)


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
    losses: dict = field(default_factory=dict)  # role -> registered loss (srlrfr.training.losses)

    def __post_init__(self):
        object.__setattr__(self, "losses", {**DEFAULT_LOSSES, **self.losses})  # a term left out: the paper's

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
        unknown = sorted(set(self.losses) - set(ROLES))
        if unknown:
            raise ValueError(f"train.losses: unknown term {unknown[0]!r}; the terms are {', '.join(ROLES)}")
        for role in ROLES:
            loss_class(self.losses[role], role)
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
            **({} if _losses_used(opts, lam) == _losses_used(TrainOptions(), lam) else
               {"losses": _losses_used(opts, lam)}),  # the paper's: as before train.losses, so older checkpoints resume
            "data": {"n": len(data), "usable": len(data.usable), "hw": list(data.size), "sha256": data.fingerprint()}}


@dataclass
class RunControl:
    """How a run is driven, not what it learns: nothing here enters the run config.

    ``step_callback(step, losses)`` runs after every step (monitoring, tests; under DDP give it
    on every rank or none). ``stats``, if given, receives steps, seconds and the seconds spent
    waiting for data. ``stale_checkpoint``: what to do with a checkpoint of another run
    (srlrfr.training.checkpoint.STALE_POLICIES).
    """
    device: str | torch.device = "auto"
    progress: bool = True
    stale_checkpoint: str = "error"
    step_callback: Callable[[int, dict[str, float]], None] | None = None
    stats: dict | None = None


@dataclass
class RunSpec:
    """What one run trains: the data, the SRNet's spec, the FNet and lambda of the identity term."""
    data: PyramidData
    srnet_type: str
    srnet_kwargs: dict
    fnet: FaceRecognizer | None
    lam: float
    kernel: str


def _losses_used(opts: TrainOptions, lam: float) -> dict[str, str | None]:
    return {"pixel": opts.losses["pixel"], "identity": opts.losses["identity"] if lam > 0 else None}


def train_srnet(data: PyramidData | np.ndarray, *, fnet: FaceRecognizer | None, lam: float,
                out_dir: str | os.PathLike, srnet: dict | None = None, options: TrainOptions = TrainOptions(),
                kernel: str = "cv2_bicubic", control: RunControl | None = None) -> Path:
    """Train an SRNet; returns ``out_dir/model.pt``.

    ``data``: the training pyramid, or uint8 crops (N, H, W, 3) whose levels
    are then built here with ``kernel`` (plain downsampling). ``srnet``: ``{"type": name, **kwargs}``
    of a registered SRNet (default EDSR). ``fnet`` may be None when lam == 0.
    Resumes from ``out_dir/checkpoint.pt`` when its run config matches.
    """
    if not isinstance(data, PyramidData):
        data = PyramidData.from_images(data, kernel)
    spec = dict(srnet or {"type": "edsr"})
    srnet_type = spec.pop("type")
    run = RunSpec(data, srnet_type, spec, fnet, float(lam), kernel)
    return Trainer(run, options, Path(out_dir), control or RunControl()).train()


class Trainer:
    """One run's model, optimiser and generators, and its stages: data, step, log, checkpoint."""

    def __init__(self, run: RunSpec, options: TrainOptions, out_dir: Path, control: RunControl):
        self.run, self.opt, self.out_dir, self.control = run, options, out_dir, control
        self.rank, self.world = _distributed()
        if self.rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
        self.model, self.kwargs = self._build_model()
        options.check(run.lam, run.fnet, run.data, self.world)
        self.dev = resolve_device(str(control.device))
        self.config = _run_config(run.srnet_type, self.kwargs, run.kernel, run.lam, run.fnet, options, run.data)
        self._setup_networks()
        self._setup_optimiser()
        self.start = self._resume()
        self.net = self.model
        if self.world > 1:  # gradients averaged over the ranks during backward
            ids = [self.dev.index] if self.dev.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.losses: dict[str, Any] = {}

    def _build_model(self) -> tuple[torch.nn.Module, dict]:
        with torch.random.fork_rng(devices=[]):  # init from the seed, caller's RNG untouched
            torch.manual_seed(self.opt.seed)
            model, kwargs = build_srnet(self.run.srnet_type, self.run.srnet_kwargs)
        if int(getattr(model, "scale", SR_SCALE)) != SR_SCALE:
            raise ValueError(f"the training scheme maps 1/2^k -> 1/2^(k-2) (x{SR_SCALE}); "
                             f"the SRNet has scale {model.scale}")
        return model, kwargs

    def _setup_networks(self) -> None:
        """The SRNet (and FNet) on the device, channels-last: the layout oneDNN and cuDNN convolutions
        run fastest in (bench_train.py); the registered losses; the HR feature cache."""
        run, opt = self.run, self.opt
        self.model.to(self.dev, memory_format=torch.channels_last).train()
        self.pixel_loss = loss_class(opt.losses["pixel"], "pixel")()
        self.identity_loss, self.hr_features = None, None
        if run.lam > 0:
            run.fnet.freeze().to(self.dev, memory_format=torch.channels_last)
            self.identity_loss = loss_class(opt.losses["identity"], "identity")(run.fnet, opt.identity_upsample)
            if opt.cache_hr_features:
                self.hr_features = hr_feature_table(run.fnet, run.data, self.dev,
                                                    progress=self.control.progress and self.rank == 0)

    def _setup_optimiser(self) -> None:
        opt = self.opt
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=opt.lr, betas=tuple(opt.betas))
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=opt.lr_step, gamma=opt.lr_gamma)
        self.scaler = torch.amp.GradScaler(self.dev.type, enabled=opt.amp == "fp16")
        self.np_rng = np.random.default_rng(opt.seed)  # scale k per step
        self.torch_rng = torch.Generator().manual_seed(opt.seed)  # flips per sample
        self.amp_dtype = AMP_DTYPES[opt.amp]

    def _resume(self) -> int:
        """The step to go on from: that of a checkpoint of this same run, else 0."""
        state = _load_state(self.out_dir, self.config, self.control.stale_checkpoint, self.rank)
        if state is None:
            return 0
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.np_rng.bit_generator.state = state["np_rng"]
        self.torch_rng.set_state(state["torch_rng"])
        log.info("resuming %s from step %d", self.out_dir, int(state["step"]))
        return int(state["step"])

    # -- data -------------------------------------------------------------------------------------
    def data(self) -> BatchStream:
        """This rank's batches for the steps still to run."""
        data, opt = self.run.data, self.opt
        if self.rank == 0:
            log.info("training on %d of %d crops; %d dropped (no face or unreadable)", len(data.usable), len(data),
                     data.dropped)
        sampler = BatchSampler(len(data.usable), opt.batch_size, opt.seed)  # positions in data.usable
        part = opt.batch_size // self.world
        placement = Placement(shard=slice(self.rank * part, (self.rank + 1) * part), pin=self.dev.type == "cuda",
                              depth=opt.prefetch)
        return BatchStream(data, sampler, self.np_rng, self.torch_rng, steps=range(self.start + 1, opt.iterations + 1),
                           identity=self.run.lam > 0, hr_features=self.hr_features, placement=placement)

    # -- step -------------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.dev.type, dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()

    def _hr_features(self, batch: dict[str, Tensor]) -> Tensor:
        if "hr_features" in batch:
            return batch["hr_features"]
        with torch.no_grad():
            return self.run.fnet(batch["hr"])

    def step(self, batch: dict[str, Tensor]) -> dict[str, Any]:
        """One update on a host batch (srlrfr.training.batches); the losses stay on the device."""
        batch = to_device(batch, self.dev)
        with self._autocast():
            sr = self.net(batch["input"])
            loss_pixel = self.pixel_loss(sr, batch["target"])
            loss_id = None
            loss = loss_pixel
            if self.identity_loss is not None:
                loss_id = self.identity_loss(sr, self._hr_features(batch))
                loss = loss_pixel + self.run.lam * loss_id
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return {"lr": lr, "pixel": loss_pixel, "identity": loss_id, "total": loss}

    # -- log --------------------------------------------------------------------------------------
    def log(self, step: int, out: dict[str, Any], losslog: ckpt.LossLog | None, bar: tqdm) -> None:
        """Every log_every steps: the mean losses into the log and the bar (every step for a callback)."""
        if step % self.opt.log_every == 0 or self.control.step_callback is not None:
            self.losses = _mean_over_ranks(out, self.world)
        if self.rank == 0 and step % self.opt.log_every == 0:
            losslog.write(step, out["lr"], self.losses)
            ident = self.losses["loss_identity"]
            bar.set_postfix(pix=f"{self.losses['loss_pixel']:.4f}",
                            id="-" if ident is None else f"{ident:.4f}", lr=f"{out['lr']:.1e}")
        bar.update(1)

    # -- checkpoint -------------------------------------------------------------------------------
    def checkpoint(self, step: int, rng_state: dict, losslog: ckpt.LossLog) -> None:
        """The log so far, then the whole state after ``step`` (``rng_state``: the generators' after its draw)."""
        losslog.sync()
        ckpt.save_state(self.out_dir, {"config": self.config, "step": step, "model": self.model.state_dict(),
                                       "optimizer": self.optimizer.state_dict(),
                                       "scheduler": self.scheduler.state_dict(),
                                       "scaler": self.scaler.state_dict(), **rng_state})
        pause_point("train:checkpoint")

    # -- the run ----------------------------------------------------------------------------------
    def train(self) -> Path:
        """Every step still to run, then the model; returns ``out_dir/model.pt``."""
        losslog = ckpt.LossLog(self.out_dir / ckpt.LOG, resume_step=self.start) if self.rank == 0 else None
        stream = self.data()
        began = time.perf_counter()
        try:
            with deterministic_cpu(self.dev):
                self._loop(stream, losslog)
        finally:
            stream.close()
            if losslog is not None:
                losslog.close()
        self._record_time(time.perf_counter() - began, stream.wait_s)
        return self.finish()

    def _loop(self, stream: BatchStream, losslog: ckpt.LossLog | None) -> None:
        opt, run, callback = self.opt, self.run, self.control.step_callback
        watch = _FiniteWatch(self.model, self.dev, opt, self.world,
                             _divergence_hint(opt, run.srnet_type, self.kwargs))
        with tqdm(total=opt.iterations, initial=self.start, disable=not self.control.progress or self.rank != 0,
                  desc=f"train {run.srnet_type} lam={run.lam:g}", unit="it") as bar:
            for step in range(self.start + 1, opt.iterations + 1):
                draw, batch = stream.next()
                out = self.step(batch)
                watch.after(step, out["total"])
                self.log(step, out, losslog, bar)
                if self.rank == 0 and (step % opt.checkpoint_every == 0 or step == opt.iterations):
                    self.checkpoint(step, draw.rng_state, losslog)
                if callback is not None:
                    callback(step, self.losses)

    def _record_time(self, elapsed: float, wait_s: float) -> None:
        steps = self.opt.iterations - self.start
        if steps:
            log.info("%d steps in %.1f s (%.2f steps/s); waiting for data %.1f%% of it", steps, elapsed,
                     steps / elapsed, 100 * wait_s / max(elapsed, 1e-9))
        if self.control.stats is not None:
            self.control.stats.update(steps=steps, seconds=elapsed, data_wait_seconds=wait_s)

    def finish(self) -> Path:
        """Rank 0 writes model.pt with what made it."""
        if self.rank != 0:
            return self.out_dir / "model.pt"
        run, opt, fnet, lam = self.run, self.opt, self.run.fnet, self.run.lam
        meta = {"lambda": lam, "iterations": int(opt.iterations), "fnet": fnet.name if lam > 0 else None,
                "fnet_weights": fnet.source if lam > 0 else None, "seed": int(opt.seed), "kernel": run.kernel,
                "degradation": run.data.degradation,
                "batch_size": int(opt.batch_size), "lr": float(opt.lr), "lr_step": int(opt.lr_step),
                "lr_gamma": float(opt.lr_gamma), "identity_upsample": opt.identity_upsample, "amp": opt.amp,
                "losses": _losses_used(opt, lam), "data_sha256": self.config["data"]["sha256"],
                "n_images": len(run.data), "n_dropped": run.data.dropped,
                "trained_on": str(self.dev) if self.world == 1 else f"{self.world} x {self.dev.type} (DDP)"}
        return save_srnet(self.out_dir / "model.pt", self.model, run.srnet_type, self.kwargs, channel_order="rgb",
                          meta=meta)


@contextlib.contextmanager
def deterministic_cpu(dev: torch.device):
    """On the CPU: torch's deterministic algorithms, without its NaN fill of every fresh tensor.

    That fill (``torch.utils.deterministic.fill_uninitialized_memory``) only shows a kernel that
    reads memory it never wrote; none in the step does (runs and resumed runs are bit-identical,
    tests/test_train.py), and it cost 8% of a step (12,000 fills, profiled with bench_train's
    dlib preset). The caller's settings come back afterwards.
    """
    if dev.type != "cpu":
        yield
        return
    det = torch.utils.deterministic
    was = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
           det.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True, warn_only=True)
    det.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was[0], warn_only=was[1])
        det.fill_uninitialized_memory = was[2]


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
