# One TopK SAE per (layer, k, width) of the expanded sweeps, and its evaluation.


include: "inputs/sae.smk"


ruleorder: import_sae > train_sae


rule train_sae:
    input:
        shards=layer_shards,
        model=esm_checkpoint,
    output:
        safetensors=f"{SAE_DIR}/sae.safetensors",
        json=f"{SAE_DIR}/sae.json",
        log_table=f"{SAE_DIR}/train_log.parquet",
    log:
        f"{SAE_LOGS}/train.log",
    benchmark:
        f"{SAE_BENCH}/train.tsv"
    conda:
        "../../envs/protsae.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=1440,
    params:
        model_name=MODEL,
        esm_model=esm_as_given,
        layer=wildcard_int("layer"),
        training=training_settings,
        checkpoint_dir=f"{SAE_DIR}/checkpoint",
    script:
        "../scripts/train_sae.py"


rule import_sae:
    input:
        weights=pretrained_weights,
        model=esm_checkpoint,
    output:
        safetensors=f"{SAE_DIR}/sae.safetensors",
        json=f"{SAE_DIR}/sae.json",
    log:
        f"{SAE_LOGS}/import.log",
    wildcard_constraints:
        layer=_alternatives(sorted({s.layer for s in PRETRAINED})),
        k=_alternatives(sorted({s.k for s in PRETRAINED})),
        width=_alternatives(sorted({s.width for s in PRETRAINED})),
    conda:
        "../../envs/protsae.yaml"
    params:
        model_name=MODEL,
        esm_model=esm_as_given,
        layer=wildcard_int("layer"),
        k=pretrained_k,
    script:
        "../scripts/import_sae.py"


rule evaluate_sae:
    input:
        safetensors=f"{SAE_DIR}/sae.safetensors",
        json=f"{SAE_DIR}/sae.json",
        model=esm_checkpoint,
        regression=esm_regression,
        sample=res("sequences", "uniref50_sample.parquet"),
    output:
        f"{SAE_DIR}/eval.json",
    log:
        f"{SAE_LOGS}/eval.log",
    benchmark:
        f"{SAE_BENCH}/eval.tsv"
    conda:
        "../../envs/protsae.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    params:
        layer=wildcard_int("layer"),
        holdout_fraction=config["activations"]["holdout_fraction"],
        max_sequences=config["sae"]["eval"]["max_sequences"],
        mask_draws=config["sae"]["eval"]["mask_draws"],
        max_tokens_per_batch=config["esm"]["max_tokens_per_batch"],
    script:
        "../scripts/evaluate_sae.py"
