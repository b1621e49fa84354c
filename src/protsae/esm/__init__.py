"""ESM-2 through fair-esm: checkpoints (:mod:`.checkpoint`), the early-exit forward and layer
edits (:mod:`.forward`), and the masked-LM loss (:mod:`.mlm`).

The public names are re-exported here, so ``from protsae.esm import layer_representations``
works. Shard membership and extraction live in :mod:`protsae.activations`, which builds on
this package (never the other way round).
"""

from protsae.device import resolve_device
from protsae.esm.checkpoint import (
    build_random_init,
    load_model,
    save_esm2_checkpoint,
    save_random_init,
)
from protsae.esm.forward import (
    MAX_RESIDUES,
    RESIDUE_LETTERS,
    Edit,
    ForwardOptions,
    Record,
    check_layer,
    check_records,
    forward_with_layer_edit,
    layer_representations,
    model_device,
    multi_layer_representations,
    sae_positions,
    token_batches,
)
from protsae.esm.mlm import LayerEdit, Masking, mask_positions, masked_lm_cross_entropy

__all__ = [
    "MAX_RESIDUES",
    "RESIDUE_LETTERS",
    "Edit",
    "LayerEdit",
    "Masking",
    "ForwardOptions",
    "Record",
    "build_random_init",
    "check_layer",
    "check_records",
    "forward_with_layer_edit",
    "layer_representations",
    "load_model",
    "mask_positions",
    "masked_lm_cross_entropy",
    "model_device",
    "multi_layer_representations",
    "resolve_device",
    "sae_positions",
    "save_esm2_checkpoint",
    "save_random_init",
    "token_batches",
]
