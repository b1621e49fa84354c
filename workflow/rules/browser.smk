# The offline feature browser (browser/ of the results folder, opened from disk): one job per
# SAE writes browser/L{layer}-k{k}-w{width}/ (its latent pages' data, alignments included,
# and its structures), one small job writes the pages and the index over them. Adding an SAE
# runs its job and the index only. Structures (structures.source) are fetched per SAE, for
# the top sequences its pages show.


include: "inputs/browser.smk"


rule structures:
    input:
        top_examples=latents_file("top_examples.parquet"),
        swissprot=res("sequences", "swissprot.parquet"),
    output:
        directory(res("structures", "L{layer}-k{k}-w{width}")),
    log:
        res("logs", "structures", "L{layer}-k{k}-w{width}.log"),
    conda:
        "../../envs/browser.yaml"
    params:
        source=STRUCTURES["source"],
        url=structures_url,
        folder=STRUCTURES["dir"],
        cache=f"{DOWNLOADS_DIR}/structures",
        top_sequences=min(
            STRUCTURES["top_sequences"], config["browser"]["top_sequences"]
        ),
    script:
        "../scripts/structures.py"


rule browser_sae:
    input:
        classes=latents_file("classes.parquet"),
        families=latents_file("families.parquet"),
        seq_stats=latents_file("seq_stats.parquet"),
        top_examples=latents_file("top_examples.parquet"),
        swissprot=res("sequences", "swissprot.parquet"),
        features=res("sequences", "swissprot_features.parquet"),
        entries=source_file("interpro_entries"),
        entries_record=source_record("interpro_entries"),
        probes=browser_probe_tables,
        steering=steering_summary_file,
        steered=browser_steered,
        structures=browser_structures,
        descriptions=latents_file("descriptions.parquet"),
    output:
        directory(BROWSER_SAE),
    log:
        res("logs", "browser", "L{layer}-k{k}-w{width}.log"),
    benchmark:
        res("benchmarks", "browser", "L{layer}-k{k}-w{width}.tsv")
    conda:
        "../../envs/browser.yaml"
    threads: 4
    params:
        sae=browser_sae,
        top_sequences=config["browser"]["top_sequences"],
        quantile_bins=config["browser"]["quantiles"]["bins"],
        quantile_examples=config["browser"]["quantiles"]["examples"],
    script:
        "../scripts/browser_sae.py"


rule browser_index:
    input:
        saes=browser_sae_dirs,
        viewer=browser_viewer,
    output:
        browser_index_files(),
    log:
        res("logs", "browser", "index.log"),
    conda:
        "../../envs/browser.yaml"
    params:
        title=f"{MODEL}, {len(SAES)} SAEs",
    script:
        "../scripts/browser_index.py"
