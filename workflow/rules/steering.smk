# Steering family-specific latents (docs/method.md, "Steering"): per latent, BLAST homologs of
# its top sequences in its family, their Clustal Omega alignments and conservation; then clamp
# the latent and compare ESM-2's argmax residues with the conservation. The latents come from
# the latent_families checkpoint (steering_latent_tables below).


include: "inputs/steering.smk"


rule steering_blastdb:
    input:
        res("sequences", "swissprot.parquet"),
    output:
        multiext(BLAST_DB, ".phr", ".pin", ".psq"),
    log:
        res("logs", "steering", "blastdb.log"),
    benchmark:
        res("benchmarks", "steering", "blastdb.tsv")
    conda:
        "../../envs/blast.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/steering_blastdb.py"


rule steering_homologs:
    input:
        families=f"{LATENTS_DIR}/families.parquet",
        top_examples=f"{LATENTS_DIR}/top_examples.parquet",
        swissprot=res("sequences", "swissprot.parquet"),
        db=multiext(BLAST_DB, ".phr", ".pin", ".psq"),
    output:
        conservation=f"{STEERING_DIR}/conservation/latent-{{latent}}.parquet",
        alignments=f"{STEERING_DIR}/alignments/latent-{{latent}}.parquet",
    log:
        f"{STEERING_LOGS}/homologs-{{latent}}.log",
    benchmark:
        f"{STEERING_BENCH}/homologs-{{latent}}.tsv"
    conda:
        "../../envs/blast.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        latent=wildcard_int("latent"),
        sequences=config["steering"]["sequences"],
        evalue=config["steering"]["blast"]["evalue"],
        max_hits=config["steering"]["blast"]["max_hits"],
        min_homologs=config["steering"]["min_homologs"],
    script:
        "../scripts/steering_homologs.py"


rule steer_latent:
    input:
        conservation=f"{STEERING_DIR}/conservation/latent-{{latent}}.parquet",
        sae=f"{SAE_DIR}/sae.safetensors",
        sae_json=f"{SAE_DIR}/sae.json",
        model=esm_checkpoint,
        regression=esm_regression,
    output:
        f"{STEERING_DIR}/latent-{{latent}}.parquet",
    log:
        f"{STEERING_LOGS}/steer-{{latent}}.log",
    benchmark:
        f"{STEERING_BENCH}/steer-{{latent}}.tsv"
    conda:
        "../../envs/protsae.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        layer=wildcard_int("layer"),
        multipliers=config["steering"]["multipliers"],
        only_where_active=config["steering"]["only_where_active"],
        max_tokens_per_batch=config["esm"]["max_tokens_per_batch"],
    script:
        "../scripts/steer_latent.py"


rule steering_summary:
    input:
        tables=steering_latent_tables,
        families=f"{LATENTS_DIR}/families.parquet",
    output:
        f"{STEERING_DIR}/summary.parquet",
    log:
        f"{STEERING_LOGS}/summary.log",
    conda:
        "../../envs/protsae.yaml"
    params:
        bins=config["steering"]["conservation_bins"],
        filter_multiplier=config["steering"]["filter"]["multiplier"],
        min_fraction_unchanged=config["steering"]["filter"]["min_fraction_unchanged"],
    script:
        "../scripts/steering_summary.py"
