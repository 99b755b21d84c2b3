rule ingest:
    output:
        directory("data/index/{dataset}"),
    log:
        "logs/ingest_{dataset}.log",
    benchmark:
        "logs/benchmarks/ingest/{dataset}.tsv"
    conda:
        "../envs/srlrfr.yaml"
    params:
        settings=ingest_settings,
    shell:
        "srlrfr ingest {wildcards.dataset} --settings {params.settings:q} --out {output} > {log} 2>&1"
