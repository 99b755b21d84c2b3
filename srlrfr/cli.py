"""Command line: one subcommand per pipeline step (``srlrfr <step> --help``), built from srlrfr.steps.

Settings come from ``--params`` (params.yaml plus overlays) or, as Snakemake
passes them, ``--settings`` (a JSON document of the same shape). Either way
they are validated against the one schema before any work starts.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

import yaml

from . import config as cfgmod
from . import steps
from .atomic import all_or_nothing
from .doctor import FAIL, Check, failures, render, run_checks
from .errors import describe
from .paths import resolve_params
from .report.exps import show
from .restored import adopt
from .runs import watch_snakemake
from .slurm_report import report as slurm_report
from .supervise import main as supervised


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


def _threads(n: int | None) -> None:
    """Hand Snakemake's ``{threads}`` to torch and OpenCV (their defaults take every core)."""
    if not n:
        return
    # deferred: loads torch, cv2
    import cv2
    import torch
    torch.set_num_threads(n)
    cv2.setNumThreads(n)


def cmd_config(args) -> None:
    cfg = cfgmod.check_inputs(_settings(args))
    print(yaml.safe_dump(cfg, sort_keys=False) if args.print else "params OK")


def cmd_exps(args) -> None:
    print(show(".", args.width))


def cmd_dvc_yaml(args) -> None:
    # deferred: loads cv2
    from .dvcsync import check_dvc_yaml, write_dvc_yaml
    if args.check:
        problems = check_dvc_yaml(Path(args.file))
        if problems:
            sys.exit("dvc.yaml disagrees with the Snakefile:\n  " + "\n  ".join(problems))
        print("dvc.yaml agrees with the Snakefile")
    else:
        write_dvc_yaml(Path(args.file))


def cmd_slurm_report(args) -> None:
    print(slurm_report(args.run, args.since, args.jobs))


def cmd_adopt(args) -> None:
    print(adopt("."))


def cmd_step(args) -> None:
    watch_snakemake()  # an orphan of a killed Snakemake run stops instead of running on
    _threads(args.threads)
    cfg = resolve_params(_settings(args))  # relative paths: to the repository root, once
    # Steps with several outputs declare them written together: all appear, or none does.
    with all_or_nothing() if getattr(args.step, "OUTPUTS_TOGETHER", False) else contextlib.nullcontext():
        args.step.main(args, cfg)


def cmd_doctor(args) -> None:
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

    p = sub.add_parser("config", help="validate params (and print them with defaults filled in)")
    _common(p)
    p.add_argument("--print", action="store_true")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("doctor", help="what this machine has and what the params need: python, torch and GPUs, "
                                      "data, weights, network, disk (exit 1 when something is missing)")
    _common(p)
    p.add_argument("--quick", action="store_true", help="skip the network probes")
    p.add_argument("--timeout", type=float, default=3.0, metavar="S", help="seconds per network probe (default 3)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("exps", help="DVC experiments one row each: lambda, SRNet, FNet, state, accuracy per "
                                    "resolution and its change to the baseline (a readable `dvc exp show`)")
    p.add_argument("--width", type=int, default=100)
    p.set_defaults(func=cmd_exps)

    p = sub.add_parser("dvc-yaml", help="write dvc.yaml from the Snakefile, or --check that they agree")
    p.add_argument("--file", default="dvc.yaml")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_dvc_yaml)

    p = sub.add_parser("slurm-report", help="per rule, from sacct: SLURM jobs, states, elapsed time, "
                                            "requested memory vs MaxRSS (default: this directory's latest SLURM run)")
    p.add_argument("--run", metavar="ID", help="the run's 'SLURM run ID' (Snakemake prints it; "
                                               "also in .snakemake/log/)")
    p.add_argument("--since", metavar="TIME", help="every srlrfr rule job since TIME instead (sacct -S: "
                                                   "2026-12-03T07:00, now-2hours)")
    p.add_argument("--jobs", action="store_true", help="also one line per job, with its wildcards")
    p.set_defaults(func=cmd_slurm_report)

    sub.add_parser("snakemake", add_help=False, help="snakemake with the arguments that follow, stopped (jobs "
                   "included) when the command that started it is killed: dvc.yaml's stage command")

    p = sub.add_parser("adopt", help="right after `dvc pull` or `dvc checkout`: record the restored outputs "
                                     "for Snakemake with dvc.lock's params, so plain `snakemake` reruns nothing")
    p.set_defaults(func=cmd_adopt)

    for name, step in steps.STEPS.items():  # one subcommand per pipeline step (imports them: srlrfr.steps)
        p = sub.add_parser(name, help=step.HELP, description=step.__doc__)
        _common(p)
        p.add_argument("--threads", type=int, help="CPU threads for torch and OpenCV (Snakemake's {threads})")
        step.add_arguments(p)
        p.set_defaults(func=cmd_step, step=step)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before torch loads OpenMP: threads that wait sleep instead of spinning. On cores
    # shared with other jobs, spinning threads stall each other (benchmarks/bench_forward.py
    # measured 2 threads ~10x slower than this on a loaded 2-core machine). Export
    # OMP_WAIT_POLICY=ACTIVE to spin again on dedicated cores.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["snakemake"]:  # every argument after it is Snakemake's own
        return supervised(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (cfgmod.ConfigError, OSError, ValueError, KeyError, RuntimeError, MemoryError) as exc:
        if args.verbose:
            raise
        print(f"srlrfr {args.command}: error: {describe(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"srlrfr {args.command}: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
