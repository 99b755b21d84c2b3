"""dvc.yaml must wrap exactly the Snakemake DAG: same rules, files, upstream stages and params."""
from pathlib import Path

import pytest
import yaml

from srlrfr.dvcsync import check_dvc_yaml, snakemake_plan


def test_committed_dvc_yaml_agrees(repo_root: Path):
    assert check_dvc_yaml(repo_root / "dvc.yaml") == []


def test_disagreements_are_reported(repo_root: Path, tmp_path: Path):
    doc = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    stages = doc["stages"]
    stages["train"]["params"].remove("train")          # a param the rule reads
    stages["evaluate"]["deps"].remove("models/srnets")  # an upstream stage
    stages["bogus"] = {"cmd": "true"}
    del stages["features"]
    bad = tmp_path / "dvc.yaml"
    bad.write_text(yaml.safe_dump(doc))
    problems = "\n".join(check_dvc_yaml(bad, root=repo_root))
    assert "rule 'features' has no DVC stage" in problems
    assert "'bogus' is not a Snakemake rule" in problems
    assert "stage 'train' params" in problems and "stage 'evaluate' deps" in problems


def test_stages_with_a_job_per_lambda_depend_on_the_lambdas(repo_root: Path):
    """`dvc exp run -S lambda=0.25` must rerun the train and evaluate stages, not only aggregate."""
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    per_lambda = {name for name, st in stages.items() if {"lambda", "lambdas"} <= set(st.get("params", []))}
    assert {"train", "evaluate", "report"} <= per_lambda
    assert not {"ingest", "landmarks", "align", "degrade", "features", "fnet_weights"} & per_lambda


@pytest.mark.slow  # real Snakemake runs in a copy of the repository (10-15 s)
def test_report_reads_every_jobs_benchmark(repo_root: Path):
    """Every rule has a benchmark file; the report lists all the others' as inputs."""
    for configs in (None, ["params.yaml", ".test/params.yaml"],
                    ["params.yaml", ".test/params.yaml", ".test/protocols.yaml"]):  # + the matrix rule
        plan = snakemake_plan(configs, repo_root)
        jobs = [j for j in plan if j["rule"] != "all"]
        assert all(j["benchmark"].startswith("logs/benchmarks/") for j in jobs), \
            [j["rule"] for j in jobs if not j["benchmark"]]
        (report,) = [j for j in jobs if j["rule"] == "report"]
        listed = {f for f in report["input"] if f.startswith("logs/benchmarks/")}
        assert listed == {j["benchmark"] for j in jobs if j["rule"] != "report"}
        assert len({j["benchmark"] for j in jobs}) == len(jobs)  # one file per job
        outs = {o for j in jobs for o in j["output"]}
        assert not any(o.startswith("logs/") for o in outs)
        if configs and configs[-1] == ".test/protocols.yaml":
            assert "logs/benchmarks/matrix/dlib_resnet34/bicubic.tsv" in listed


def test_every_benchmark_is_a_dvc_out_of_its_rule(repo_root: Path):
    """Snakemake reruns a job whose benchmark is missing: a clone must get them from DVC (git ignores logs/)."""
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    for job in snakemake_plan(None, repo_root):
        if job["rule"] in stages:
            outs = {p for entry in stages[job["rule"]]["outs"] for p in entry}
            assert any(job["benchmark"] == o or job["benchmark"].startswith(o + "/") for o in outs), job["benchmark"]
            assert all(o.startswith(f"logs/benchmarks/{job['rule']}") for o in outs if o.startswith("logs/"))
    assert "logs/benchmarks/train" in stages["report"]["deps"]  # the report reads every step's time


def test_every_output_and_metric_persists(repo_root: Path):
    """DVC must not delete a stage's outputs before it runs: Snakemake decides what is out of date."""
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for entry in stage.get("outs", []) + stage.get("metrics", []):
            (path, flags), = entry.items()
            assert flags.get("persist") is True, f"stage {name}: {path} is not persist: true"


def test_a_stale_plots_section_is_reported(repo_root: Path, tmp_path: Path):
    doc = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    doc["plots"][0]["results/plots/accuracy.csv"]["y"].append("an_old_srnet")
    bad = tmp_path / "dvc.yaml"
    bad.write_text(yaml.safe_dump(doc))
    assert any(p.startswith("plots:") for p in check_dvc_yaml(bad, root=repo_root))
