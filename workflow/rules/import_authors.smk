# The benchmark: file of each of its jobs, for the report (common.smk:step_benchmarks).
STEP_BENCHMARKS["import_authors"] = [
    f"{BENCH}/import_authors/{methods.authors_checkpoint(m)}.tsv" for m in AUTHORS_METHODS
]


rule import_authors:
    output:
        "models/authors/{name}/model.pt",
    log:
        "logs/import_authors_{name}.log",
    benchmark:
        "logs/benchmarks/import_authors/{name}.tsv"
    localrule: True
    conda:
        "../envs/srlrfr.yaml"
    resources:
        **job_resources("import_authors"),
    params:
        settings=settings("evaluate.authors_weights", "data.cache"),
    shell:
        "srlrfr import-authors {wildcards.name} --settings {params.settings:q} --out {output} > {log} 2>&1"
