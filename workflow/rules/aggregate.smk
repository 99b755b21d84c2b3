# The benchmark: file of each of its jobs, for the report (common.smk:step_benchmarks).
STEP_BENCHMARKS["aggregate"] = [f"{BENCH}/aggregate.tsv"]


rule aggregate:
    input:
        metrics=eval_files("metrics.json"),
        scores=eval_files("scores.csv"),
    output:
        accuracy=report(
            "results/accuracy.csv",
            caption="../report/accuracy.rst",
            category="Results",
            labels={"table": "LFW accuracy"},
        ),
        summary="results/summary.csv",
        folds="results/folds.csv",
        metrics="results/metrics.json",
        significance=report(
            "results/significance.csv",
            caption="../report/significance.rst",
            category="Results",
            labels={"table": "paired significance"},
        ),
        paper=report(
            "results/paper_comparison.md",
            caption="../report/paper_comparison.rst",
            category="Results",
            labels={"table": "paper comparison"},
        ),
    log:
        "logs/aggregate.log",
    benchmark:
        "logs/benchmarks/aggregate.tsv"
    localrule: True
    conda:
        "../envs/srlrfr.yaml"
    resources:
        **job_resources("aggregate"),
    params:
        settings=settings("lambda", "fnet", "degrade.model", "evaluate.datasets"),
    shell:
        "srlrfr aggregate --settings {params.settings:q} --metrics {input.metrics} --out-dir results > {log} 2>&1"
