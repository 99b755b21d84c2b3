# The benchmark: file of each of its jobs, for the report (common.smk:step_benchmarks).
STEP_BENCHMARKS["landmarks"] = [f"{BENCH}/landmarks/{d}.tsv" for d in PREPARED_SETS]


rule landmarks:
    input:
        "data/index/{dataset}",
    output:
        csv="data/landmarks/{dataset}.csv",
        report="data/landmarks/{dataset}_no_face.csv",
    log:
        "logs/landmarks_{dataset}.log",
    benchmark:
        "logs/benchmarks/landmarks/{dataset}.tsv"
    conda:
        "../envs/srlrfr.yaml"
    threads: 2
    resources:
        **job_resources("landmarks", 0),
    params:
        settings=landmark_settings,
    shell:
        "srlrfr landmarks {wildcards.dataset} --settings {params.settings:q} --threads {threads} "
        "--index {input}/images.csv --out {output.csv} --report {output.report} > {log} 2>&1"
