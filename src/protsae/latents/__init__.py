"""Latent analysis: per-(latent, sequence) statistics, pattern classes, family specificity.

Stages (each a module, each usable alone):
- :mod:`~protsae.latents.stats` (rule ``latent_stats``), :mod:`~protsae.latents.collect`,
  :mod:`~protsae.latents.evaluation`: one streaming pass of the Swiss-Prot evaluation set
  through ESM-2 and the SAE -> ``seq_stats``, ``top_examples``. Only ``stats`` imports
  torch; import it explicitly (``from protsae.latents.stats import ...``).
- :mod:`~protsae.latents.classes`: activation-pattern classes -> ``classes``.
- :mod:`~protsae.latents.families`: InterPro family specificity -> ``families``.
- :mod:`~protsae.latents.summary`: per-SAE ``summary.json``.
"""

from protsae.latents.classes import (
    PATTERN_CLASSES,
    PatternRules,
    PatternStats,
    classes_from_files,
    classes_table,
    classify,
    pattern_stats,
)
from protsae.latents.collect import (
    SEQ_STATS_SCHEMA,
    SPLITS,
    TOP_EXAMPLES_SCHEMA,
    EvalRecord,
    LatentStatsCollector,
    SparseStats,
    StreamBounds,
    TopExamples,
    sparse_stats,
    stream_latent_stats,
)
from protsae.latents.evaluation import iter_evaluation_set, representatives
from protsae.latents.families import (
    DEFAULT_THRESHOLDS,
    EvaluationFamilies,
    f1_sweep,
    families_from_files,
    family_specific_latents,
    family_specificity,
)
from protsae.latents.summary import summarize, summary_from_files

__all__ = [
    "DEFAULT_THRESHOLDS",
    "PATTERN_CLASSES",
    "SEQ_STATS_SCHEMA",
    "SPLITS",
    "TOP_EXAMPLES_SCHEMA",
    "EvalRecord",
    "EvaluationFamilies",
    "LatentStatsCollector",
    "PatternRules",
    "PatternStats",
    "SparseStats",
    "TopExamples",
    "classes_from_files",
    "classes_table",
    "classify",
    "f1_sweep",
    "families_from_files",
    "family_specific_latents",
    "family_specificity",
    "iter_evaluation_set",
    "pattern_stats",
    "representatives",
    "sparse_stats",
    "StreamBounds",
    "stream_latent_stats",
    "summarize",
    "summary_from_files",
]
