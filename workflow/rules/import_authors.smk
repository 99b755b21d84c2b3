rule import_authors:
    output:
        "models/authors/{name}/model.pt",
    log:
        "logs/import_authors_{name}.log",
    benchmark:
        "logs/benchmarks/import_authors/{name}.tsv"
    conda:
        "../envs/srlrfr.yaml"
    params:
        settings=settings("evaluate.authors_weights", "data.cache"),
    shell:
        "srlrfr import-authors {wildcards.name} --settings {params.settings:q} --out {output} > {log} 2>&1"
