"""The best residue concepts of one SAE: one bar per (latent, concept), test F1."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from protsae.latents.concepts import CONCEPT_F1_THRESHOLD
from protsae.latents.descriptions import concept_phrase


def best_concepts(concepts: pd.DataFrame, top: int = 20) -> pd.DataFrame:
    """Each latent's best concept (highest test F1; ties: concept name), the ``top`` best of
    those, highest test F1 first (ties: lower latent)."""
    if concepts.empty:
        return concepts.head(0)
    ranked = concepts.sort_values(
        ["latent", "f1_test", "concept"], ascending=[True, False, True]
    ).drop_duplicates("latent")
    ranked = ranked.sort_values(["f1_test", "latent"], ascending=[False, True])
    return ranked.head(top).reset_index(drop=True)


def best_concepts_figure(
    concepts: pd.DataFrame,
    title: str = "",
    top: int = 20,
    f1_threshold: float = CONCEPT_F1_THRESHOLD,
) -> Figure:
    """Horizontal bars, best first: label ``latent N: <concept>``, length test F1, with the
    concept-specific line at ``f1_threshold``. Without concepts, a panel that says so."""
    rows = best_concepts(concepts, top)
    figure = Figure(figsize=(8, 1.2 + 0.3 * max(len(rows), 3)), layout="constrained")
    ax = figure.subplots()
    if rows.empty:
        ax.text(0.5, 0.5, "no residue concept was scored", ha="center", va="center")
        ax.set_axis_off()
    else:
        labels = [
            f"latent {lat}: {concept_phrase(c)}"
            for lat, c in zip(rows.latent, rows.concept, strict=True)
        ]
        y = list(range(len(rows)))[::-1]  # the best on top
        ax.barh(y, rows.f1_test.to_numpy(dtype=float), color="C4")
        ax.set_yticks(y, labels, fontsize="small")
        ax.axvline(f1_threshold, color="0.4", linestyle="--", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_xlabel("test F1 (threshold chosen on train)")
        n_specific = int((rows.f1_test > f1_threshold).sum())
        ax.set_title(
            f"best concept per latent, top {len(rows)} ({n_specific} above F1 {f1_threshold})"
        )
    if title:
        figure.suptitle(title)
    return figure


def best_concepts_from_files(concepts_path: str | os.PathLike[str], title: str = "") -> Figure:
    """The figure from one SAE's ``concepts.parquet``."""
    return best_concepts_figure(pq.read_table(concepts_path).to_pandas(), title)
