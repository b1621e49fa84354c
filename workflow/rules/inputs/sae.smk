# Input and params functions of the sae stage (its rules: workflow/rules/sae.smk).


def training_settings(wildcards):
    """The one mapping TrainConfig.from_mapping reads: sae.training (defaults from the schema)
    and this SAE's width and k. The job uses every key, so a change to sae.training reruns
    training; nothing else of the config is here."""
    return dict(
        config["sae"]["training"], width=int(wildcards.width), k=int(wildcards.k)
    )


def pretrained_weights(wildcards):
    return PRETRAINED[sae_spec(wildcards)]


def pretrained_k(wildcards):
    return sae_spec(wildcards).k


def esm_as_given(wildcards=None):
    """esm.model as the user wrote it, for the sae.json record of the ESM-2 an SAE was trained
    on; weights the workflow made (esm.random_init, esm.pretrain) are named by their file.
    """
    if config["esm"]["random_init"] or config["esm"]["pretrain"]:
        return esm_checkpoint()
    return config["esm"]["model"]
