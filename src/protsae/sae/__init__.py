"""TopK sparse autoencoders: model, resumable training on activation shards, evaluation, file formats."""

from protsae.sae.config import TrainConfig
from protsae.sae.data import ActivationStream
from protsae.sae.formats import (
    export_saelens,
    import_interprot,
    load_sae,
    load_saelens,
    save_sae,
)
from protsae.sae.model import SAEConfig, SAEOutput, TopK, TopKSAE
from protsae.sae.train import TrainOutputs, TrainResult, TrainRun, train_sae

__all__ = [
    "ActivationStream",
    "SAEConfig",
    "SAEOutput",
    "TopK",
    "TopKSAE",
    "TrainConfig",
    "TrainOutputs",
    "TrainResult",
    "TrainRun",
    "export_saelens",
    "import_interprot",
    "load_sae",
    "load_saelens",
    "save_sae",
    "train_sae",
]
