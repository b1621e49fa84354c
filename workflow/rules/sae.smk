# One TopK SAE per (layer, k, width) of the expanded sweeps, and its evaluation.


ruleorder: import_sae > train_sae


rule train_sae:
    input:
        shards=layer_shards,
    output:
        safetensors=res("sae", "{model}", "L{layer}", "k{k}-w{width}", "sae.safetensors"),
        json=res("sae", "{model}", "L{layer}", "k{k}-w{width}", "sae.json"),
        log_table=res("sae", "{model}", "L{layer}", "k{k}-w{width}", "train_log.parquet"),
    params:
        model_name=MODEL,
        layer=wildcard_int("layer"),
        k=wildcard_int("k"),
        width=wildcard_int("width"),
        lr=config["sae"]["training"]["lr"],
        batch_tokens=config["sae"]["training"]["batch_tokens"],
        total_tokens=config["sae"]["training"]["total_tokens"],
        auxk=config["sae"]["training"]["auxk"],
        dead_tokens=config["sae"]["training"]["dead_tokens"],
        shuffle_buffer_tokens=config["sae"]["training"]["shuffle_buffer_tokens"],
        checkpoint_every=config["sae"]["training"]["checkpoint_every"],
        seed=config["sae"]["training"]["seed"],
        checkpoint_dir=res("sae", "{model}", "L{layer}", "k{k}-w{width}", "checkpoint"),
    threads: 4
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=1440,
    log:
        res("logs", "sae", "{model}", "L{layer}", "k{k}-w{width}", "train.log"),
    benchmark:
        res("benchmarks", "sae", "{model}", "L{layer}", "k{k}-w{width}", "train.tsv")
    conda:
        "../../envs/protsae.yaml"
    script:
        "../scripts/train_sae.py"


rule import_sae:
    input:
        weights=pretrained_weights,
    output:
        safetensors=res("sae", "{model}", "L{layer}", "k{k}-w{width}", "sae.safetensors"),
        json=res("sae", "{model}", "L{layer}", "k{k}-w{width}", "sae.json"),
    wildcard_constraints:
        layer=_alternatives(sorted({s.layer for s in PRETRAINED})),
        k=_alternatives(sorted({s.k for s in PRETRAINED})),
        width=_alternatives(sorted({s.width for s in PRETRAINED})),
    params:
        model_name=MODEL,
        layer=wildcard_int("layer"),
        k=pretrained_k,
    log:
        res("logs", "sae", "{model}", "L{layer}", "k{k}-w{width}", "import.log"),
    conda:
        "../../envs/protsae.yaml"
    script:
        "../scripts/import_sae.py"


rule evaluate_sae:
    input:
        safetensors=res("sae", "{model}", "L{layer}", "k{k}-w{width}", "sae.safetensors"),
        json=res("sae", "{model}", "L{layer}", "k{k}-w{width}", "sae.json"),
        model=esm_files,
        sample=res("sequences", "uniref50_sample.parquet"),
    output:
        res("sae", "{model}", "L{layer}", "k{k}-w{width}", "eval.json"),
    params:
        checkpoint=esm_checkpoint(),
        layer=wildcard_int("layer"),
        holdout_fraction=config["activations"]["holdout_fraction"],
        max_sequences=config["sae"]["eval"]["max_sequences"],
        max_tokens_per_batch=config["esm"]["max_tokens_per_batch"],
    threads: 4
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    log:
        res("logs", "sae", "{model}", "L{layer}", "k{k}-w{width}", "eval.log"),
    benchmark:
        res("benchmarks", "sae", "{model}", "L{layer}", "k{k}-w{width}", "eval.tsv")
    conda:
        "../../envs/protsae.yaml"
    script:
        "../scripts/evaluate_sae.py"
