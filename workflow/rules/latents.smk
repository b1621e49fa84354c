# What each latent does on the Swiss-Prot evaluation set: statistics, pattern classes and
# family specificity. The families table is a checkpoint: steering fans out over it.


rule latent_stats:
    input:
        sae=res("sae", "{model}", "L{layer}", "k{k}-w{width}", "sae.safetensors"),
        sae_json=res("sae", "{model}", "L{layer}", "k{k}-w{width}", "sae.json"),
        model=esm_files,
        swissprot=res("sequences", "swissprot.parquet"),
        clusters=res("sequences", "swissprot_clusters.parquet"),
    output:
        seq_stats=res("latents", "{model}", "L{layer}", "k{k}-w{width}", "seq_stats.parquet"),
        top_examples=res(
            "latents", "{model}", "L{layer}", "k{k}-w{width}", "top_examples.parquet"
        ),
    params:
        checkpoint=esm_checkpoint(),
        layer=wildcard_int("layer"),
        top_examples=config["latents"]["top_examples"],
        max_tokens_per_batch=config["esm"]["max_tokens_per_batch"],
    threads: 4
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=480,
    log:
        res("logs", "latents", "{model}", "L{layer}", "k{k}-w{width}", "stats.log"),
    benchmark:
        res("benchmarks", "latents", "{model}", "L{layer}", "k{k}-w{width}", "stats.tsv")
    conda:
        "../../envs/protsae.yaml"
    script:
        "../scripts/latent_stats.py"


rule latent_classes:
    input:
        seq_stats=res("latents", "{model}", "L{layer}", "k{k}-w{width}", "seq_stats.parquet"),
        top_examples=res(
            "latents", "{model}", "L{layer}", "k{k}-w{width}", "top_examples.parquet"
        ),
        sae=res("sae", "{model}", "L{layer}", "k{k}-w{width}", "sae.safetensors"),
    output:
        res("latents", "{model}", "L{layer}", "k{k}-w{width}", "classes.parquet"),
    params:
        min_sequences=config["latents"]["min_sequences"],
        periodic_fraction=config["latents"]["periodic_fraction"],
        periodic_min_activations=config["latents"]["periodic_min_activations"],
        periodic_max_region=config["latents"]["periodic_max_region"],
        motif_bounds=config["latents"]["motif_bounds"],
        whole_coverage=config["latents"]["whole_coverage"],
    log:
        res("logs", "latents", "{model}", "L{layer}", "k{k}-w{width}", "classes.log"),
    conda:
        "../../envs/protsae.yaml"
    script:
        "../scripts/latent_classes.py"


checkpoint latent_families:
    input:
        seq_stats=res("latents", "{model}", "L{layer}", "k{k}-w{width}", "seq_stats.parquet"),
        swissprot=res("sequences", "swissprot.parquet"),
        sae=res("sae", "{model}", "L{layer}", "k{k}-w{width}", "sae.safetensors"),
    output:
        res("latents", "{model}", "L{layer}", "k{k}-w{width}", "families.parquet"),
    params:
        thresholds=config["families"]["thresholds"],
        f1_threshold=config["families"]["f1_threshold"],
    log:
        res("logs", "latents", "{model}", "L{layer}", "k{k}-w{width}", "families.log"),
    conda:
        "../../envs/protsae.yaml"
    script:
        "../scripts/latent_families.py"


rule latent_summary:
    input:
        classes=res("latents", "{model}", "L{layer}", "k{k}-w{width}", "classes.parquet"),
        families=res("latents", "{model}", "L{layer}", "k{k}-w{width}", "families.parquet"),
    output:
        res("latents", "{model}", "L{layer}", "k{k}-w{width}", "summary.json"),
    log:
        res("logs", "latents", "{model}", "L{layer}", "k{k}-w{width}", "summary.log"),
    conda:
        "../../envs/protsae.yaml"
    script:
        "../scripts/latent_summary.py"
