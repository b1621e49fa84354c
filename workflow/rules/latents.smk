# What each latent does on the Swiss-Prot evaluation set: statistics, pattern classes and
# family specificity. The families table is a checkpoint: steering fans out over it.


rule latent_stats:
    input:
        sae=f"{SAE_DIR}/sae.safetensors",
        sae_json=f"{SAE_DIR}/sae.json",
        model=esm_checkpoint,
        regression=esm_regression,
        swissprot=res("sequences", "swissprot.parquet"),
        clusters=res("sequences", "swissprot_clusters.parquet"),
    output:
        seq_stats=f"{LATENTS_DIR}/seq_stats.parquet",
        top_examples=f"{LATENTS_DIR}/top_examples.parquet",
    log:
        f"{LATENT_LOGS}/stats.log",
    benchmark:
        f"{LATENT_BENCH}/stats.tsv"
    conda:
        "../../envs/protsae.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=480,
    params:
        layer=wildcard_int("layer"),
        top_examples=config["latents"]["top_examples"],
        max_tokens_per_batch=config["esm"]["max_tokens_per_batch"],
    script:
        "../scripts/latent_stats.py"


rule latent_classes:
    input:
        seq_stats=f"{LATENTS_DIR}/seq_stats.parquet",
        top_examples=f"{LATENTS_DIR}/top_examples.parquet",
    output:
        f"{LATENTS_DIR}/classes.parquet",
    log:
        f"{LATENT_LOGS}/classes.log",
    conda:
        "../../envs/protsae.yaml"
    params:
        width=wildcard_int("width"),
        min_sequences=config["latents"]["min_sequences"],
        periodic_fraction=config["latents"]["periodic_fraction"],
        periodic_min_activations=config["latents"]["periodic_min_activations"],
        periodic_max_region=config["latents"]["periodic_max_region"],
        motif_bounds=config["latents"]["motif_bounds"],
        whole_coverage=config["latents"]["whole_coverage"],
    script:
        "../scripts/latent_classes.py"


checkpoint latent_families:
    input:
        seq_stats=f"{LATENTS_DIR}/seq_stats.parquet",
        swissprot=res("sequences", "swissprot.parquet"),
        clusters=res("sequences", "swissprot_clusters.parquet"),
    output:
        f"{LATENTS_DIR}/families.parquet",
    log:
        f"{LATENT_LOGS}/families.log",
    conda:
        "../../envs/protsae.yaml"
    params:
        width=wildcard_int("width"),
        thresholds=config["families"]["thresholds"],
        f1_threshold=config["families"]["f1_threshold"],
        min_train_members=config["families"]["min_train_members"],
    script:
        "../scripts/latent_families.py"


rule latent_summary:
    input:
        classes=f"{LATENTS_DIR}/classes.parquet",
        families=f"{LATENTS_DIR}/families.parquet",
        concepts=f"{LATENTS_DIR}/concepts.parquet",
    output:
        f"{LATENTS_DIR}/summary.json",
    log:
        f"{LATENT_LOGS}/summary.log",
    conda:
        "../../envs/protsae.yaml"
    params:
        concept_f1_threshold=config["concepts"]["f1_threshold"],
    script:
        "../scripts/latent_summary.py"


# Residue concepts (docs/method.md "Residue concepts"): per SAE, after its latent statistics
# (thresholds are fractions of each latent's train max in seq_stats). The evaluation set is
# encoded again, as in latent_stats, and counted against the Swiss-Prot features.
rule latent_concepts:
    input:
        sae=f"{SAE_DIR}/sae.safetensors",
        sae_json=f"{SAE_DIR}/sae.json",
        model=esm_checkpoint,
        regression=esm_regression,
        swissprot=res("sequences", "swissprot.parquet"),
        clusters=res("sequences", "swissprot_clusters.parquet"),
        features=res("sequences", "swissprot_features.parquet"),
        seq_stats=f"{LATENTS_DIR}/seq_stats.parquet",
    output:
        f"{LATENTS_DIR}/concepts.parquet",
    log:
        f"{LATENT_LOGS}/concepts.log",
    benchmark:
        f"{LATENT_BENCH}/concepts.tsv"
    conda:
        "../../envs/protsae.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=480,
    params:
        layer=wildcard_int("layer"),
        max_tokens_per_batch=config["esm"]["max_tokens_per_batch"],
        min_proteins=config["concepts"]["min_proteins"],
        thresholds=config["concepts"]["thresholds"],
    script:
        "../scripts/latent_concepts.py"


rule latent_descriptions:
    input:
        families=f"{LATENTS_DIR}/families.parquet",
        concepts=f"{LATENTS_DIR}/concepts.parquet",
        seq_stats=f"{LATENTS_DIR}/seq_stats.parquet",
        swissprot=res("sequences", "swissprot.parquet"),
        clusters=res("sequences", "swissprot_clusters.parquet"),
    output:
        f"{LATENTS_DIR}/descriptions.parquet",
    log:
        f"{LATENT_LOGS}/descriptions.log",
    conda:
        "../../envs/protsae.yaml"
    params:
        width=wildcard_int("width"),
    script:
        "../scripts/latent_descriptions.py"
