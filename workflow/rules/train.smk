# The benchmark: file of each of its jobs, for the report (common.smk:step_benchmarks).
STEP_BENCHMARKS["train"] = [f"{BENCH}/train/{FNET}/{m}.tsv" for m in SR_METHODS]


rule train:
    input:
        unpack(train_inputs),
    output:
        model=f"{SRNET_FOLDER}/model.pt",
        losses=f"{SRNET_FOLDER}/losses.csv",
    log:
        f"logs/train_{{fnet}}_{SRNET_METHOD}.log",
    benchmark:
        f"logs/benchmarks/train/{{fnet}}/{SRNET_METHOD}.tsv"
    conda:
        "../envs/srlrfr.yaml"
    threads: 2
    resources:
        **job_resources("train"),
    params:
        settings=train_settings,
        data=train_data_flags,
        out_dir=lambda w, output: os.path.dirname(output.model),
    shell:
        "srlrfr train --settings {params.settings:q} --threads {threads} {params.data} "
        "--srnet {wildcards.srnet} --lam {wildcards.lam} --out-dir {params.out_dir} > {log} 2>&1"
