# Input and params functions of the activations stage (its rules: workflow/rules/activations.smk).

# Layers extracted together (activations.layer_passes): one pass rule per group
# (activations.smk); extract_activations makes the shards of every other layer.
from protsae.config import layer_passes, pass_rule_name

LAYER_PASSES = layer_passes(config)
LONE_LAYER = r"(?!(?:{})(?!\d))\d+".format(
    _alternatives(sorted({layer for group in LAYER_PASSES for layer in group}))
)


def pass_shards(group):
    """The shard files one pass job writes: each layer of ``group``, one shard."""
    return [
        res("activations", "{model}", f"L{layer}", "shard-{shard}.parquet")
        for layer in group
    ]


def layer_shards(wildcards):
    return expand(
        res("activations", MODEL, f"L{wildcards.layer}", "shard-{shard}.parquet"),
        shard=SHARDS,
    )


def lone_layer(wildcards):
    """The layers an extract_activations job writes: its own layer, a group of one."""
    return [int(wildcards.layer)]
