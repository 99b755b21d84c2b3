# The benchmark: file of each of its jobs, for the report (common.smk:step_benchmarks).
STEP_BENCHMARKS["align"] = [f"{BENCH}/align/{d}_{GEOM}.tsv" for d in PREPARED_SETS]


rule align:
    input:
        index="data/index/{dataset}",
        landmarks="data/landmarks/{dataset}.csv",
    output:
        directory("data/aligned/{dataset}_{geometry}"),
    log:
        "logs/align_{dataset}_{geometry}.log",
    benchmark:
        "logs/benchmarks/align/{dataset}_{geometry}.tsv"
    conda:
        "../envs/srlrfr.yaml"
    resources:
        **job_resources("align", "index"),
    params:
        settings=settings("align.no_face", "align.fit", "align.corrupt"),
    shell:
        "srlrfr align --settings {params.settings:q} --index {input.index}/images.csv "
        "--landmarks {input.landmarks} --geometry {wildcards.geometry} --out {output} > {log} 2>&1"
