# The benchmark: file of each of its jobs, for the report (common.smk:step_benchmarks).
STEP_BENCHMARKS["evaluate"] = [
    f"{BENCH}/evaluate/{d}/{FNET}/{m}/{r}.tsv" for d in EVAL_SETS for m, r in CONFIGS
]


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        scores=f"{EVAL_DIR}/scores.csv",
        metrics=f"{EVAL_DIR}/metrics.json",
        features=f"{EVAL_DIR}/features.npz",
        examples=f"{EVAL_DIR}/examples.npz",
    log:
        "logs/evaluate_{dataset}_{fnet}_{method}_{res}.log",
    benchmark:
        "logs/benchmarks/evaluate/{dataset}/{fnet}/{method}/{res}.tsv"
    conda:
        "../envs/srlrfr.yaml"
    threads: 2
    resources:
        **job_resources("evaluate", "aligned"),
    params:
        settings=eval_settings,
        flags=eval_flags,
        out_dir=lambda w, output: os.path.dirname(output.metrics),
    shell:
        "srlrfr evaluate --settings {params.settings:q} --threads {threads} --pairs {input.pairs}/pairs.csv "
        "--aligned {input.aligned} --features {input.features} --weights {input.weights} {params.flags} "
        "--dataset {wildcards.dataset} --method {wildcards.method} --resolution {wildcards.res} --out-dir {params.out_dir} > {log} 2>&1"
