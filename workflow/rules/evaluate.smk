rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        scores=f"{EVAL_DIR}/scores.csv",
        metrics=f"{EVAL_DIR}/metrics.json",
        examples=f"{EVAL_DIR}/examples.npz",
    log:
        "logs/evaluate_{fnet}_{method}_{res}.log",
    benchmark:
        "logs/benchmarks/evaluate/{fnet}/{method}/{res}.tsv"
    conda:
        "../envs/srlrfr.yaml"
    threads: 2
    resources:
        **job_resources("evaluate", "aligned"),
    params:
        settings=settings("fnet", "evaluate", "align.no_face", "report.far_targets"),
        flags=eval_flags,
        out_dir=lambda w, output: os.path.dirname(output.metrics),
    shell:
        "srlrfr evaluate --settings {params.settings:q} --threads {threads} --pairs {input.pairs}/pairs.csv "
        "--aligned {input.aligned} --features {input.features} --weights {input.weights} {params.flags} "
        "--method {wildcards.method} --resolution {wildcards.res} --out-dir {params.out_dir} > {log} 2>&1"
