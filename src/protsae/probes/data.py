"""One probe task's data (rule ``probe_data``): its source read by :mod:`.formats`, the
long-sequence policy applied, the splits finished and the table written (:mod:`.tasks`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from protsae.probes.formats import (
    read_deeploc,
    read_expression,
    read_meltome,
    read_secondary_structure,
)
from protsae.probes.tasks import (
    TaskData,
    apply_length_policy,
    check_classes,
    drop_unlabelled_chains,
    finish_splits,
    identity_clusters,
    write_task_data,
)
from protsae.sequences import InputError


@dataclass(frozen=True)
class TaskOptions:
    """How a probe task's source becomes its records (the config's ``probes`` keys): the
    long-sequence policy, the validation and test fractions and their seed, which split of the
    secondary-structure and Meltome files, the expression table's sequence column, and the
    identity at which carved splits keep MMseqs2 clusters whole (None: record by record)."""

    long_sequences: str = "crop"
    validation_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    ss_test_set: str = "cb513"
    meltome_split: str = "mixed_split"
    expression_column: str = "Construct.seq..aa."
    split_identity: float | None = 0.4


def load_task(
    task: str, path: str | os.PathLike[str], options: TaskOptions | None = None
) -> TaskData:
    """Read ``task``'s source file, apply the long-sequence policy and finish the splits.

    Splits come from the data; test (expression only) and validation are carved out of train,
    seeded, where the data give none — by whole MMseqs2 clusters at ``split_identity`` sequence
    identity (the paper's 40%), or record by record when it is None. ``counts`` says what was
    read, dropped, cropped and kept. ``options`` default to :class:`TaskOptions`'s.
    """
    o = options or TaskOptions()
    if task == "secondary_structure":
        data = read_secondary_structure(path, o.ss_test_set)
    elif task == "localization":
        data = read_deeploc(path)
    elif task == "thermostability":
        data = read_meltome(path, o.meltome_split)
    elif task == "expression":
        data = read_expression(path, o.expression_column)
    else:
        raise ValueError(f"unknown probe task {task!r}")
    apply_length_policy(data, o.long_sequences)
    drop_unlabelled_chains(data)
    groups = None
    if o.split_identity is not None and not any(r.split == "test" for r in data.records):
        groups = identity_clusters(data.records, o.split_identity)
        data.counts["identity_clusters"] = len(set(groups.values()))
    try:
        finish_splits(data, o.validation_fraction, o.test_fraction, o.seed, groups)
        check_classes(data)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None
    return data


def task_data_from_file(
    task: str,
    source: str | os.PathLike[str],
    table_path: str | os.PathLike[str],
    counts_path: str | os.PathLike[str],
    **options,
) -> TaskData:
    """:func:`load_task` then ``probes/data/{task}.parquet`` and its counts JSON.

    Both files are written only after the whole source has been read and checked, so a bad
    record leaves nothing behind.
    """
    data = load_task(task, source, TaskOptions(**options))
    write_task_data(data, table_path, counts_path)
    return data
