# Input and params functions of the steering stage (its rules: workflow/rules/steering.smk).


def steering_latent_tables(wildcards):
    """The per-latent steering tables of one SAE (its family-specific latents, best F1 first,
    at most steering.max_latents), known once the latent_families checkpoint has run."""
    from protsae.latents.families import family_specific_latents

    families = checkpoints.latent_families.get(**wildcards).output[0]
    latents = family_specific_latents(families, config["steering"]["max_latents"])
    folder = STEERING_DIR.format(**wildcards)
    return [f"{folder}/latent-{latent}.parquet" for latent in latents]
