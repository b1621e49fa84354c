# A small ESM-2 trained here by masked-LM on the training part of the UniRef50 sample
# (config esm.pretrain), for the offline demo; published weights need no such job.


include: "inputs/pretrain.smk"


rule pretrain_esm:
    input:
        sample=res("sequences", "uniref50_sample.parquet"),
    output:
        model=res("esm", "{model}.pt"),
        regression=res("esm", "{model}-contact-regression.pt"),
    log:
        res("logs", "esm", "pretrain_{model}.log"),
    benchmark:
        res("benchmarks", "esm", "pretrain_{model}.tsv")
    conda:
        "../../envs/protsae.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        layers=pretrain_setting("layers"),
        embed_dim=pretrain_setting("embed_dim"),
        heads=pretrain_setting("heads"),
        steps=pretrain_setting("steps"),
        batch_tokens=pretrain_setting("batch_tokens"),
        lr=pretrain_setting("lr"),
        seed=pretrain_setting("seed"),
        checkpoint_every=pretrain_setting("checkpoint_every"),
        holdout_fraction=config["activations"]["holdout_fraction"],
        checkpoint_dir=res("esm", "{model}-checkpoint"),
    script:
        "../scripts/pretrain_esm.py"
