"""The sequences stage, one module per input: FASTA and the UniRef50 sample (:mod:`.fasta`),
Swiss-Prot (:mod:`.swissprot`) and its FT lines (:mod:`.features`), InterPro's entry list (:mod:`.interpro`), MMseqs2 clusters
(:mod:`.clusters`); shared helpers in :mod:`.common`. Public names are re-exported here.
"""

from protsae.sequences.clusters import (
    CLUSTERS_SCHEMA,
    Clustering,
    cluster_sequences,
    split_clusters,
)
from protsae.sequences.common import (
    GZIP_MAGIC,
    InputError,
    esm_residue_letters,
    is_gzip,
    open_binary,
    open_text,
)
from protsae.sequences.fasta import (
    UNIREF50_SCHEMA,
    FastaRecord,
    FastaStats,
    InMemoryFasta,
    Reservoir,
    read_fasta,
    sample_uniref50,
)
from protsae.sequences.features import SWISSPROT_FEATURES_SCHEMA, concept_name, parse_location
from protsae.sequences.interpro import ENTRY_LIST_HEADER, read_entry_list
from protsae.sequences.swissprot import (
    SWISSPROT_SCHEMA,
    iter_swissprot,
    parse_swissprot,
    parse_swissprot_with_features,
)

__all__ = [
    "CLUSTERS_SCHEMA",
    "ENTRY_LIST_HEADER",
    "GZIP_MAGIC",
    "SWISSPROT_FEATURES_SCHEMA",
    "SWISSPROT_SCHEMA",
    "UNIREF50_SCHEMA",
    "FastaRecord",
    "InMemoryFasta",
    "FastaStats",
    "InputError",
    "Reservoir",
    "Clustering",
    "cluster_sequences",
    "concept_name",
    "esm_residue_letters",
    "is_gzip",
    "iter_swissprot",
    "open_binary",
    "open_text",
    "parse_location",
    "parse_swissprot",
    "parse_swissprot_with_features",
    "read_entry_list",
    "read_fasta",
    "sample_uniref50",
    "split_clusters",
]
