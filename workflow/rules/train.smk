def _train_inputs(w):
    inputs = {"pyramid": f"data/degraded/celeba_{GEOM}.npz"}
    if float(w.lam) > 0:  # lambda = 0 needs no FNet at all
        inputs["weights"] = FNET_WEIGHTS
    return inputs


rule train:
    input:
        unpack(_train_inputs),
    output:
        model="models/srnets/{fnet}/edsr_lambda{lam}/model.pt",
        losses="models/srnets/{fnet}/edsr_lambda{lam}/losses.csv",
    params:
        settings=settings("train", "degrade.kernel", "fnet"),
        weights=lambda w, input: f"--weights {input.weights}" if "weights" in input.keys() else "",
        out_dir=lambda w, output: os.path.dirname(output.model),
    threads: 2
    resources:
        gpu=1,
    log:
        "logs/train_{fnet}_lambda{lam}.log",
    shell:
        "srlrfr train --settings {params.settings:q} --pyramid {input.pyramid} --lam {wildcards.lam} "
        "{params.weights} --out-dir {params.out_dir} > {log} 2>&1"
