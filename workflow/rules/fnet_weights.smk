# The benchmark: file of each of its jobs, for the report (common.smk:step_benchmarks).
STEP_BENCHMARKS["fnet_weights"] = [f"{BENCH}/fnet_weights/{FNET}.tsv"]


rule fnet_weights:
    output:
        weights="models/fnets/{fnet}.pt",
        provenance="models/fnets/{fnet}.source.json",
    log:
        "logs/fnet_weights_{fnet}.log",
    benchmark:
        "logs/benchmarks/fnet_weights/{fnet}.tsv"
    localrule: True
    conda:
        "../envs/srlrfr.yaml"
    resources:
        **job_resources("fnet_weights"),
    params:
        settings=lambda w: settings(f"fnets.{w.fnet}", "data.cache"),
    shell:
        "srlrfr fnet-weights --settings {params.settings:q} --fnet {wildcards.fnet} --out {output.weights} "
        "--provenance {output.provenance} > {log} 2>&1"
