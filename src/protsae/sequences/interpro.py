"""InterPro's ``entry.list``: which accessions are Families (see docs/method.md)."""

from __future__ import annotations

import os

from protsae.sequences.common import InputError, open_text

ENTRY_LIST_HEADER = ["ENTRY_AC", "ENTRY_TYPE", "ENTRY_NAME"]


def read_entry_list(path: str | os.PathLike[str]) -> dict[str, tuple[str, str]]:
    """InterPro's ``entry.list``: accession -> (ENTRY_TYPE, ENTRY_NAME)."""
    entries: dict[str, tuple[str, str]] = {}
    with open_text(path) as fh:
        header = fh.readline().rstrip("\r\n")
        if header.split("\t")[:3] != ENTRY_LIST_HEADER:
            raise InputError(
                f"{path}: line 1 must be the tab-separated header "
                f"{' '.join(ENTRY_LIST_HEADER)}, found {header[:80]!r}"
            )
        for number, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 3 or not fields[0]:
                raise InputError(
                    f"{path}: line {number}: expected ENTRY_AC, ENTRY_TYPE and ENTRY_NAME "
                    f"separated by tabs, found {line.strip()[:80]!r}"
                )
            entries.setdefault(fields[0], (fields[1], fields[2]))
    return entries
