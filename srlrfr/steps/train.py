"""Rule train: one SRNet for one identity-loss weight, from the cached training pyramid."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..atomic import atomic_path
from ..config import ConfigError, srnet_entries, srnet_entry

NAME = "train"
HELP = "train one SRNet for one identity-loss weight"


def train(aligned_dir, degraded_dir, cfg: dict, *, lam: float, fnet_weights, out_dir, srnet: str | None = None) -> Path:
    """Train the SRNet called ``srnet`` (an entry of ``train.srnet``; default: the only one)."""
    # deferred: loads torch
    from ..device import resolve_device
    from ..models.fnet import load_fnet
    from ..training import PyramidData, RunControl, TrainOptions, train_srnet
    from ..training.ddp import rank
    t = cfg["train"]
    data = PyramidData.open(aligned_dir, degraded_dir)
    check_degradation(data.degradation, cfg, degraded_dir)
    device = resolve_device(t["device"])
    fnet = None
    if lam > 0:
        if not fnet_weights:
            raise ValueError(f"lambda={lam} needs FNet weights (--weights)")
        fnet = load_fnet(cfg["fnet"], fnet_weights, device)
    print(f"train: {len(data.usable)} of {len(data)} training faces used; {data.dropped} dropped "
          f"(no face or unreadable, see faces.csv in {aligned_dir})")
    model = train_srnet(
        data, fnet=fnet, lam=lam, out_dir=out_dir,
        srnet=srnet_spec(cfg, srnet), options=TrainOptions.from_params(t), kernel=cfg["degrade"]["kernel"],
        control=RunControl(device=str(device), stale_checkpoint="set_aside"),  # rerun with new params: afresh
    )
    if rank() != 0:  # data-parallel: rank 0 writes the outputs
        return model
    # train_log.csv is the working log that survives a kill and is trimmed on
    # resume; the declared output is a snapshot taken once training is done.
    with atomic_path(Path(out_dir) / "losses.csv") as tmp:
        shutil.copyfile(Path(out_dir) / "train_log.csv", tmp)
    return model


def install_pretrained(src_dir, cfg: dict, *, lam: float, out_dir, srnet: str | None = None) -> Path:
    """Check a shipped SRNet against the params (SRNet type and kwargs, lambda, FNet), then copy its
    model.pt and losses.csv into ``out_dir`` as if trained here (train.pretrained)."""
    # deferred: loads torch
    from ..models.srnet import load_srnet
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    missing = [n for n in ("model.pt", "losses.csv") if not (src_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{src_dir} (train.pretrained) lacks {', '.join(missing)}: a shipped SRNet folder "
                                f"holds model.pt and losses.csv, as models/srnets/<fnet>/<srnet>_lambda<lambda>/")
    _, info = load_srnet(src_dir / "model.pt")
    spec = srnet_spec(cfg, srnet)
    meta = info.get("meta", {})
    want = {"SRNet": spec["type"], "lambda": float(lam), "FNet": cfg["fnet"] if lam > 0 else None}
    have = {"SRNet": info["arch"], "lambda": meta.get("lambda"), "FNet": meta.get("fnet")}
    wrong = [f"{k} {have[k]!r} (params: {want[k]!r})" for k in want if have[k] != want[k]]
    wrong += [f"{info['arch']} {k}={info['kwargs'].get(k)!r} (params: {v!r})" for k, v in spec.items()
              if k != "type" and info["kwargs"].get(k) != v]
    if wrong:
        raise ConfigError(f"key 'train.pretrained': {src_dir / 'model.pt'} does not match the params: "
                          f"{'; '.join(wrong)}. Use the params it was trained with (its preset), or train it "
                          f"(train.pretrained: null)")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("losses.csv", "model.pt"):
        with atomic_path(out_dir / name) as tmp:
            shutil.copyfile(src_dir / name, tmp)
    print(f"train: {src_dir / 'model.pt'} checked against the params and installed (trained "
          f"{meta.get('iterations')} steps on {meta.get('trained_on')}); nothing trained")
    return out_dir / "model.pt"


def srnet_spec(cfg: dict, name: str | None = None) -> dict:
    """The ``train.srnet`` entry called ``name`` as build kwargs: ``{"type": ..., **kwargs}``."""
    if name is None:
        entries = srnet_entries(cfg)
        if len(entries) > 1:
            raise ConfigError("train.srnet lists several SRNets; name the one to train (--srnet)")
        entry = entries[0]
    else:
        entry = srnet_entry(cfg, name)
    return {k: v for k, v in entry.items() if k != "name"}


def check_degradation(made: dict | None, cfg: dict, degraded_dir) -> None:
    """The pyramid on disk must come from the configured degradation (the model records it)."""
    d = cfg["degrade"]
    want = {"model": d["model"], "kernel": d["kernel"], "seed": d["seed"]}
    made = made or {"model": {"type": "resize"}, "kernel": d["kernel"], "seed": d["seed"]}  # older, plain folders
    if made != want:
        raise ValueError(f"{degraded_dir} was made with degradation {made}, but params ask for {want}; "
                         f"rerun its degrade step (snakemake does so when degrade.* changes)")


def add_arguments(p) -> None:
    p.add_argument("--aligned", help="aligned folder of the training set")
    p.add_argument("--degraded", help="its degraded (pyramid) folder")
    p.add_argument("--pretrained", help="a shipped SRNet's folder (train.pretrained): check and install, no training")
    p.add_argument("--lam", type=float, required=True)
    p.add_argument("--weights", help="FNet weights (needed when lam > 0)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--srnet", help="name of the train.srnet entry to train (default: the only one)")


def main(args, cfg) -> None:
    # deferred: loads torch
    from ..training import ddp
    if args.pretrained:
        install_pretrained(args.pretrained, cfg, lam=args.lam, out_dir=args.out_dir, srnet=args.srnet)
        return
    if not (args.aligned and args.degraded):
        raise SystemExit("srlrfr train: --aligned and --degraded are required unless --pretrained is given")
    gpus = cfg["train"]["gpus"]
    if gpus > 1 and not ddp.under_launcher():
        ddp.relaunch(gpus)  # one process per GPU under torchrun, each running this again; no return
    # deferred: loads torch (srlrfr.training's __init__)
    from ..training import host_memory, previous
    host_memory.keep_freed_memory()  # this process trains: reuse freed activations (8-13% of a CPU step)
    model = Path(args.out_dir) / "model.pt"
    lead = os.environ.get("RANK", "0") == "0"  # data-parallel: rank 0 (torchrun's RANK) writes the outputs
    try:
        with ddp.process_group(cfg["train"]["device"]):
            train(args.aligned, args.degraded, cfg, lam=args.lam, fnet_weights=args.weights,
                  out_dir=args.out_dir, srnet=args.srnet)
    except (Exception, KeyboardInterrupt):
        note = previous.where_to_find(model)
        if note and lead:
            print(f"srlrfr train: {note}", file=sys.stderr, flush=True)
        raise
    if lead:
        previous.keep(model)  # Snakemake deletes model.pt before a rerun; a failed rerun still finds this
