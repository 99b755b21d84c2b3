rule ingest_lfw:
    output:
        index="data/index/lfw.csv",
        pairs="data/index/lfw_pairs.csv",
    params:
        settings=settings("data.lfw", "data.cache", "evaluate.folds"),
    log:
        "logs/ingest_lfw.log",
    shell:
        "srlrfr ingest lfw --settings {params.settings:q} "
        "--out-index {output.index} --out-pairs {output.pairs} > {log} 2>&1"


rule ingest_celeba:
    output:
        index="data/index/celeba.csv",
    params:
        settings=settings("data.celeba", "data.cache"),
    log:
        "logs/ingest_celeba.log",
    shell:
        "srlrfr ingest celeba --settings {params.settings:q} --out-index {output.index} > {log} 2>&1"


rule fnet_weights:
    output:
        weights="models/fnets/{fnet}.pt",
        provenance="models/fnets/{fnet}.source.json",
    params:
        settings=lambda w: settings(f"fnets.{w.fnet}", "data.cache"),
    log:
        "logs/fnet_weights_{fnet}.log",
    shell:
        "srlrfr fnet-weights --settings {params.settings:q} --fnet {wildcards.fnet} --out {output.weights} "
        "--provenance {output.provenance} > {log} 2>&1"


rule import_authors:
    output:
        "models/authors/{name}/model.pt",
    params:
        settings=settings("evaluate.authors_weights", "data.cache"),
    log:
        "logs/import_authors_{name}.log",
    shell:
        "srlrfr import-authors {wildcards.name} --settings {params.settings:q} --out {output} > {log} 2>&1"
