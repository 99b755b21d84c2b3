rule features:
    # Full-resolution features of every LFW crop, computed once per FNet and
    # shared by every (method, resolution) configuration.
    input:
        aligned=f"data/aligned/lfw_{GEOM}.npz",
        weights="models/fnets/{fnet}.pt",
    output:
        "results/features/{fnet}/hr.npz",
    params:
        settings=settings("fnet", "evaluate.batch_size", "evaluate.device"),
    threads: 2
    resources:
        gpu=1,
    log:
        "logs/features_{fnet}.log",
    shell:
        "srlrfr features --settings {params.settings:q} --aligned {input.aligned} --weights {input.weights} "
        "--out {output} > {log} 2>&1"


def _eval_inputs(w):
    inputs = {
        "pairs": "data/index/lfw_pairs.csv",
        "aligned": f"data/aligned/lfw_{GEOM}.npz",
        "features": f"results/features/{w.fnet}/hr.npz",
        "weights": f"models/fnets/{w.fnet}.pt",
    }
    if w.res != FULL_RES:
        inputs["probes"] = f"data/degraded/lfw_{GEOM}.npz"
    if w.method not in ("hr", "bicubic", "bilinear_authors"):
        inputs["srnet"] = srnet_path(w.method)
    return inputs


def _eval_flags(w, input):
    flags = []
    if "probes" in input.keys():
        flags += [f"--probes {input.probes}", f"--factor {FACTORS[w.res]}"]
    if "srnet" in input.keys():
        flags.append(f"--srnet {input.srnet}")
    return " ".join(flags)


rule evaluate:
    input:
        unpack(_eval_inputs),
    output:
        scores=f"{EVAL_DIR}/scores.csv",
        metrics=f"{EVAL_DIR}/metrics.json",
        examples=f"{EVAL_DIR}/examples.npz",
    params:
        settings=settings("fnet", "evaluate", "align.no_face", "report.far_targets"),
        flags=_eval_flags,
        out_dir=lambda w, output: os.path.dirname(output.metrics),
    threads: 2
    resources:
        gpu=1,
    log:
        "logs/evaluate_{fnet}_{method}_{res}.log",
    shell:
        "srlrfr evaluate --settings {params.settings:q} --pairs {input.pairs} --aligned {input.aligned} "
        "--features {input.features} --weights {input.weights} {params.flags} --method {wildcards.method} "
        "--resolution {wildcards.res} --out-dir {params.out_dir} > {log} 2>&1"


rule aggregate:
    input:
        [f"results/eval/{FNET}/{m}/{r}/metrics.json" for m, r in CONFIGS],
    output:
        accuracy="results/accuracy.csv",
        summary="results/summary.csv",
        folds="results/folds.csv",
        metrics="results/metrics.json",
        paper="results/paper_comparison.md",
    params:
        settings=settings("lambda", "fnet"),
    log:
        "logs/aggregate.log",
    shell:
        "srlrfr aggregate --settings {params.settings:q} --metrics {input} --out-dir results > {log} 2>&1"


ACCURACY_OUTPUTS = rules.aggregate.output
