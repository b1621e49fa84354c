"""Read one probe task's source file: records, splits and counts of what was dropped."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.io import claim_outputs
from protsae.probes.data import task_data_from_file
from protsae.progress import get_logger
from protsae.store import sources_named

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

params = snakemake.params
source = snakemake.input.source
with sources_named({source: snakemake.input.record}):
    data = task_data_from_file(
        snakemake.wildcards.task,
        source,
        snakemake.output.table,
        snakemake.output.counts,
        long_sequences=params.long_sequences,
        validation_fraction=params.validation_fraction,
        test_fraction=params.test_fraction,
        seed=params.seed,
        ss_test_set=params.ss_test_set,
        meltome_split=params.meltome_split,
        expression_column=params.expression_column,
        split_identity=params.split_identity,
    )
    get_logger().info("%s: %s", source, dict(sorted(data.counts.items())))
