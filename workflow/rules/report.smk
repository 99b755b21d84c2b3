rule report:
    input:
        summary="results/summary.csv",
        accuracy="results/accuracy.csv",
        folds="results/folds.csv",
        pairs="data/index/lfw_pairs.csv",
        evals=[f"results/eval/{FNET}/{m}/{r}/{f}" for m, r in CONFIGS for f in ("scores.csv", "examples.npz")],
        losses=[f"models/srnets/{FNET}/edsr_lambda{l}/losses.csv" for l in LAMBDAS],
    output:
        html="results/report.html",
        figures=directory("results/figures"),
        plots=directory("results/plots"),
    params:
        settings=settings("lambda", "lambdas", "fnet", "report", "train", "degrade", "evaluate"),
    log:
        "logs/report.log",
    shell:
        "srlrfr report --settings {params.settings:q} --summary {input.summary} --pairs {input.pairs} --eval-root results/eval/{FNET} "
        "--train-logs {input.losses} --out-dir results > {log} 2>&1"


REPORT_OUTPUTS = rules.report.output
