"""SRNet training with the identity-preserving loss (METHOD.md, "Training").

Each iteration draws one k in {2, 3, 4} for the whole batch: input = the
1/2^k face, pixel target = the 1/2^(k-2) face, identity target = the full
face. loss = L1(SR, target) + lam * mean(1 - cos(FNet(up(SR)), FNet(HR))),
FNet frozen but differentiable. The pyramid is built once from uint8 crops.

Runs are resumable and deterministic (on CPU): the whole state (model,
optimiser, scheduler, RNG states, step, config) is checkpointed atomically,
and data order is a pure function of (seed, step).
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import logging
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .atomic import atomic_path, save_torch
from .degrade import pyramid as build_pyramid
from .device import resolve_device
from .models.fnet import FaceRecognizer
from .models.srnet import build_srnet, save_srnet, to_tensor
from .models.weights import load_checkpoint

log = logging.getLogger(__name__)

PYRAMID_FACTORS = (1, 2, 4, 8, 16)
SCALE_EXPONENTS = (2, 3, 4)  # input 1/2^k, target 1/2^(k-2): always x4
LOG_COLUMNS = ("step", "lr", "loss_pixel", "loss_identity", "loss_total")
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
UPSAMPLE_MODES = ("bilinear", "bicubic", "nearest")
CONFIG_VERSION = 1


def data_fingerprint(images: np.ndarray, max_samples: int = 1024) -> str:
    """sha256 over the shape and an evenly strided subset of images (cheap on 200k crops)."""
    h = hashlib.sha256(repr(images.shape).encode())
    for i in np.linspace(0, len(images) - 1, num=min(len(images), max_samples)).astype(int):
        h.update(np.ascontiguousarray(images[i]).tobytes())
    return h.hexdigest()


class BatchSampler:
    """Image indices for step s: positions [s*B, (s+1)*B) of a stream of epochs,
    each epoch a permutation seeded by (seed, epoch). Stateless, so resuming
    needs only the step."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed

    @lru_cache(maxsize=4)
    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def indices(self, step: int) -> np.ndarray:
        pos = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        epochs, offsets = np.divmod(pos, self.n)
        return np.array([self._perm(int(e))[o] for e, o in zip(epochs, offsets)])


def identity_loss(fnet: FaceRecognizer, sr: Tensor, hr_features: Tensor, mode: str) -> Tensor:
    """mean(1 - cos(FNet(up(sr)), hr_features)); up resizes sr to the FNet geometry."""
    size = fnet.geometry.size
    if tuple(sr.shape[-2:]) != size:
        sr = F.interpolate(sr, size=size, mode=mode, align_corners=None if mode == "nearest" else False)
    return (1.0 - F.cosine_similarity(fnet(sr).float(), hr_features.float(), dim=1)).mean()


def _check_inputs(hr: np.ndarray, fnet: FaceRecognizer | None, lam: float, amp: str, mode: str,
                  scale: int) -> None:
    if not isinstance(hr, np.ndarray) or hr.dtype != np.uint8 or hr.ndim != 4 or hr.shape[-1] != 3:
        raise ValueError("hr_images must be a uint8 array (N, H, W, 3) of aligned RGB crops, got "
                         f"{getattr(hr, 'dtype', type(hr))} {getattr(hr, 'shape', '')}")
    if len(hr) == 0 or hr.shape[1] % 16 or hr.shape[2] % 16:
        raise ValueError(f"need >= 1 crop with H and W divisible by 16 (for the 1/16 level), got {hr.shape}")
    if scale != 4:
        raise ValueError(f"the training scheme maps 1/2^k -> 1/2^(k-2) (x4); the SRNet has scale {scale}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {amp!r}")
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"identity_upsample must be one of {UPSAMPLE_MODES}, got {mode!r}")
    if lam > 0:
        if not isinstance(fnet, FaceRecognizer):
            raise ValueError(f"lam = {lam} > 0 needs fnet (a FaceRecognizer, see load_fnet), got {type(fnet).__name__}")
        if tuple(hr.shape[1:3]) != fnet.geometry.size:
            raise ValueError(f"crops are {hr.shape[1]}x{hr.shape[2]} but FNet {fnet.name} wants geometry "
                             f"{fnet.geometry.name} ({fnet.geometry.height}x{fnet.geometry.width})")


def _check_pyramid(levels: dict[int, np.ndarray], hr: np.ndarray) -> dict[int, np.ndarray]:
    """A precomputed pyramid must hold every level at the right size, level 1 being the crops."""
    n, h, w, _ = hr.shape
    for f in PYRAMID_FACTORS:
        if f not in levels:
            raise ValueError(f"pyramid lacks level {f} (needs {PYRAMID_FACTORS}); has {sorted(levels)}")
        lv = levels[f]
        if lv.dtype != np.uint8 or lv.shape != (n, h // f, w // f, 3):
            raise ValueError(f"pyramid level {f}: expected uint8 {(n, h // f, w // f, 3)}, got {lv.dtype} {lv.shape}")
    if levels[1] is not hr and not np.array_equal(levels[1], hr):
        raise ValueError("pyramid level 1 differs from hr_images")
    return levels


def _config_mismatch(saved: dict, current: dict) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}" for k in keys
            if saved.get(k) != current.get(k)]


def _restart_log(path: Path, keep_until: int) -> None:
    """Rewrite the log with its header and the rows of steps <= keep_until (none on a fresh start)."""
    rows: list[list[str]] = []
    if keep_until > 0 and path.exists():
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            rows = [r for r in reader if r and int(r[0]) <= keep_until]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(LOG_COLUMNS)
        writer.writerows(rows)


def train_srnet(
    hr_images: np.ndarray, *, fnet: FaceRecognizer | None, lam: float, out_dir: str | os.PathLike,
    arch: str = "edsr", arch_kwargs: dict | None = None, kernel: str = "cv2_bicubic",
    batch_size: int = 64, iterations: int = 50_000, lr: float = 1e-4,
    betas: tuple[float, float] = (0.9, 0.999), lr_step: int = 25_000, lr_gamma: float = 0.5,
    identity_upsample: str = "bilinear", amp: str = "none", device: str | torch.device = "auto",
    seed: int = 0, checkpoint_every: int = 1000, log_every: int = 10, progress: bool = True,
    pyramid: dict[int, np.ndarray] | None = None, stale_checkpoint: str = "error",
    step_callback: Callable[[int, dict[str, float]], None] | None = None,
) -> Path:
    """Train an SRNet on aligned uint8 RGB crops; returns out_dir/model.pt.

    Resumes from out_dir/checkpoint.pt when its config matches. ``fnet`` is
    moved to the device and frozen; it may be None when ``lam == 0`` (the
    identity branch is then skipped). ``pyramid`` may pass precomputed levels
    ``{1, 2, 4, 8, 16: uint8 arrays}`` made with ``kernel`` (e.g. a cached
    degradation step); otherwise they are built here. ``step_callback(step,
    losses)`` runs after every step (monitoring, timing, tests).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lam = float(lam)
    # Model init from the seed without disturbing the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, full_kwargs = build_srnet(arch, arch_kwargs)
    _check_inputs(hr_images, fnet, lam, amp, identity_upsample, int(getattr(model, "scale", 4)))
    use_fnet = lam > 0
    dev = resolve_device(str(device))
    config: dict[str, Any] = {
        "version": CONFIG_VERSION, "arch": arch, "arch_kwargs": full_kwargs, "kernel": kernel,
        "lam": lam, "fnet": fnet.name if use_fnet else None, "batch_size": int(batch_size),
        "iterations": int(iterations), "lr": float(lr), "betas": [float(b) for b in betas],
        "lr_step": int(lr_step), "lr_gamma": float(lr_gamma), "identity_upsample": identity_upsample,
        "amp": amp, "seed": int(seed),
        "data": {"n": len(hr_images), "hw": list(hr_images.shape[1:3]), "sha256": data_fingerprint(hr_images)},
    }

    model.to(dev).train()
    if use_fnet:
        fnet.freeze().to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=tuple(betas))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_step, gamma=lr_gamma)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp == "fp16")
    np_rng = np.random.default_rng(seed)  # scale k per step
    torch_rng = torch.Generator().manual_seed(seed)  # flips per sample

    ckpt_path, log_path = out_dir / "checkpoint.pt", out_dir / "train_log.csv"
    start, state = 0, None
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        diffs = _config_mismatch(state.get("config", {}), config)
        if diffs and stale_checkpoint == "set_aside":
            # The pipeline reruns a job when its params change: keep the old
            # run's checkpoint under another name and start this one afresh.
            aside = ckpt_path.with_name(f"checkpoint.stale-{int(time.time())}.pt")
            ckpt_path.rename(aside)
            log.warning("%s belongs to a different run (%s); moved to %s, training from scratch",
                        ckpt_path, "; ".join(diffs), aside.name)
            state = None
        elif diffs:
            raise ValueError(f"{ckpt_path} belongs to a different run; refusing to resume. Differences:\n  "
                             + "\n  ".join(diffs) + f"\nUse another out_dir or delete {ckpt_path}.")
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        np_rng.bit_generator.state = state["np_rng"]
        torch_rng.set_state(state["torch_rng"])
        start = int(state["step"])
        log.info("resuming %s from step %d", out_dir, start)
    _restart_log(log_path, keep_until=start)

    def save_checkpoint(step: int) -> None:
        log_fh.flush()
        os.fsync(log_fh.fileno())  # log rows up to this step survive a kill
        state = {"config": config, "step": step, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "scaler": scaler.state_dict(), "np_rng": np_rng.bit_generator.state,
                 "torch_rng": torch_rng.get_state()}
        save_torch(ckpt_path, state)

    levels = (_check_pyramid(pyramid, hr_images) if pyramid is not None
              else build_pyramid(hr_images, list(PYRAMID_FACTORS), kernel))  # uint8, built once
    sampler = BatchSampler(len(hr_images), batch_size, seed)
    amp_dtype = AMP_DTYPES[amp]

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()

    was_det, was_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    losses: dict[str, float] = {}
    try:
        with open(log_path, "a", newline="") as log_fh, tqdm(
                total=iterations, initial=start, disable=not progress, desc=f"train {arch} lam={lam:g}",
                unit="it") as bar:
            writer = csv.writer(log_fh)
            for step in range(start + 1, iterations + 1):
                k = int(np_rng.choice(SCALE_EXPONENTS))
                idx = sampler.indices(step - 1)
                flip = (torch.rand(batch_size, generator=torch_rng) < 0.5).to(dev)[:, None, None, None]

                def batch(factor: int) -> Tensor:
                    x = to_tensor(levels[factor][idx], dev)
                    return torch.where(flip, x.flip(-1), x)  # same flip at every scale

                lr_in, target = batch(2 ** k), batch(2 ** (k - 2))
                with autocast():
                    sr = model(lr_in)
                    loss_pixel = F.l1_loss(sr.float(), target)
                    if use_fnet:
                        with torch.no_grad():
                            hr_feat = fnet(batch(1))
                        loss_id = identity_loss(fnet, sr, hr_feat, identity_upsample)
                        loss = loss_pixel + lam * loss_id
                    else:
                        loss_id, loss = None, loss_pixel
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                step_lr = scheduler.get_last_lr()[0]
                scheduler.step()

                if step % log_every == 0 or step_callback is not None:
                    losses = {"lr": step_lr, "loss_pixel": loss_pixel.item(),
                              "loss_identity": loss_id.item() if loss_id is not None else float("nan"),
                              "loss_total": loss.item()}
                if step % log_every == 0:
                    # identity column empty when lam == 0: the term was not computed
                    writer.writerow([step, repr(step_lr), repr(losses["loss_pixel"]),
                                     repr(losses["loss_identity"]) if loss_id is not None else "",
                                     repr(losses["loss_total"])])
                    bar.set_postfix(pix=f"{losses['loss_pixel']:.4f}",
                                    id=f"{losses['loss_identity']:.4f}", lr=f"{step_lr:.1e}")
                bar.update(1)
                if step % checkpoint_every == 0 or step == iterations:
                    save_checkpoint(step)
                if step_callback is not None:
                    step_callback(step, losses)
    finally:
        if dev.type == "cpu":
            torch.use_deterministic_algorithms(was_det, warn_only=was_warn)

    meta = {"lambda": lam, "iterations": int(iterations), "fnet": config["fnet"],
            "fnet_weights": fnet.source if use_fnet else None, "seed": int(seed), "kernel": kernel,
            "batch_size": int(batch_size), "lr": float(lr), "lr_step": int(lr_step),
            "lr_gamma": float(lr_gamma), "identity_upsample": identity_upsample, "amp": amp,
            "data_sha256": config["data"]["sha256"], "n_images": len(hr_images), "trained_on": str(dev)}
    return save_srnet(out_dir / "model.pt", model, arch, full_kwargs, channel_order="rgb", meta=meta)
