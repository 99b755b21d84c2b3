# The benchmark: file of each of its jobs, for the report (common.smk:step_benchmarks).
STEP_BENCHMARKS["train"] = [f"{BENCH}/train/{FNET}/{m}.tsv" for m in SR_METHODS]


rule train:
    input:
        unpack(train_inputs),
    output:
        model="models/srnets/{fnet}/{srnet}_lambda{lam}/model.pt",
        losses="models/srnets/{fnet}/{srnet}_lambda{lam}/losses.csv",
    log:
        "logs/train_{fnet}_{srnet}_lambda{lam}.log",
    benchmark:
        "logs/benchmarks/train/{fnet}/{srnet}_lambda{lam}.tsv"
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
