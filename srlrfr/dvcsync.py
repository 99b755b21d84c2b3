"""Keep dvc.yaml a faithful wrapper of the Snakemake DAG.

Snakemake is the one place the DAG is defined. Each DVC stage is one
Snakemake rule, run with ``snakemake --until <rule>``; its deps, params and
outs are read off Snakemake's own plan (a forced dry run): the files
the rule writes, the rules it reads from, and the config keys it passes to
srlrfr via ``--settings``. ``write_dvc_yaml`` produces dvc.yaml from that;
``check_dvc_yaml`` reports every disagreement.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from .atomic import write_text
from .config import load
from .methods import SRNetId
from .pipeline import PIPELINE

# Rules without a stage: ``all``, and the steps declared dvc=False (srlrfr.pipeline.PIPELINE).
NOT_IN_DVC = {"all"} | {s.name for s in PIPELINE if not s.dvc}
METRICS = ["results/metrics.json"]
# Extra Snakemake options for every stage, from the environment: e.g.
# SRLRFR_SNAKEMAKE_ARGS="--profile workflow/profiles/slurm" dvc repro runs the jobs
# through SLURM. Unset, it expands to nothing. ($VAR, not ${VAR}: DVC reads ${...}
# as its own templating.) Not a stage dependency: where a job runs changes no output.
SNAKEMAKE_ARGS_ENV = "SRLRFR_SNAKEMAKE_ARGS"
# PYTHONPATH first: a DVC experiment's temporary copy (.dvc/tmp/exps/...) runs its own snapshot of
# srlrfr/, not the editable install of the main checkout.
# `srlrfr snakemake`: Snakemake and its jobs stop when DVC is killed (srlrfr/supervise.py).
SNAKEMAKE = f"PYTHONPATH=$PWD:$PYTHONPATH srlrfr snakemake --cores all ${SNAKEMAKE_ARGS_ENV} --until {{rule}}"


def snakemake_plan(configfiles: list[str] | None = None, cwd: str | Path = ".") -> list[dict]:
    """Every job of ``snakemake all`` as {rule, input, output, benchmark, shellcmd}, from a forced dry run.

    The benchmark file is kept apart from the outputs (its folder is per rule, not per dataset)."""
    cmd = [sys.executable, "-m", "snakemake", "all", "--dry-run", "--forceall", "--printshellcmds",
           "--cores", "1"]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"snakemake dry run failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}")
    jobs: list[dict] = []
    for line in out.stdout.splitlines():
        head = re.match(r"^(?:local)?rule (\w+):$", line)
        if head:
            jobs.append({"rule": head.group(1), "input": [], "output": [], "benchmark": "", "shellcmd": ""})
        elif jobs and re.match(r"^\s+(input|output): ", line):
            key, _, files = line.strip().partition(": ")
            jobs[-1][key] = [f.strip() for f in files.split(",") if f.strip()]
        elif jobs and line.startswith("    benchmark: "):
            jobs[-1]["benchmark"] = line.strip()[len("benchmark: "):]
        elif jobs and line.startswith("Shell command: "):
            jobs[-1]["shellcmd"] = line[len("Shell command: "):]
    if not jobs:
        raise RuntimeError(f"snakemake listed no jobs:\n{out.stdout[-2000:]}")
    return jobs


def out_root(path: str) -> str:
    """The directory DVC versions for a file: data/index/x.csv -> data/index."""
    parts = Path(path).parts
    return str(Path(*parts[:2])) if len(parts) >= 3 else path


# Per-dataset / per-FNet subsections: DVC tracks them whole, so dvc.yaml does
# not change with the FNet chosen.
WHOLE = {"align.landmarks", "fnets"}


def _settings_keys(shellcmd: str, cfg: dict) -> set[str]:
    """Config keys a job received via ``--settings '<json>'``, as dotted paths.

    A section passed complete is named as the section; a partial one by its keys (a mapping
    passed for what params hold as a list, one train.srnet entry, by the list's key).
    """
    tokens = shlex.split(shellcmd) if shellcmd else []
    keys: set[str] = set()

    def walk(doc: dict, full: dict, prefix: str) -> None:
        for k, v in doc.items():
            path = f"{prefix}{k}"
            if isinstance(v, dict) and isinstance(full.get(k), dict) and path not in WHOLE and v != full.get(k):
                walk(v, full.get(k, {}), path + ".")
            else:
                keys.add(path)
    for i, tok in enumerate(tokens[:-1]):
        if tok == "--settings":
            walk(json.loads(tokens[i + 1]), cfg, "")
    return keys


# Which jobs exist per trained λ comes from these keys (srlrfr.config.trained_lambdas), not from
# any job's --settings: a stage with such jobs must rerun when they change, or `dvc exp run -S
# lambda=0.25` would skip it and leave the new λ's files to a later stage's `snakemake --until`.
LAMBDA_KEYS = {"lambda", "lambdas"}


def _per_lambda(outputs: list[str]) -> bool:
    """Whether a job's outputs are named by a λ trained here (``<srnet>_lambda<tag>``; not the authors')."""
    for path in outputs:
        for part in Path(path).parts:
            sr = SRNetId.parse(part)
            if sr is not None and not sr.authors:
                return True
    return False


def _rule_files(root: Path) -> dict[str, str]:
    found = {}
    for smk in sorted((root / "workflow").rglob("*.smk")) + [root / "workflow" / "Snakefile"]:
        for name in re.findall(r"^rule (\w+):", smk.read_text(), flags=re.M):
            found[name] = str(smk.relative_to(root))
    return found


def bench_root(path: str) -> str:
    """What DVC versions for a benchmark file: its rule's folder (logs/benchmarks/train/x/y.tsv ->
    logs/benchmarks/train), or the file itself (logs/benchmarks/report.tsv)."""
    parts = Path(path).parts
    return str(Path(*parts[:3])) if len(parts) >= 4 else path


def _outs(plan: list[dict]) -> dict[str, set[str]]:
    """What DVC versions per rule: the rule's directory, or its files where rules share one; and its
    benchmark folder. Snakemake treats a benchmark as an output: one missing in a clone (as when
    neither git nor DVC kept it) would rerun its job."""
    owners: dict[str, set[str]] = {}
    for job in plan:
        for o in job["output"]:
            owners.setdefault(out_root(o), set()).add(job["rule"])
    outs: dict[str, set[str]] = {}
    for job in plan:
        for o in job["output"]:
            if o not in METRICS:
                outs.setdefault(job["rule"], set()).add(o if len(owners[out_root(o)]) > 1 else out_root(o))
        if job["benchmark"]:
            outs.setdefault(job["rule"], set()).add(bench_root(job["benchmark"]))
    return outs


def stages_from_plan(plan: list[dict], root: Path, cfg: dict) -> dict:
    producer = {out: job["rule"] for job in plan for out in job["output"] + [job["benchmark"]] if out}
    outs = _outs(plan)
    rule_files = _rule_files(root)
    stages: dict[str, dict] = {}
    for job in plan:
        rule = job["rule"]
        if rule in NOT_IN_DVC:
            continue
        st = stages.setdefault(rule, {"outs": set(), "upstream": set(), "params": set()})
        st["outs"] = outs.get(rule, set())
        st["upstream"] |= {d for d in job["input"] if producer.get(d, rule) != rule}
        st["params"] |= _settings_keys(job["shellcmd"], cfg)
        if _per_lambda(job["output"]):
            st["params"] |= LAMBDA_KEYS
    doc: dict = {"stages": {}}
    for rule in sorted(stages, key=lambda r: _order(r, stages, producer)):
        st = stages[rule]
        upstream = {d for u in st["upstream"] for d in outs[producer[u]] if u == d or u.startswith(d + "/")}
        deps = sorted({"srlrfr", rule_files.get(rule, "workflow/Snakefile"), "workflow/rules/common.smk"} | upstream)
        entry = {"cmd": SNAKEMAKE.format(rule=rule), "deps": deps}
        if st["params"]:
            entry["params"] = sorted(st["params"])
        entry["outs"] = [{o: {"persist": True}} for o in sorted(st["outs"])]
        if rule == "aggregate":
            entry["metrics"] = [{m: {"cache": False, "persist": True}} for m in METRICS]
        doc["stages"][rule] = entry
    return doc


def _order(rule, stages, producer) -> tuple[int, str]:
    """Topological depth, so dvc.yaml reads in pipeline order."""
    seen: dict[str, int] = {}

    def depth(r):
        if r not in seen:
            seen[r] = 0
            ups = {producer[d] for d in stages[r]["upstream"] if producer.get(d) in stages}
            seen[r] = 1 + max((depth(u) for u in ups), default=0)
        return seen[r]
    return depth(rule), rule


HEADER = """\
# Generated from the Snakemake DAG by `srlrfr dvc-yaml`; do not edit by hand.
# Each stage runs one Snakemake rule (and whatever it still needs upstream);
# Snakemake decides what is out of date, DVC versions the results.
"""


def render(doc: dict, cfg: dict) -> str:
    # deferred: loads pandas, matplotlib
    from .steps.report import plot_methods
    plots = {"plots": [
        {"results/plots/accuracy.csv": {"x": "height", "y": plot_methods(cfg),
                                        "template": "linear",
                                        "title": "LFW accuracy (%) vs probe height (px)"}},
        {"results/plots/losses.csv": {"x": "step", "y": ["loss_pixel", "loss_identity", "loss_total"],
                                      "template": "linear", "title": "SRNet training losses (this lambda)"}},
        {"results/steps.csv": {"x": "seconds", "y": "step", "template": "bar_horizontal_sorted",
                               "title": "Wall time per pipeline step (s, summed over its jobs)"}},
        "results/figures",
    ]}
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=120) + "\n" + yaml.safe_dump(plots, sort_keys=False)


def _expected(root: Path, configfiles: list[str] | None) -> str:
    cfg = load([root / f for f in (configfiles or ["params.yaml"])])
    return render(stages_from_plan(snakemake_plan(configfiles, root), root, cfg), cfg)


def write_dvc_yaml(path: Path, configfiles: list[str] | None = None) -> None:
    write_text(path, _expected(path.resolve().parent, configfiles))


def check_dvc_yaml(path: Path, configfiles: list[str] | None = None, root: Path | None = None) -> list[str]:
    """Disagreements between ``path`` and the DAG of the workflow in ``root`` (default: path's folder)."""
    expected = yaml.safe_load(_expected(root or path.resolve().parent, configfiles))
    written = yaml.safe_load(path.read_text()) or {}
    want, have = expected["stages"], written.get("stages", {})
    problems = [f"rule {r!r} has no DVC stage" for r in want if r not in have]
    problems += [f"DVC stage {s!r} is not a Snakemake rule of the DAG" for s in have if s not in want]
    for name in set(want) & set(have):
        for field in ("cmd", "deps", "params", "outs", "metrics"):
            if want[name].get(field) != have[name].get(field):
                problems.append(f"stage {name!r} {field}: dvc.yaml has {have[name].get(field)!r}, "
                                f"the Snakefile implies {want[name].get(field)!r}")
    if expected.get("plots") != written.get("plots"):  # the SRNets and methods plotted follow the params
        problems.append(f"plots: dvc.yaml has {written.get('plots')!r}, "
                        f"the Snakefile implies {expected.get('plots')!r}")
    return problems
