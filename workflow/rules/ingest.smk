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
