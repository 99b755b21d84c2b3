def fnet_weights_benchmarks():
    """The benchmark: file of each of this rule's jobs (common.smk:step_benchmarks)."""
    return [f"{BENCH}/fnet_weights/{FNET}.tsv"]


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
