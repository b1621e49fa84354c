# The final targets: every output of the configured stages (the Snakefile's `rule all`).


def get_final_targets():
    """Every output of the configured stages: what `rule all` asks for."""
    targets = [
        res("sequences", "uniref50_sample.parquet"),
        res("sequences", "swissprot.parquet"),
        res("sequences", "swissprot_clusters.parquet"),
    ]
    for spec in SAES:
        targets += [f"{sae_dir(spec)}/sae.safetensors", f"{sae_dir(spec)}/eval.json"]
        if spec in SWEEP_SAES:
            targets.append(f"{sae_dir(spec)}/train_log.parquet")
        targets += [
            f"{latents_dir(spec)}/{name}"
            for name in (
                "classes.parquet",
                "families.parquet",
                "concepts.parquet",
                "descriptions.parquet",
                "summary.json",
            )
        ]
        targets.append(f"{steering_dir(spec)}/summary.parquet")
    if SAES:
        targets += [
            res("tables", "sae_metrics.csv"),
            res("tables", "latent_summary.csv"),
        ]
    targets += probe_targets()
    targets += figure_targets() + probe_figure_targets() + steering_figure_targets()
    targets += browser_targets()
    return targets
