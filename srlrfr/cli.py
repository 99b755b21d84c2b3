"""Command line: one subcommand per pipeline step (``srlrfr <step> --help``).

Settings come from ``--params`` (params.yaml plus overlays) or, as Snakemake
passes them, ``--settings`` (a JSON document of the same shape). Either way
they are validated against the one schema before any work starts.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import config as cfgmod


def _settings(args) -> dict:
    if getattr(args, "settings", None):
        try:
            doc = json.loads(args.settings)
        except json.JSONDecodeError as exc:
            raise cfgmod.ConfigError(f"--settings is not valid JSON: {exc}") from None
        return cfgmod.validate(doc)
    paths = args.params or (["params.yaml"] if Path("params.yaml").is_file() else [])
    return cfgmod.load(paths) if paths else cfgmod.validate({})


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", nargs="+", metavar="YAML", help="params.yaml and overlays (default: ./params.yaml)")
    p.add_argument("--settings", metavar="JSON", help="settings as a JSON document (what Snakemake passes)")


def cmd_config(args) -> None:
    import yaml
    cfg = _settings(args)
    print(yaml.safe_dump(cfg, sort_keys=False) if args.print else "params OK")


def cmd_ingest(args) -> None:
    from .registry import DATASETS
    from . import ingest  # noqa: F401  (registers datasets)
    cfg = _settings(args)
    data = cfg["data"]
    if args.dataset == "lfw":
        DATASETS.get("lfw")(images=data["lfw"]["images"], pairs=data["lfw"]["pairs"],
                            folds=cfg["evaluate"]["folds"], cache=data["cache"],
                            out_index=args.out_index, out_pairs=args.out_pairs)
    else:
        DATASETS.get("celeba")(source=data["celeba"]["source"], cache=data["cache"], out_index=args.out_index,
                               max_identities=data["celeba"]["max_identities"],
                               images_per_identity=data["celeba"]["images_per_identity"])


def cmd_landmarks(args) -> None:
    from .landmarks import landmarks_step
    cfg = _settings(args)
    a = cfg["align"]
    landmarks_step(args.index, args.out, args.report, source=a["landmarks"][args.dataset], device=a["device"],
                   batch_size=a["batch_size"], min_face_size=a["min_face_size"], thresholds=a["thresholds"])


def cmd_align(args) -> None:
    import pandas as pd
    from .face.align import align_images
    from .face.landmarks_io import read_landmarks_csv
    cfg = _settings(args)
    index = pd.read_csv(args.index)
    align_images(list(zip(index["image_id"], index["path"])), read_landmarks_csv(args.landmarks),
                 args.geometry, args.out, no_face=cfg["align"]["no_face"])


def cmd_degrade(args) -> None:
    from .degrade import degrade_file
    cfg = _settings(args)
    factors = args.factors or cfg["degrade"]["factors"]
    degrade_file(args.aligned, factors, cfg["degrade"]["kernel"], args.out)


def cmd_fnet_weights(args) -> None:
    from .weights_step import prepare_fnet_weights
    cfg = _settings(args)
    prepare_fnet_weights(args.fnet, cfg["fnets"][args.fnet]["weights"], args.out,
                         cache=cfg["data"]["cache"], provenance=args.provenance)


def cmd_import_authors(args) -> None:
    from .weights_step import import_authors_checkpoint
    cfg = _settings(args)
    import_authors_checkpoint(args.name, cfg["evaluate"]["authors_weights"], args.out, cache=cfg["data"]["cache"])


def cmd_features(args) -> None:
    from .evaluate import hr_features
    cfg = _settings(args)
    e = cfg["evaluate"]
    hr_features(args.aligned, cfg["fnet"], args.weights, args.out, batch_size=e["batch_size"], device=e["device"])


def cmd_train(args) -> None:
    from .train_step import train_step
    cfg = _settings(args)
    train_step(args.pyramid, cfg, lam=args.lam, fnet_weights=args.weights, out_dir=args.out_dir)


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate_config
    cfg = _settings(args)
    e = cfg["evaluate"]
    evaluate_config(pairs_csv=args.pairs, aligned_npz=args.aligned, hr_features_npz=args.features,
                    probes_npz=args.probes, factor=args.factor, method=args.method,
                    resolution=args.resolution, fnet_name=cfg["fnet"], fnet_weights=args.weights,
                    srnet_path=args.srnet, out_dir=args.out_dir, no_face=cfg["align"]["no_face"],
                    threshold_steps=e["threshold_steps"], far_targets=cfg["report"]["far_targets"],
                    batch_size=e["batch_size"], device=e["device"], examples=e["examples"], seed=e["seed"])


def cmd_aggregate(args) -> None:
    from .aggregate import aggregate
    cfg = _settings(args)
    lam = cfgmod.lambda_tag(cfg["lambda"])
    aggregate(args.metrics, args.out_dir, experiment_method=f"edsr_lambda{lam}", lam=float(cfg["lambda"]))


def cmd_report(args) -> None:
    from .report.build import build_report
    cfg = _settings(args)
    build_report(cfg, summary_csv=args.summary, pairs_csv=args.pairs, scores_files=args.scores,
                 train_logs=args.train_logs, out_dir=args.out_dir)


def cmd_dvc_yaml(args) -> None:
    from .dvcsync import check_dvc_yaml, write_dvc_yaml
    if args.check:
        problems = check_dvc_yaml(Path(args.file))
        if problems:
            sys.exit("dvc.yaml disagrees with the Snakefile:\n  " + "\n  ".join(problems))
        print("dvc.yaml agrees with the Snakefile")
    else:
        write_dvc_yaml(Path(args.file))


def cmd_doctor(args) -> None:
    from .doctor import FAIL, Check, failures, render, run_checks
    try:
        cfg, broken = _settings(args), []
    except ImportError as exc:  # validating params imports torch and OpenCV: report the install instead
        cfg, broken = None, [Check("params", "params", FAIL, f"not checked: {exc}", fix="fix the install above")]
    checks = run_checks(cfg, network=not args.quick, timeout=args.timeout) + broken
    print(render(checks))
    if failures(checks):
        raise SystemExit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srlrfr", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_):
        p = sub.add_parser(name, help=help_)
        _common(p)
        p.set_defaults(func=func)
        return p

    p = add("config", cmd_config, "validate params (and print them with defaults filled in)")
    p.add_argument("--print", action="store_true")

    p = add("ingest", cmd_ingest, "resolve a dataset source (download or local copy) and index it")
    p.add_argument("dataset", choices=["lfw", "celeba"])
    p.add_argument("--out-index", required=True)
    p.add_argument("--out-pairs", help="LFW only: normalised pairs table")

    p = add("landmarks", cmd_landmarks, "detect (MTCNN) or import 5-point landmarks")
    p.add_argument("dataset", choices=["lfw", "celeba"])
    p.add_argument("--index", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True, help="CSV listing images without a usable face")

    p = add("align", cmd_align, "warp faces onto a geometry's reference points")
    p.add_argument("--index", required=True)
    p.add_argument("--landmarks", required=True)
    p.add_argument("--geometry", required=True)
    p.add_argument("--out", required=True)

    p = add("degrade", cmd_degrade, "downsample aligned crops by integer factors")
    p.add_argument("--aligned", required=True)
    p.add_argument("--factors", type=int, nargs="+", help="default: degrade.factors")
    p.add_argument("--out", required=True)

    p = add("fnet-weights", cmd_fnet_weights, "fetch / convert an FNet's weights to a .pt state dict")
    p.add_argument("--fnet", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--provenance", help="JSON recording the weights' source and its hash")

    p = add("import-authors", cmd_import_authors, "import an authors' EDSR checkpoint (verified by git blob id)")
    p.add_argument("name", choices=["edsr_baseline", "edsr_lambda0.5"])
    p.add_argument("--out", required=True)

    p = add("features", cmd_features, "flip-concatenated FNet features of all full-resolution crops")
    p.add_argument("--aligned", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)

    p = add("train", cmd_train, "train one SRNet for one identity-loss weight")
    p.add_argument("--pyramid", required=True)
    p.add_argument("--lam", type=float, required=True)
    p.add_argument("--weights", help="FNet weights (.pt); needed when lambda > 0")
    p.add_argument("--out-dir", required=True)

    p = add("evaluate", cmd_evaluate, "LFW verification of one (method, resolution)")
    for flag in ("--pairs", "--aligned", "--features", "--weights", "--method", "--resolution", "--out-dir"):
        p.add_argument(flag, required=True)
    p.add_argument("--probes", help="degraded probes (omit for full resolution)")
    p.add_argument("--factor", type=int, default=1)
    p.add_argument("--srnet", help="SRNet checkpoint for SR methods")

    p = add("aggregate", cmd_aggregate, "the accuracy table, paper comparison and DVC metrics")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--out-dir", required=True)

    p = add("report", cmd_report, "figures and the self-contained HTML report")
    p.add_argument("--summary", required=True)
    p.add_argument("--pairs", required=True, help="the pairs table every scores file must match")
    p.add_argument("--scores", nargs="+", required=True, help="<method>/<resolution>/scores.csv files")
    p.add_argument("--train-logs", nargs="*", default=[])
    p.add_argument("--out-dir", required=True)

    p = add("doctor", cmd_doctor, "what this machine has and what the params need: python, torch and GPUs, "
                                   "data, weights, network, disk (exit 1 when something is missing)")
    p.add_argument("--quick", action="store_true", help="skip the network probes")
    p.add_argument("--timeout", type=float, default=3.0, metavar="S", help="seconds per network probe (default 3)")

    p = sub.add_parser("dvc-yaml", help="write dvc.yaml from the Snakefile, or --check that they agree")
    p.add_argument("--file", default="dvc.yaml")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_dvc_yaml)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (cfgmod.ConfigError, FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
        if args.verbose:
            raise
        print(f"srlrfr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
