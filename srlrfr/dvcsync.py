"""Keep dvc.yaml a faithful wrapper of the Snakemake DAG.

Snakemake is the one place the DAG is defined. Each DVC stage is one
Snakemake rule, run with ``snakemake --until <rule>``; its deps, params and
outs are read off Snakemake's own plan (``--detailed-summary``): the files
the rule writes, the rules it reads from, and the config keys it passes to
srlrfr via ``--settings``. ``write_dvc_yaml`` produces dvc.yaml from that;
``check_dvc_yaml`` reports every disagreement.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from .atomic import write_text

# Fixed external artefacts verified by git blob id; imported by Snakemake on
# demand and not versioned by DVC (absent from the DAG unless enabled).
NOT_IN_DVC = {"all", "import_authors"}
METRICS = ["results/metrics.json"]
SNAKEMAKE = "snakemake --cores all --until {rule}"


def snakemake_plan(configfiles: list[str] | None = None, cwd: str | Path = ".") -> list[dict]:
    """Rows of ``snakemake --detailed-summary all``: every file of the DAG."""
    cmd = [sys.executable, "-m", "snakemake", "all", "--detailed-summary", "--cores", "1"]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"snakemake --detailed-summary failed:\n{out.stderr[-3000:]}")
    lines = [ln for ln in out.stdout.splitlines() if "\t" in ln]
    if not lines:
        raise RuntimeError(f"snakemake printed no summary table:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return list(csv.DictReader(io.StringIO("\n".join(lines)), delimiter="\t"))


def out_root(path: str) -> str:
    """The directory DVC versions for a file: data/index/x.csv -> data/index."""
    parts = Path(path).parts
    return str(Path(*parts[:2])) if len(parts) >= 3 else path


def _settings_keys(shellcmd: str) -> set[str]:
    """Config keys a job received via ``--settings '<json>'``, as dotted paths."""
    try:
        tokens = shlex.split(shellcmd)
    except ValueError:
        return set()
    keys: set[str] = set()
    for i, tok in enumerate(tokens[:-1]):
        if tok == "--settings":
            def walk(doc, prefix):
                for k, v in doc.items():
                    path = f"{prefix}{k}"
                    # Dataset/FNet-specific subsections stay whole sections in DVC.
                    if isinstance(v, dict) and path in ("align.landmarks", "fnets"):
                        keys.add(path)
                    elif isinstance(v, dict) and path not in ("data.lfw", "data.celeba", "degrade", "train",
                                                               "evaluate", "report"):
                        walk(v, path + ".")
                    else:
                        keys.add(path)
            walk(json.loads(tokens[i + 1]), "")
    return keys


def _rule_files(root: Path) -> dict[str, str]:
    found = {}
    for smk in sorted((root / "workflow").rglob("*.smk")) + [root / "workflow" / "Snakefile"]:
        for name in re.findall(r"^rule (\w+):", smk.read_text(), flags=re.M):
            found[name] = str(smk.relative_to(root))
    return found


def stages_from_plan(plan: list[dict], root: Path) -> dict:
    producer = {row["output_file"]: row["rule"] for row in plan}
    rule_files = _rule_files(root)
    stages: dict[str, dict] = {}
    for row in plan:
        rule = row["rule"]
        if rule in NOT_IN_DVC:
            continue
        st = stages.setdefault(rule, {"outs": set(), "upstream": set(), "params": set()})
        out = row["output_file"]
        if out not in METRICS:
            st["outs"].add(out_root(out))
        for dep in filter(None, row.get("input-file(s)", "").split(",")):
            dep = dep.strip()
            if dep in producer and producer[dep] != rule:
                st["upstream"].add(dep)
        st["params"] |= _settings_keys(row.get("shellcmd", ""))
    doc: dict = {"stages": {}}
    for rule in sorted(stages, key=lambda r: _order(r, stages, producer)):
        st = stages[rule]
        deps = sorted({"srlrfr", rule_files.get(rule, "workflow/Snakefile"), "workflow/rules/common.smk"}
                      | {out_root(d) for d in st["upstream"]})
        entry = {"cmd": SNAKEMAKE.format(rule=rule), "deps": deps}
        if st["params"]:
            entry["params"] = sorted(st["params"])
        entry["outs"] = [{o: {"persist": True}} for o in sorted(st["outs"])]
        if rule == "aggregate":
            entry["metrics"] = [{m: {"cache": False}} for m in METRICS]
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


def render(doc: dict) -> str:
    plots = {"plots": [
        {"results/plots/accuracy.csv": {"x": "resolution", "y": "accuracy", "template": "linear",
                                        "title": "LFW accuracy vs probe resolution"}},
        {"results/plots/losses.csv": {"x": "step", "y": "loss_total", "template": "linear",
                                      "title": "SRNet training loss"}},
        "results/figures",
    ]}
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=120) + "\n" + yaml.safe_dump(plots, sort_keys=False)


def write_dvc_yaml(path: Path, configfiles: list[str] | None = None) -> None:
    root = path.resolve().parent
    write_text(path, render(stages_from_plan(snakemake_plan(configfiles, root), root)))


def check_dvc_yaml(path: Path, configfiles: list[str] | None = None) -> list[str]:
    root = path.resolve().parent
    want = yaml.safe_load(render(stages_from_plan(snakemake_plan(configfiles, root), root)))["stages"]
    have = (yaml.safe_load(path.read_text()) or {}).get("stages", {})
    problems = [f"rule {r!r} has no DVC stage" for r in want if r not in have]
    problems += [f"DVC stage {s!r} is not a Snakemake rule of the DAG" for s in have if s not in want]
    for name in set(want) & set(have):
        for field in ("cmd", "deps", "params", "outs", "metrics"):
            if want[name].get(field) != have[name].get(field):
                problems.append(f"stage {name!r} {field}: dvc.yaml has {have[name].get(field)!r}, "
                                f"the Snakefile implies {want[name].get(field)!r}")
    return problems
