# The benchmark: file of each of its jobs, for the report (common.smk:step_benchmarks).
STEP_BENCHMARKS["ingest"] = [f"{BENCH}/ingest/{d}.tsv" for d in PREPARED_SETS]


rule ingest:
    output:
        directory("data/index/{dataset}"),
    log:
        "logs/ingest_{dataset}.log",
    benchmark:
        "logs/benchmarks/ingest/{dataset}.tsv"
    localrule: True
    conda:
        "../envs/srlrfr.yaml"
    resources:
        **job_resources("ingest"),
    params:
        settings=ingest_settings,
    shell:
        "srlrfr ingest {wildcards.dataset} --settings {params.settings:q} --out {output} > {log} 2>&1"
