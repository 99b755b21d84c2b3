# The benchmark: file of each of its jobs, for the report (common.smk:step_benchmarks).
STEP_BENCHMARKS["features"] = [f"{BENCH}/features/{d}/{FNET}.tsv" for d in EVAL_SETS]


rule features:
    input:
        unpack(features_inputs),
    output:
        "results/features/{dataset}/{fnet}/hr.npz",
    log:
        "logs/features_{dataset}_{fnet}.log",
    benchmark:
        "logs/benchmarks/features/{dataset}/{fnet}.tsv"
    conda:
        "../envs/srlrfr.yaml"
    threads: 2
    resources:
        **job_resources("features", "aligned"),
    params:
        settings=settings(
            "fnet", "evaluate.batch_size", "evaluate.device", "evaluate.precision.fnet"
        ),
    shell:
        "srlrfr features --settings {params.settings:q} --threads {threads} --aligned {input.aligned} "
        "--weights {input.weights} --out {output} > {log} 2>&1"
