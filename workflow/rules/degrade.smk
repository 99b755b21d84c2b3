# The benchmark: file of each of its jobs, for the report (common.smk:step_benchmarks).
STEP_BENCHMARKS["degrade"] = [f"{BENCH}/degrade/{d}_{GEOM}.tsv" for d in PREPARED_SETS]


rule degrade:
    input:
        "data/aligned/{dataset}_{geometry}",
    output:
        directory("data/degraded/{dataset}_{geometry}"),
    log:
        "logs/degrade_{dataset}_{geometry}.log",
    benchmark:
        "logs/benchmarks/degrade/{dataset}_{geometry}.tsv"
    conda:
        "../envs/srlrfr.yaml"
    resources:
        **job_resources("degrade", 0),
    params:
        settings=settings("degrade", "fnet"),
    shell:
        "srlrfr degrade {wildcards.dataset} --settings {params.settings:q} --aligned {input} "
        "--out {output} > {log} 2>&1"
