# Linear probes (method.md, "Linear probes"): each task's data set read once, then per
# (layer, task) an ESM-embedding probe and an SAE-latent probe, the latents behind the SAE
# probe, and one table over all of them.


include: "inputs/probes.smk"


wildcard_constraints:
    task=_alternatives(PROBE_TASKS),
    features=r"esm|sae-k\d+-w\d+",
    control=r"majority|composition",


rule probe_data:
    input:
        source=probe_source,
        record=probe_source_record,
    output:
        table=res("probes", "data", "{task}.parquet"),
        counts=res("probes", "data", "{task}.json"),
    log:
        res("logs", "probes", "data", "{task}.log"),
    conda:
        "../../envs/probe_data.yaml"
    params:
        long_sequences=config["probes"]["long_sequences"],
        validation_fraction=config["probes"]["validation_fraction"],
        test_fraction=config["probes"]["test_fraction"],
        seed=config["probes"]["seed"],
        ss_test_set=config["probes"]["ss_test_set"],
        meltome_split=config["probes"]["meltome_split"],
        expression_column=config["probes"]["expression_column"],
        split_identity=config["probes"]["split_identity"],
    script:
        "../scripts/probe_data.py"


rule probe_fit:
    input:
        data=res("probes", "data", "{task}.parquet"),
        model=esm_checkpoint,
        regression=esm_regression,
        sae=probe_sae_files,
    output:
        json=f"{PROBE_DIR}/{{features}}.json",
        coef=f"{PROBE_DIR}/{{features}}.coef.parquet",
        predictions=f"{PROBE_DIR}/{{features}}-predictions.parquet",
    log:
        res("logs", "probes", "{model}", "L{layer}", "{task}", "{features}.log"),
    benchmark:
        res("benchmarks", "probes", "{model}", "L{layer}", "{task}", "{features}.tsv")
    conda:
        "../../envs/protsae.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=480,
    params:
        layer=wildcard_int("layer"),
        max_tokens_per_batch=config["esm"]["max_tokens_per_batch"],
        grid=probe_grid,
        training=probe_training,
        seed=config["probes"]["seed"],
    script:
        "../scripts/probe_fit.py"


rule probe_control:
    input:
        data=res("probes", "data", "{task}.parquet"),
    output:
        json=res("probes", "controls", "{task}", "{control}.json"),
        predictions=res("probes", "controls", "{task}", "{control}-predictions.parquet"),
    log:
        res("logs", "probes", "controls", "{task}", "{control}.log"),
    conda:
        "../../envs/protsae.yaml"
    threads: 2
    params:
        grid=probe_grid,
        training=probe_training,
        seed=config["probes"]["seed"],
    script:
        "../scripts/probe_control.py"


rule probe_interpret:
    input:
        esm=f"{PROBE_DIR}/esm.coef.parquet",
        sae=f"{PROBE_DIR}/sae-{PROBE_SAE_NAME}.coef.parquet",
        classes=probe_latent_table("classes"),
        families=probe_latent_table("families"),
    output:
        top_latents=f"{PROBE_DIR}/top_latents.parquet",
        coefficients=f"{PROBE_DIR}/coefficients.parquet",
    log:
        res("logs", "probes", "{model}", "L{layer}", "{task}", "interpret.log"),
    conda:
        "../../envs/protsae.yaml"
    params:
        layer=wildcard_int("layer"),
        sae_features=f"sae-{PROBE_SAE_NAME}",
        top_n=config["probes"]["top_latents"],
    script:
        "../scripts/probe_interpret.py"


rule probes_table:
    input:
        probes=all_probe_results,
        controls=all_probe_controls,
    output:
        report(res("tables", "probes.csv"), caption="../report/probes.rst"),
    log:
        res("logs", "tables", "probes.log"),
    conda:
        "../../envs/protsae.yaml"
    params:
        seed=config["probes"]["seed"],
    script:
        "../scripts/probes_table.py"
