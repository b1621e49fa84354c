"""What drives an SAE probe: its largest coefficients, named by the latent analysis.

``top_latents.parquet`` lists, per output (class, or the regression target), the latents with
the largest positive and the most negative coefficients together with their pattern class,
InterPro family and F1 from ``latents/.../classes.parquet`` and ``families.parquet``.
``coefficients.parquet`` holds every coefficient of the ESM and the SAE probe of one (layer,
task), for the figure of their distributions. Coefficients are in standardised units.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from protsae.io import write_parquet

TOP_LATENTS_SCHEMA = pa.schema(
    [
        ("layer", pa.int32()),
        ("task", pa.string()),
        ("features", pa.string()),
        ("output", pa.string()),
        ("sign", pa.string()),
        ("rank", pa.int32()),
        ("latent", pa.int32()),
        ("coefficient", pa.float32()),
        ("pattern_class", pa.string()),
        ("family", pa.string()),
        ("f1", pa.float64()),
        ("family_specific", pa.bool_()),
    ]
)
COEFFICIENTS_SCHEMA = pa.schema(
    [
        ("layer", pa.int32()),
        ("task", pa.string()),
        ("features", pa.string()),
        ("output", pa.string()),
        ("feature", pa.int32()),
        ("coefficient", pa.float32()),
    ]
)


def top_latents(
    coef: pd.DataFrame,
    classes: pd.DataFrame,
    families: pd.DataFrame,
    top_n: int,
) -> pd.DataFrame:
    """Per output, the ``top_n`` most positive and most negative latents (zero never listed).

    ``coef`` has ``output``, ``feature`` (the latent), ``coefficient``; ranks start at 0 for the
    strongest. Latents missing from the latent tables get null annotations.
    """
    pattern = classes.set_index("latent")["pattern_class"]
    family = families.set_index("latent")[["family", "f1", "family_specific"]]
    rows = []
    for output, group in coef.groupby("output", sort=False):
        ordered = group.sort_values(["coefficient", "feature"], ascending=[False, True])
        positive = ordered[ordered.coefficient > 0].head(top_n)
        negative = ordered[ordered.coefficient < 0].iloc[::-1].head(top_n)
        for sign, chosen in (("positive", positive), ("negative", negative)):
            for rank, (latent, value) in enumerate(
                zip(chosen.feature, chosen.coefficient, strict=True)
            ):
                fam = family.loc[latent] if latent in family.index else None
                rows.append(
                    {
                        "output": output,
                        "sign": sign,
                        "rank": rank,
                        "latent": int(latent),
                        "coefficient": float(value),
                        "pattern_class": pattern.get(latent),
                        "family": None if fam is None else fam["family"],
                        "f1": None if fam is None else fam["f1"],
                        "family_specific": None if fam is None else bool(fam["family_specific"]),
                    }
                )
    return pd.DataFrame(rows, columns=[f.name for f in TOP_LATENTS_SCHEMA][3:])


def _nullable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), None)


@dataclass(frozen=True)
class ProbePair:
    """One task's two fitted probes at a layer: ESM-2's coefficients and an SAE's, with the
    SAE's feature name (``sae-k{k}-w{width}``)."""

    esm_coef_path: str | os.PathLike[str]
    sae_coef_path: str | os.PathLike[str]
    sae_features: str


def interpret_from_files(
    layer: int,
    task: str,
    probes: ProbePair,
    classes_path: str | os.PathLike[str],
    families_path: str | os.PathLike[str],
    top_n: int,
    top_latents_path: str | os.PathLike[str],
    coefficients_path: str | os.PathLike[str],
) -> pd.DataFrame:
    """Write ``top_latents.parquet`` and ``coefficients.parquet`` of one (layer, task)."""
    sae_features = probes.sae_features
    sae_coef = pd.read_parquet(probes.sae_coef_path)
    top = top_latents(
        sae_coef, pd.read_parquet(classes_path), pd.read_parquet(families_path), top_n
    )
    top.insert(0, "features", sae_features)
    top.insert(0, "task", task)
    top.insert(0, "layer", int(layer))
    both = []
    for name, path in (("esm", probes.esm_coef_path), (sae_features, probes.sae_coef_path)):
        coef = pq.read_table(path).to_pandas()
        coef.insert(0, "features", name)
        coef.insert(0, "task", task)
        coef.insert(0, "layer", np.int32(layer))
        both.append(coef)
    coefficients = pd.concat(both, ignore_index=True)
    write_parquet(
        pa.Table.from_pandas(coefficients, schema=COEFFICIENTS_SCHEMA, preserve_index=False),
        coefficients_path,
    )
    write_parquet(
        pa.Table.from_pandas(_nullable(top), schema=TOP_LATENTS_SCHEMA, preserve_index=False),
        top_latents_path,
    )
    return top
