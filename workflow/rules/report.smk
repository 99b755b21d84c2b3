rule report:
    input:
        summary="results/summary.csv",
        accuracy="results/accuracy.csv",
        folds="results/folds.csv",
        significance="results/significance.csv",
        pairs=f"data/index/{EVAL_SET}",
        scores=eval_files("scores.csv", [EVAL_SET]),
        examples=eval_files("examples.npz", [EVAL_SET]),
        metrics=eval_files("metrics.json", [EVAL_SET]),
        matrix=MATRIX_FILES,
        losses=[f"models/srnets/{FNET}/{m}/losses.csv" for m in SR_METHODS],
        steps=lambda wildcards: step_benchmarks(),
    output:
        html=report("results/report.html", caption="../report/html.rst", category="Report"),
        figures=report(
            directory("results/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
        plots=directory("results/plots"),
        steps=report(
            "results/steps.csv",
            caption="../report/steps.rst",
            category="Results",
            labels={"table": "time per step"},
        ),
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmarks/report.tsv"
    localrule: True
    conda:
        "../envs/srlrfr.yaml"
    resources:
        **job_resources("report"),
    params:
        settings=settings("lambda", "lambdas", "fnet", "report", "train", "degrade", "evaluate"),
    shell:
        "srlrfr report --settings {params.settings:q} --summary {input.summary} --pairs {input.pairs}/pairs.csv "
        "--scores {input.scores} --metrics {input.metrics} --matrix {input.matrix} --train-logs {input.losses} --benchmarks {input.steps} --out-dir results "
        "> {log} 2>&1"
