"""Copy a finished run's trained SRNets into a shipped-weights folder, with their provenance.

    python tools/ship_srnets.py --run /path/to/finished/checkout --out presets/cpu/weights \
        --command "snakemake --cores 2 all --configfile params.yaml presets/cpu.yaml presets/lfw-sample.yaml"

For every models/srnets/<fnet>/<method>/ of the run: model.pt and losses.csv, and
provenance.json with the params that trained it (read from the model's own metadata
and the run's validated config), the training data's hashes and counts, the steps,
the job's wall time and peak memory (its Snakemake benchmark file), the machine and
the git commit of the code. `train.pretrained: <out>` then evaluates them without
training (srlrfr.steps.train.install_pretrained checks them against the params).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import torch


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def provenance(run: Path, model_dir: Path, command: str, cfg: dict) -> dict:
    from srlrfr.models.srnet import load_srnet
    _, info = load_srnet(model_dir / "model.pt")
    meta = info["meta"]
    fnet, method = model_dir.parent.name, model_dir.name
    bench = run / "logs" / "benchmarks" / "train" / fnet / f"{method}.tsv"
    job = pd.read_csv(bench, sep="\t").iloc[0].to_dict() if bench.is_file() else {}
    dataset = cfg["train"]["dataset"]
    index = run / "data" / "index" / dataset
    from srlrfr.catalog import load_all
    from srlrfr.registry import FNETS
    load_all()
    faces_csv = run / "data" / "aligned" / f"{dataset}_{FNETS.get(cfg['fnet']).geometry}" / "faces.csv"
    faces = pd.read_csv(faces_csv) if faces_csv.is_file() else None
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=run, capture_output=True, text=True).stdout.strip()
    return {
        "model": {"arch": info["arch"], "kwargs": info["kwargs"], "sha256": sha256(model_dir / "model.pt")},
        "training": {k: meta.get(k) for k in ("lambda", "fnet", "iterations", "batch_size", "lr", "lr_step",
                                               "lr_gamma", "identity_upsample", "amp", "seed", "kernel",
                                               "degradation", "trained_on")},
        "data": {"dataset": dataset, "source": cfg["data"].get(dataset), "images_csv_sha256":
                 sha256(index / "images.csv"), "crops": meta.get("n_images"), "dropped": meta.get("n_dropped"),
                 "crops_sha256_sample": meta.get("data_sha256"),
                 "index_summary": json.loads((index / "summary.json").read_text())
                 if (index / "summary.json").is_file() else None,
                 "faces_status": faces["status"].value_counts().to_dict() if faces is not None else None},
        "job": {"wall_s": job.get("s"), "cpu_s": job.get("cpu_time"), "max_rss_mb": job.get("max_rss")},
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "system": f"{platform.system()} {platform.machine()}"},
        "code": {"git_commit": commit, "command": command},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path, help="the finished checkout (its models/, data/, logs/)")
    ap.add_argument("--out", required=True, type=Path, help="shipped-weights folder (train.pretrained)")
    ap.add_argument("--params", nargs="+", default=["params.yaml"], help="the run's params and overlays, "
                    "relative to --run")
    ap.add_argument("--command", required=True, help="the command that trained them, for the record")
    args = ap.parse_args()
    from srlrfr.config import load
    cwd = os.getcwd()
    os.chdir(args.run)
    try:
        cfg = load(args.params)
    finally:
        os.chdir(cwd)
    for model in sorted((args.run / "models" / "srnets").glob("*/*/model.pt")):
        src = model.parent
        dest = args.out / src.parent.name / src.name
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("model.pt", "losses.csv"):
            shutil.copyfile(src / name, dest / name)
        record = provenance(args.run.resolve(), src, args.command, cfg)
        (dest / "provenance.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        print(f"{dest}: {record['model']['arch']} lambda {record['training']['lambda']}, "
              f"{record['training']['iterations']} steps, {record['job']['wall_s']} s")


if __name__ == "__main__":
    main()
