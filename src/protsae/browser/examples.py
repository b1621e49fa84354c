"""What a latent page shows beyond its top sequences: examples from lower activation quantiles,
the amino acids at its peaks, residue annotation tracks, and the steered sequences."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
_CODE = np.full(256, -1, dtype=np.int16)
for _i, _aa in enumerate(AMINO_ACIDS):
    _CODE[ord(_aa)] = _i


@dataclass
class LatentStats:
    """The columns of ``seq_stats`` the browser needs, as compact arrays (paper scale: about a
    hundred million rows per SAE), rows sorted by latent, then strongest first; ``id`` and
    ``split`` are codes into ``ids`` and ``splits``."""

    latent: np.ndarray  # int32
    max_act: np.ndarray  # float32
    argmax: np.ndarray  # int32
    n_active: np.ndarray  # int32
    id: np.ndarray  # int32 codes into ids
    split: np.ndarray  # int8 codes into splits
    ids: np.ndarray  # object: the distinct sequence ids
    splits: list[str]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end row of each latent's run of rows (latents with rows only)."""
        if not len(self.latent):
            return np.empty(0, np.int64), np.empty(0, np.int64)
        starts = np.flatnonzero(np.r_[True, self.latent[1:] != self.latent[:-1]])
        return starts, np.r_[starts[1:], len(self.latent)]


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Dictionary codes (int32) and values of a string column, one dictionary for all chunks."""
    column = column.unify_dictionaries() if pa.types.is_dictionary(column.type) else column
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    chunks = column.chunks
    if not chunks:
        return np.empty(0, np.int32), np.empty(0, object)
    values = chunks[0].dictionary.to_numpy(zero_copy_only=False)
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
    return codes.astype(np.int32), values


def read_latent_stats(path: str | os.PathLike[str]) -> LatentStats:
    """Read the browser's columns of ``seq_stats`` (strings as dictionary codes, never as
    Python objects per row) and sort them: by latent, then max activation descending, then id."""
    table = pq.read_table(
        path,
        columns=["latent", "id", "split", "max_act", "argmax", "n_active"],
        read_dictionary=["id", "split"],
    )
    id_codes, ids = _codes(table["id"])
    split_codes, splits = _codes(table["split"])
    latent = table["latent"].to_numpy().astype(np.int32)
    max_act = table["max_act"].to_numpy().astype(np.float32)
    # ids sorted as text, so ties in max activation break by id as in top_examples
    rank = np.empty(len(ids), np.int32)
    rank[np.argsort(ids.astype(str), kind="stable")] = np.arange(len(ids), dtype=np.int32)
    order = np.lexsort((rank[id_codes], -max_act, latent))
    return LatentStats(
        latent=latent[order],
        max_act=max_act[order],
        argmax=table["argmax"].to_numpy().astype(np.int32)[order],
        n_active=table["n_active"].to_numpy().astype(np.int32)[order],
        id=id_codes[order],
        split=split_codes.astype(np.int8)[order],
        ids=ids,
        splits=[str(v) for v in splits],
    )


def quantile_examples(
    stats: LatentStats,
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
    code_of = {str(v): i for i, v in enumerate(stats.ids)}
    out: dict[int, list[dict]] = {}
    for start, end in zip(*stats.bounds(), strict=True):
        latent = int(stats.latent[start])
        hidden = [code_of[i] for i in shown.get(latent, ()) if i in code_of]
        rows = np.arange(start, end)
        rest = rows[~np.isin(stats.id[start:end], hidden)]
        if not len(rest):
            continue
        n_active = end - start
        offset = n_active - len(rest)  # ranks taken by the top sequences shown above
        cuts = np.linspace(0, len(rest), min(bins, len(rest)) + 1).round().astype(int)
        sections = []
        for low, high in zip(cuts[:-1], cuts[1:], strict=True):
            part = rest[low:high]
            if not len(part):
                continue
            take = min(per_bin, len(part))
            picks = np.unique(((np.arange(take) + 0.5) * len(part) / take).astype(int))
            sections.append(
                {
                    "label": f"{100 * (offset + low) / n_active:.0f}–"
                    f"{100 * (offset + high) / n_active:.0f} %",
                    "low": float(stats.max_act[part].min()),
                    "high": float(stats.max_act[part].max()),
                    "n": int(len(part)),
                    "examples": [
                        {
                            "id": str(stats.ids[stats.id[row]]),
                            "split": stats.splits[stats.split[row]],
                            "max_act": float(stats.max_act[row]),
                            "argmax": int(stats.argmax[row]),
                            "n_active": int(stats.n_active[row]),
                        }
                        for row in part[picks]
                    ],
                }
            )
        out[latent] = sections
    return out


def peak_enrichment(
    stats: LatentStats, sequences: Mapping[str, str], width: int, top: int = 6
) -> dict[int, dict]:
    """The residues a latent fires on: per latent, the amino acid at each active sequence's
    peak (``argmax``) counted, against the composition of those same sequences.

    Returns ``{latent: {"n_peaks": n, "residues": [{aa, peaks, fraction, background,
    log2_enrichment}, ...]}}``, the ``top`` most frequent peak residues first; enrichment is
    log2(fraction at peaks / fraction in the sequences) with half a count added to each
    residue so a residue seen once in few peaks is not infinitely enriched.
    """
    ids = [str(i) for i in stats.ids]
    missing = [i for i in ids if i not in sequences]
    if missing:
        raise ValueError(f"sequences {missing[:5]} of seq_stats are not in Swiss-Prot")
    texts = [sequences[i].encode("ascii", "replace") for i in ids]
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
    codes = _CODE[np.frombuffer(b"".join(texts), dtype=np.uint8)]
    composition = np.zeros((len(ids), len(AMINO_ACIDS)))
    owner = np.repeat(np.arange(len(ids)), lengths)
    valid = codes >= 0
    np.add.at(composition, (owner[valid], codes[valid]), 1.0)

    seq_index = stats.id.astype(np.int64)
    argmax = stats.argmax.astype(np.int64)
    latent = stats.latent.astype(np.int64)
    inside = (argmax >= 0) & (argmax < lengths[seq_index]) if len(ids) else argmax < 0
    peak_code = np.full(len(latent), -1, dtype=np.int64)
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
    need = {"accession", "type", "start", "end", "concept"}
    names = set(pq.read_schema(path).names)
    if not need <= names:
        raise ValueError(f"{path}: not a swissprot_features table (lacks {need - names})")
    table = pq.read_table(path, columns=sorted(need))
    wanted = pa.array(sorted(accessions), pa.string())
    table = table.filter(pc.is_in(table["accession"], value_set=wanted)).to_pandas()
    table = table[
        table.start.notna()
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
