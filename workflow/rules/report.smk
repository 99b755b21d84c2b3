rule report:
    input:
        summary="results/summary.csv",
        accuracy="results/accuracy.csv",
        folds="results/folds.csv",
        pairs="data/index/lfw_pairs.csv",
        scores=[f"results/eval/{FNET}/{m}/{r}/scores.csv" for m, r in CONFIGS],
        examples=[f"results/eval/{FNET}/{m}/{r}/examples.npz" for m, r in CONFIGS],
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
        "srlrfr report --settings {params.settings:q} --summary {input.summary} --pairs {input.pairs} "
        "--scores {input.scores} --train-logs {input.losses} --out-dir results > {log} 2>&1"


REPORT_OUTPUTS = rules.report.output
