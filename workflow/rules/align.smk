rule landmarks:
    input:
        "data/index/{dataset}.csv",
    output:
        csv="data/landmarks/{dataset}.csv",
        report="data/landmarks/{dataset}_no_face.csv",
    params:
        settings=lambda w: settings(f"align.landmarks.{w.dataset}", "align.min_face_size", "align.thresholds",
                                    "align.batch_size", "align.device"),
    threads: 2
    resources:
        gpu=1,
    log:
        "logs/landmarks_{dataset}.log",
    shell:
        "srlrfr landmarks {wildcards.dataset} --settings {params.settings:q} --index {input} "
        "--out {output.csv} --report {output.report} > {log} 2>&1"


rule align:
    input:
        index="data/index/{dataset}.csv",
        landmarks="data/landmarks/{dataset}.csv",
    output:
        "data/aligned/{dataset}_{geometry}.npz",
    params:
        settings=settings("align.no_face"),
    log:
        "logs/align_{dataset}_{geometry}.log",
    shell:
        "srlrfr align --settings {params.settings:q} --index {input.index} --landmarks {input.landmarks} "
        "--geometry {wildcards.geometry} --out {output} > {log} 2>&1"


rule degrade:
    # LFW: the evaluation probes (degrade.factors). CelebA: the training
    # pyramid 1, 1/2 .. 1/16 of METHOD.md, made by the same code.
    input:
        "data/aligned/{dataset}_{geometry}.npz",
    output:
        "data/degraded/{dataset}_{geometry}.npz",
    params:
        settings=settings("degrade", "fnet"),
        factors=lambda w: " ".join(map(str, config["degrade"]["factors"] if w.dataset == "lfw" else [1, 2, 4, 8, 16])),
    log:
        "logs/degrade_{dataset}_{geometry}.log",
    shell:
        "srlrfr degrade --settings {params.settings:q} --aligned {input} --factors {params.factors} "
        "--out {output} > {log} 2>&1"
