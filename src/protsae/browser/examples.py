"""What a latent page shows beyond its top sequences: examples from lower activation quantiles,
the amino acids at its peaks, residue annotation tracks, and the steered sequences."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
_CODE = np.full(256, -1, dtype=np.int16)
for _i, _aa in enumerate(AMINO_ACIDS):
    _CODE[ord(_aa)] = _i


def read_latent_stats(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``latent, id, split, max_act, argmax, n_active`` of ``seq_stats``, strongest first
    within each latent."""
    columns = ["latent", "id", "split", "max_act", "argmax", "n_active"]
    stats = pq.read_table(path, columns=columns).to_pandas()
    return stats.sort_values(["latent", "max_act", "id"], ascending=[True, False, True])


def quantile_examples(
    stats: pd.DataFrame,
    shown: Mapping[int, set[str]],
    bins: int,
    per_bin: int,
) -> dict[int, list[dict]]:
    """Per latent: its active sequences other than those in ``shown[latent]`` (its top
    sequences), ranked by max activation and cut into ``bins`` bins of equal count (quantile
    bins, strongest first); from each, ``per_bin`` sequences spread evenly over the bin.

    Each bin: ``label`` (e.g. ``"25–50 %"``: the share of the latent's active sequences that
    activate it more strongly), ``low``/``high`` (max activations the bin spans), ``n``
    (sequences in it) and ``examples`` (rows with ``id``, ``split``, ``max_act``, ``argmax``,
    ``n_active``).
    """
    if bins < 1 or per_bin < 1:
        return {}
    out: dict[int, list[dict]] = {}
    latents = stats.latent.to_numpy()
    starts = np.flatnonzero(np.r_[True, latents[1:] != latents[:-1]]) if len(stats) else []
    ends = np.r_[starts[1:], len(stats)] if len(stats) else []
    for start, end in zip(starts, ends, strict=True):
        group = stats.iloc[start:end]
        latent = int(group.latent.iloc[0])
        rest = group[~group.id.isin(shown.get(latent, set()))]
        n_active = len(group)
        if rest.empty:
            continue
        cuts = np.linspace(0, len(rest), min(bins, len(rest)) + 1).round().astype(int)
        offset = n_active - len(rest)  # ranks taken by the top sequences shown above
        sections = []
        for low, high in zip(cuts[:-1], cuts[1:], strict=True):
            if high <= low:
                continue
            part = rest.iloc[low:high]
            picks = np.unique(
                ((np.arange(min(per_bin, len(part))) + 0.5) * len(part) / min(per_bin, len(part)))
                .astype(int)
                .clip(0, len(part) - 1)
            )
            first = 100 * (offset + low) / n_active
            last = 100 * (offset + high) / n_active
            sections.append(
                {
                    "label": f"{first:.0f}–{last:.0f} %",
                    "low": float(part.max_act.min()),
                    "high": float(part.max_act.max()),
                    "n": int(len(part)),
                    "examples": part.iloc[picks][
                        ["id", "split", "max_act", "argmax", "n_active"]
                    ].to_dict("records"),
                }
            )
        out[latent] = sections
    return out


def peak_enrichment(
    stats: pd.DataFrame, sequences: Mapping[str, str], width: int, top: int = 6
) -> dict[int, dict]:
    """The residues a latent fires on: per latent, the amino acid at each active sequence's
    peak (``argmax``) counted, against the composition of those same sequences.

    Returns ``{latent: {"n_peaks": n, "residues": [{aa, peaks, fraction, background,
    log2_enrichment}, ...]}}``, the ``top`` most frequent peak residues first; enrichment is
    log2(fraction at peaks / fraction in the sequences) with half a count added to each
    residue so a residue seen once in few peaks is not infinitely enriched.
    """
    ids = pd.Index(sorted(set(stats.id)))
    missing = [i for i in ids if i not in sequences]
    if missing:
        raise ValueError(f"sequences {missing[:5]} of seq_stats are not in Swiss-Prot")
    texts = [sequences[i].encode("ascii", "replace") for i in ids]
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
    buffer = np.frombuffer(b"".join(texts), dtype=np.uint8)
    codes = _CODE[buffer]
    composition = np.zeros((len(ids), len(AMINO_ACIDS)))
    owner = np.repeat(np.arange(len(ids)), lengths)
    valid = codes >= 0
    np.add.at(composition, (owner[valid], codes[valid]), 1.0)

    seq_index = ids.get_indexer(stats.id)
    argmax = stats.argmax.to_numpy().astype(np.int64)
    latent = stats.latent.to_numpy().astype(np.int64)
    inside = (argmax >= 0) & (argmax < lengths[seq_index])
    peak_code = np.full(len(stats), -1, dtype=np.int64)
    peak_code[inside] = codes[offsets[seq_index[inside]] + argmax[inside]]
    keep = peak_code >= 0
    peaks = np.zeros((width, len(AMINO_ACIDS)))
    np.add.at(peaks, (latent[keep], peak_code[keep]), 1.0)
    background = np.zeros((width, len(AMINO_ACIDS)))
    for aa in range(len(AMINO_ACIDS)):
        background[:, aa] = np.bincount(latent, weights=composition[seq_index, aa], minlength=width)

    out: dict[int, dict] = {}
    for lat in np.flatnonzero(peaks.sum(axis=1)):
        counts, bg = peaks[lat], background[lat]
        n = counts.sum()
        fraction = (counts + 0.5) / (n + 0.5 * len(AMINO_ACIDS))
        share = (bg + 0.5) / (bg.sum() + 0.5 * len(AMINO_ACIDS))
        order = [a for a in np.argsort(-counts, kind="stable")[:top] if counts[a] > 0]
        out[int(lat)] = {
            "n_peaks": int(n),
            "residues": [
                {
                    "aa": AMINO_ACIDS[a],
                    "peaks": int(counts[a]),
                    "fraction": float(counts[a] / n),
                    "background": float(bg[a] / max(bg.sum(), 1.0)),
                    "log2_enrichment": float(np.log2(fraction[a] / share[a])),
                }
                for a in order
            ],
        }
    return out


def feature_tracks(
    path: str | os.PathLike[str] | None, accessions: set[str]
) -> dict[str, list[dict]]:
    """accession -> its residue concepts from ``swissprot_features`` (``start``/``end``
    1-based inclusive as UniProt; ``label`` the concept). Features without a concept (types
    the concepts leave out, positions on another isoform) are not drawn. None without a table."""
    if path is None:
        return {}
    table = pq.read_table(path).to_pandas()
    need = {"accession", "type", "start", "end", "concept"}
    if not need <= set(table.columns):
        raise ValueError(f"{path}: not a swissprot_features table (lacks {need - set(table)})")
    table = table[
        table.accession.isin(accessions)
        & table.start.notna()
        & table.end.notna()
        & table.concept.notna()
        & (table.concept.astype(str) != "")
    ]
    out: dict[str, list[dict]] = {}
    for acc, kind, name, start, end in zip(
        table.accession, table.type, table.concept, table.start, table.end, strict=True
    ):
        out.setdefault(acc, []).append(
            {"type": str(kind), "label": str(name), "start": int(start), "end": int(end)}
        )
    for rows in out.values():
        rows.sort(key=lambda r: (r["start"], r["end"], r["label"]))
    return out


def steered_examples(
    paths: Sequence[str | os.PathLike[str]], max_sequences: int = 3
) -> dict[int, list[dict]]:
    """Per steered latent, up to ``max_sequences`` sequences of its steering table: the
    original residues, ESM-2's unsteered prediction (``baseline``), the family consensus and
    the steered prediction at each multiplier, as strings over the same positions."""
    out: dict[int, list[dict]] = {}
    for path in paths:
        table = pq.read_table(path).to_pandas()
        if table.empty:
            continue
        table = table.sort_values(["id", "multiplier", "pos"])
        examples = []
        for seq_id in list(dict.fromkeys(table.id))[:max_sequences]:
            rows = table[table.id == seq_id]
            first = rows[rows.multiplier == rows.multiplier.iloc[0]]
            examples.append(
                {
                    "id": seq_id,
                    "start": int(first.pos.iloc[0]),
                    "original": "".join(first.original),
                    "baseline": "".join(first.baseline),
                    "consensus": "".join(first.consensus.fillna("-").replace("", "-")),
                    "steered": [
                        {
                            "multiplier": float(m),
                            "clamp_value": float(part.clamp_value.iloc[0]),
                            "sequence": "".join(part.steered),
                        }
                        for m, part in rows.groupby("multiplier", sort=True)
                    ],
                }
            )
        out[int(table.latent.iloc[0])] = examples
    return out


def descriptions(path: str | os.PathLike[str] | None) -> dict[int, str]:
    """latent -> its generated one-line description (``descriptions.parquet``); none without."""
    if path is None:
        return {}
    table = pq.read_table(path, columns=["latent", "description"]).to_pandas()
    return {
        int(latent): str(text)
        for latent, text in zip(table.latent, table.description, strict=True)
        if isinstance(text, str) and text
    }
