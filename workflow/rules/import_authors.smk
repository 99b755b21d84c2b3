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
