"""The shared types of ``protsae encode``: the SAE folder it reads, one sequence's latents, the
result it reports, and the schema and columns of what it writes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

#: Longest sequence ESM-2 takes (1024 positions minus BOS and EOS).
MAX_RESIDUES = 1022


ENCODED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("position", pa.int32()),
        ("latent", pa.int32()),
        ("value", pa.float32()),
    ]
)


SUMMARY_COLUMNS = [
    "id",
    "length",
    "rank",
    "latent",
    "max_value",
    "fraction_of_latent_max",
    "argmax",
    "n_active",
    "pattern_class",
    "family",
    "f1",
    "family_threshold",
    "family_specific",
    "predicted_member",
    "description",
]


@dataclass(frozen=True)
class EncodeOptions:
    """The options of ``protsae encode`` (each is a CLI flag): ``results`` the results folder
    whose ``latents/`` annotate the latents (default: the one holding the SAE); ``model`` a
    checkpoint path or fair-esm name overriding ``sae.json``'s, refused when it is not the
    ESM-2 the SAE was trained on unless ``force_model``; ``html`` writes the pages, coloured by
    ``html_latent`` (default: each sequence's strongest); ``skip_long`` skips sequences over
    1022 residues instead of cropping them; ``top`` latents per sequence in the TSV; ESM-2 runs
    on ``device`` in batches of ``max_tokens_per_batch`` tokens."""

    results: str | os.PathLike[str] | None = None
    model: str | os.PathLike[str] | None = None
    force_model: bool = False
    html: bool = False
    html_latent: int | None = None
    skip_long: bool = False
    top: int = 10
    device: str = "auto"
    max_tokens_per_batch: int = 4096


@dataclass(frozen=True)
class SaeFolder:
    """A trained or imported SAE folder and where it sits in a results tree."""

    path: Path
    model: str
    layer: int
    k: int
    width: int
    results: Path | None
    esm: dict = field(default_factory=dict)
    """sae.json's record of the ESM-2 it was trained on (empty for SAEs written before it)."""

    @property
    def name(self) -> str:
        return f"k{self.k}-w{self.width}"

    @property
    def latents_dir(self) -> Path | None:
        """``results/latents/{model}/L{layer}/k{k}-w{width}`` (None outside a results tree)."""
        if self.results is None:
            return None
        return self.results / "latents" / self.model / f"L{self.layer}" / self.name

    @property
    def browser_page(self) -> Path | None:
        """The feature browser's latent page (``results/browser/latent.html``, see README)."""
        if self.results is None:
            return None
        return self.results / "browser" / "latent.html"


@dataclass
class SequenceLatents:
    """One encoded sequence: its residues and its sparse (position, latent, value) triples."""

    id: str
    sequence: str
    positions: np.ndarray
    latents: np.ndarray
    values: np.ndarray

    def strongest(self) -> pa.Table:
        """Per active latent: max value, first argmax position and active residues, strongest first."""
        if len(self.latents) == 0:
            return pa.table({"latent": [], "max_value": [], "argmax": [], "n_active": []})
        order = np.lexsort((self.positions, -self.values, self.latents))
        lat = self.latents[order]
        starts = np.flatnonzero(np.r_[True, lat[1:] != lat[:-1]])
        counts = np.diff(np.r_[starts, len(lat)])
        table = pa.table(
            {
                "latent": lat[starts].astype(np.int32),
                "max_value": self.values[order][starts].astype(np.float32),
                "argmax": self.positions[order][starts].astype(np.int32),
                "n_active": counts.astype(np.int32),
            }
        )
        return table.sort_by([("max_value", "descending"), ("latent", "ascending")])

    def track(self, latent: int) -> np.ndarray:
        """The latent's activation at every residue (zeros where inactive)."""
        out = np.zeros(len(self.sequence), dtype=np.float32)
        hit = self.latents == latent
        out[self.positions[hit]] = self.values[hit]
        return out


@dataclass
class EncodeResult:
    """What :func:`encode` wrote."""

    parquet: Path
    tsv: Path
    html_dir: Path | None
    n_sequences: int
    n_rows: int
    skipped: list[str] = field(default_factory=list)
    cropped: list[str] = field(default_factory=list)
