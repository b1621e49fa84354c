"""Family specificity of latents.

The rule is docs/method.md's "Family specificity", with the thresholds of config
``families``; the choices the method leaves open (normalisation, which family is tested,
ties, families too small to choose a threshold on train) are in method.md's "Decisions the
code makes", under "Family specificity".

Every latent gets one row. Nothing of the test split chooses what is tested on it
(method.md, turn 3): ``top_sequence`` is the **train** sequence with the highest activation,
its families are the candidates, and scores are normalised by the latent's train maximum (a
test score may exceed 1, which is above every threshold). Labels are over the whole evaluation set: a sequence is positive when the family
is among its ``swissprot.families``; ``n_train_positive`` / ``n_test_positive`` count those
members per split.

Memory: the (latent, sequence, max_act) triple of every ``seq_stats`` row is held as
12 bytes, so e.g. 50M rows need ~600 MB.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from protsae.latents.collect import SPLITS
from protsae.latents.evaluation import _require_columns, representatives

DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

FAMILIES_SCHEMA = pa.schema(
    [
        pa.field("latent", pa.int32()),
        pa.field("family", pa.string()),
        pa.field("f1", pa.float64()),
        pa.field("precision", pa.float64()),
        pa.field("recall", pa.float64()),
        pa.field("threshold", pa.float64()),
        pa.field("family_specific", pa.bool_()),
        pa.field("train_f1", pa.float64()),
        pa.field("n_train_positive", pa.int32()),
        pa.field("n_test_positive", pa.int32()),
        pa.field("top_sequence", pa.string()),
    ]
)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def f1_sweep(
    score: np.ndarray, member: np.ndarray, n_members: int, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F1, precision, recall at each threshold.

    ``score``/``member`` cover the sequences with a nonzero score; ``n_members`` counts all
    family members in the split, scored or not.
    """
    predicted = score[:, None] >= thresholds[None, :]
    tp = (predicted & member[:, None]).sum(0)
    n_predicted = predicted.sum(0)
    precision = _ratio(tp, n_predicted)
    recall = _ratio(tp, np.full_like(tp, n_members))
    f1 = _ratio(2 * tp, n_predicted + n_members)
    return f1, precision, recall


class EvaluationFamilies:
    """The evaluation set's sequences (coded 0..n-1 in id order), splits and family memberships."""

    def __init__(self, ids: Sequence[str], splits: Sequence[str], families: Sequence[list[str]]):
        order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
        self.ids = pa.array([ids[i] for i in order], pa.string())
        self.split = np.asarray([SPLITS.index(splits[i]) for i in order], np.int8)
        self.families = [sorted(set(families[i] or [])) for i in order]
        members: dict[str, list[int]] = {}
        for code, fams in enumerate(self.families):
            for fam in fams:
                members.setdefault(fam, []).append(code)
        self.members = {f: np.asarray(c, np.int64) for f, c in members.items()}
        self.n_members = {
            f: np.bincount(self.split[c], minlength=len(SPLITS)) for f, c in self.members.items()
        }

    @classmethod
    def from_files(
        cls, swissprot_path: str | os.PathLike[str], clusters_path: str | os.PathLike[str]
    ) -> EvaluationFamilies:
        rep_split = representatives(clusters_path)
        _require_columns(swissprot_path, ["accession", "families"])
        table = pq.read_table(swissprot_path, columns=["accession", "families"])
        table = table.filter(pc.is_in(table["accession"], pa.array(list(rep_split), pa.string())))
        ids = table["accession"].to_pylist()
        if len(set(ids)) != len(ids):
            raise ValueError(f"{swissprot_path}: an accession occurs more than once")
        if len(ids) != len(rep_split):
            missing = next(a for a in rep_split if a not in set(ids))
            raise ValueError(
                f"{swissprot_path}: cluster representative {missing} from {clusters_path} "
                "has no entry"
            )
        return cls(ids, [rep_split[a] for a in ids], table["families"].to_pylist())

    def codes(self, ids: pa.Array, where: str) -> np.ndarray:
        """Codes of ``ids``; raises naming the first id outside the evaluation set."""
        code = pc.index_in(ids, value_set=self.ids)
        if code.null_count:
            bad = ids.filter(pc.is_null(code))[0].as_py()
            raise ValueError(f"{where}: sequence {bad} is not in the evaluation set")
        return code.to_numpy().astype(np.int64)


def read_max_activations(
    seq_stats_path: str | os.PathLike[str], evaluation: EvaluationFamilies
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latent, sequence code, max_act) of every seq_stats row, streamed by row group."""
    pf = pq.ParquetFile(seq_stats_path)
    latents, codes, maxes = [], [], []
    for i in range(pf.num_row_groups):
        rg = pf.read_row_group(i, columns=["latent", "id", "max_act"])
        latents.append(rg["latent"].to_numpy().astype(np.int32))
        codes.append(evaluation.codes(rg["id"].combine_chunks(), f"{seq_stats_path} row group {i}"))
        maxes.append(rg["max_act"].to_numpy().astype(np.float32))
    if not latents:
        return np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(latents), np.concatenate(codes), np.concatenate(maxes)


def _null_row(latent: int, top_id: str | None) -> dict:
    row = dict.fromkeys(FAMILIES_SCHEMA.names)
    return {**row, "latent": latent, "top_sequence": top_id, "family_specific": False}


def family_specificity(
    width: int,
    evaluation: EvaluationFamilies,
    latent: np.ndarray,
    code: np.ndarray,
    max_act: np.ndarray,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    f1_threshold: float = 0.7,
    min_train_members: int = 1,
) -> pa.Table:
    """One row per latent ``0..width-1`` (see the module docstring for every rule).

    ``(latent, code, max_act)``: one entry per (latent, sequence) with any activation.
    """
    thr = np.asarray(sorted(thresholds), np.float64)
    if len(thr) == 0 or thr[0] <= 0:
        raise ValueError(f"thresholds must be non-empty and > 0, got {list(thresholds)}")
    if len(latent) and (latent.min() < 0 or latent.max() >= width):
        raise ValueError(f"seq_stats latent out of range [0, {width})")
    order = np.lexsort((code, latent))  # within a latent, ascending code = ascending id
    latent, code, max_act = latent[order], code[order], max_act[order]
    bounds = np.searchsorted(latent, np.arange(width + 1))
    train, test = SPLITS.index("train"), SPLITS.index("test")
    rows = []
    for lat in range(width):
        c = code[bounds[lat] : bounds[lat + 1]]
        m = max_act[bounds[lat] : bounds[lat + 1]]
        split = evaluation.split[c]
        is_test, is_train = split == test, split == train
        if not is_train.any():
            rows.append(_null_row(lat, None))
            continue
        top = int(c[is_train][int(np.argmax(m[is_train]))])  # first max: smallest code = id
        row = _null_row(lat, evaluation.ids[top].as_py())
        fams = evaluation.families[top]
        if not fams:
            rows.append(row)
            continue
        score = m.astype(np.float64) / float(m[is_train].max())
        best = None  # (train F1, threshold index, family, membership of the scored rows)
        for fam in fams:  # sorted: on equal train F1 the first (smallest accession) stays
            if evaluation.n_members[fam][train] < min_train_members:
                continue  # no threshold can be chosen on train for this family
            member = np.isin(c, evaluation.members[fam])
            n_train = int(evaluation.n_members[fam][train])
            f1_train, _, _ = f1_sweep(score[is_train], member[is_train], n_train, thr)
            i = int(np.argmax(f1_train))  # first max: smallest threshold
            if best is None or f1_train[i] > best[0]:
                best = (float(f1_train[i]), i, fam, member)
        fam = fams[0] if best is None else best[2]
        n_members = evaluation.n_members[fam]
        row.update(
            family=fam, n_train_positive=int(n_members[train]), n_test_positive=int(n_members[test])
        )
        if best is not None:
            train_f1, i, _, member = best
            f1, precision, recall = f1_sweep(
                score[is_test], member[is_test], int(n_members[test]), thr[i : i + 1]
            )
            row.update(
                f1=float(f1[0]),
                precision=float(precision[0]),
                recall=float(recall[0]),
                threshold=float(thr[i]),
                train_f1=train_f1,
                family_specific=bool(f1[0] > f1_threshold),
            )
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=FAMILIES_SCHEMA)


def families_from_files(
    seq_stats_path: str | os.PathLike[str],
    swissprot_path: str | os.PathLike[str],
    clusters_path: str | os.PathLike[str],
    width: int,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    f1_threshold: float = 0.7,
    min_train_members: int = 1,
) -> pa.Table:
    """The families table of one SAE from the stats stage's ``seq_stats``."""
    evaluation = EvaluationFamilies.from_files(swissprot_path, clusters_path)
    latent, code, max_act = read_max_activations(seq_stats_path, evaluation)
    return family_specificity(
        width, evaluation, latent, code, max_act, thresholds, f1_threshold, min_train_members
    )


def family_specific_latents(
    families_path: str | os.PathLike[str], max_latents: int | None = None
) -> list[int]:
    """Family-specific latents, by test F1 descending then latent id ascending; at most ``max_latents``."""
    table = pq.read_table(families_path, columns=["latent", "f1", "family_specific"])
    table = table.filter(pc.equal(table["family_specific"], True))
    table = table.sort_by([("f1", "descending"), ("latent", "ascending")])
    latents = [int(x) for x in table["latent"].to_pylist()]
    return latents if max_latents is None else latents[:max_latents]
