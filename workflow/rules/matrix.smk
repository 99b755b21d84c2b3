# The benchmark: file of each of its jobs, for the report (common.smk:step_benchmarks).
STEP_BENCHMARKS["matrix"] = [f"{BENCH}/matrix/{FNET}/{MATRIX_METHOD}.tsv"] if MATRIX_METHOD else []


rule matrix:
    input:
        pairs=f"data/index/{EVAL_SET}",
        aligned=aligned_dir(EVAL_SET),
        full=f"results/features/{EVAL_SET}/{{fnet}}/hr.npz",
        features=matrix_features,
    output:
        "results/matrix/{fnet}/{method}.csv",
    log:
        "logs/matrix_{fnet}_{method}.log",
    benchmark:
        "logs/benchmarks/matrix/{fnet}/{method}.tsv"
    localrule: True
    conda:
        "../envs/srlrfr.yaml"
    params:
        settings=settings("evaluate.threshold_steps", "align.no_face", "report.far_targets"),
        full_res=FULL_RES,
    shell:
        "srlrfr matrix --settings {params.settings:q} --pairs {input.pairs}/pairs.csv --aligned {input.aligned} "
        "--full-features {input.full} --full-resolution {params.full_res} --features {input.features} --method {wildcards.method} "
        "--out {output} > {log} 2>&1"
