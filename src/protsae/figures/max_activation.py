"""Max-activation histograms: per latent, of the sequences in its tested family and of the
rest (the paper's Figures 3a and 3b), and across latents, family-specific or not."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from matplotlib.axes import Axes
from matplotlib.figure import Figure

BATCH_ROWS = 1 << 20


class Membership:
    """Which (sequence id, InterPro family) pairs hold, looked up a batch at a time."""

    def __init__(self, ids: Sequence[str], families: Sequence[Sequence[str]]) -> None:
        self.ids = pd.Index(list(dict.fromkeys(ids)))
        names = sorted({f for fams in families for f in fams})
        self.families = pd.Index(names)
        id_code = self.ids.get_indexer(list(ids))
        pairs = [
            code * len(names) + self.families.get_loc(f)
            for code, fams in zip(id_code, families, strict=True)
            for f in fams
        ]
        self.pairs = np.unique(np.asarray(pairs, dtype=np.int64))

    @classmethod
    def from_swissprot(cls, path: str | os.PathLike[str]) -> Membership:
        """Family memberships from ``sequences/swissprot.parquet`` (accession, families)."""
        table = pq.read_table(path, columns=["accession", "families"])
        return cls(table["accession"].to_pylist(), [f or [] for f in table["families"].to_pylist()])

    def contains(self, ids: Sequence[str], families: Sequence[str | None]) -> np.ndarray:
        """Boolean array: is ``ids[i]`` a member of ``families[i]`` (None: never)?"""
        id_code = self.ids.get_indexer(list(ids)).astype(np.int64)
        fam_code = self.families.get_indexer(list(families)).astype(np.int64)
        keys = id_code * len(self.families) + fam_code
        ok = (id_code >= 0) & (fam_code >= 0)
        return ok & np.isin(keys, self.pairs)


@dataclass
class Histograms:
    """Per latent: max over sequences, active-sequence count, and histograms of each
    sequence's max activation divided by the latent's max, in ``bins`` equal bins of [0, 1]
    (``in_family`` for members of the latent's tested family, ``other`` for the rest)."""

    max_act: np.ndarray  # float64 [width], 0 for a latent no sequence activates
    n_sequences: np.ndarray  # int64 [width]
    in_family: np.ndarray  # int64 [width, bins]
    other: np.ndarray  # int64 [width, bins]

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.in_family.shape[1] + 1)


def _batches(path: str | os.PathLike[str], columns: list[str]):
    handle = pq.ParquetFile(path)
    yield from handle.iter_batches(batch_size=BATCH_ROWS, columns=columns)


def activation_histograms(
    seq_stats_path: str | os.PathLike[str],
    family_of: Sequence[str | None],
    membership: Membership,
    bins: int = 20,
) -> Histograms:
    """Stream ``seq_stats.parquet`` twice (max, then histograms); memory grows with
    width × bins, never with the number of rows. ``family_of[latent]`` is its tested family."""
    width = len(family_of)
    max_act = np.zeros(width)
    counts = np.zeros(width, dtype=np.int64)
    for batch in _batches(seq_stats_path, ["latent", "max_act"]):
        latent = batch.column(0).to_numpy().astype(np.int64)
        if latent.size and (latent.min() < 0 or latent.max() >= width):
            raise ValueError(f"{seq_stats_path}: latent ids outside 0..{width - 1}")
        np.maximum.at(max_act, latent, batch.column(1).to_numpy().astype(np.float64))
        counts += np.bincount(latent, minlength=width)
    families = np.asarray(list(family_of), dtype=object)
    hist = np.zeros((2, width, bins), dtype=np.int64)
    for batch in _batches(seq_stats_path, ["latent", "id", "max_act"]):
        latent = batch.column(0).to_numpy().astype(np.int64)
        scale = np.where(max_act[latent] > 0, max_act[latent], 1.0)
        score = batch.column(2).to_numpy().astype(np.float64) / scale
        which = np.minimum((score * bins).astype(np.int64), bins - 1)
        member = membership.contains(batch.column(1).to_pylist(), families[latent])
        np.add.at(hist, (np.where(member, 0, 1), latent, which), 1)
    return Histograms(max_act, counts, hist[0], hist[1])


def example_latents(families: pd.DataFrame, hist: Histograms) -> tuple[int | None, int | None]:
    """The family-specific latent with the best test F1 (ties: lowest id), and the tested
    (F1 scored), not family-specific latent active on the most sequences (ties: lowest id)."""
    specific = families[families.family_specific.fillna(False).astype(bool)]
    best = None
    if len(specific):
        best = int(specific.sort_values(["f1", "latent"], ascending=[False, True]).latent.iloc[0])
    tested = families[families.f1.notna() & ~families.latent.isin(specific.latent)]
    other = None
    if len(tested):
        active = hist.n_sequences[tested.latent.to_numpy()]
        order = np.lexsort((tested.latent.to_numpy(), -active))
        other = int(tested.latent.to_numpy()[order[0]])
    return best, other


def _latent_panel(ax: Axes, hist: Histograms, latent: int | None, row, what: str) -> None:
    if latent is None:
        ax.text(0.5, 0.5, f"no {what} latent in this SAE", ha="center", va="center")
        ax.set_axis_off()
        return
    ax.stairs(hist.in_family[latent], hist.edges, label=f"in {row.family}", fill=True, alpha=0.6)
    ax.stairs(hist.other[latent], hist.edges, label="other sequences", color="k")
    f1 = "n/a" if pd.isna(row.f1) else f"{row.f1:.2f}"
    ax.set_title(f"latent {latent} ({what}, F1 {f1})")
    ax.set_xlabel("max activation / latent max")
    ax.set_ylabel("sequences")
    ax.legend(fontsize="small")


def max_activation_figure(families: pd.DataFrame, hist: Histograms, title: str = "") -> Figure:
    """Panels a, b: per-sequence max activations of one family-specific and one non-specific
    latent (:func:`example_latents`), members of the tested family vs other sequences.
    Panel c: each active latent's max activation, family-specific vs not (shared edges)."""
    best, other = example_latents(families, hist)
    figure = Figure(figsize=(13, 4), layout="constrained")
    axes = figure.subplots(1, 3)
    rows = families.set_index("latent")
    for ax, latent, what in ((axes[0], best, "family-specific"), (axes[1], other, "non-specific")):
        _latent_panel(ax, hist, latent, None if latent is None else rows.loc[latent], what)
    specific = np.zeros(len(hist.max_act), dtype=bool)
    specific[families.latent[families.family_specific.fillna(False).astype(bool)].to_numpy()] = True
    active = hist.n_sequences > 0
    top = float(hist.max_act.max()) if active.any() else 1.0
    edges = np.linspace(0.0, top, 21)
    for mask, label in ((specific & active, "family-specific"), (~specific & active, "other")):
        counts, _ = np.histogram(hist.max_act[mask], bins=edges)
        axes[2].stairs(counts, edges, label=label, fill=label != "other", alpha=0.6)
    axes[2].set_title("latents by max activation")
    axes[2].set_xlabel("max activation over sequences")
    axes[2].set_ylabel("latents")
    axes[2].legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def max_activation_from_files(
    seq_stats_path: str | os.PathLike[str],
    families_path: str | os.PathLike[str],
    swissprot_path: str | os.PathLike[str],
    title: str = "",
    bins: int = 20,
) -> Figure:
    """:func:`max_activation_figure` of one SAE from its latent tables and Swiss-Prot."""
    families = pq.read_table(families_path).to_pandas()
    family_of = [None] * (int(families.latent.max()) + 1 if len(families) else 0)
    for latent, family in zip(families.latent, families.family, strict=True):
        family_of[int(latent)] = family if isinstance(family, str) else None
    hist = activation_histograms(
        seq_stats_path, family_of, Membership.from_swissprot(swissprot_path), bins
    )
    return max_activation_figure(families, hist, title)
