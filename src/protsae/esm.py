"""ESM-2 through fair-esm: checkpoint loading, early-exit activation extraction, layer edits.

Every model, published or random, comes from a checkpoint in fair-esm's own format and goes
through fair-esm's own loader, so the published 650M weights and the offline demo's random
init exercise the same code. The forward pass here re-implements fair-esm's ESM-2 forward on
its modules' weights, for two reasons: it can stop after the layer we want (early exit), and it
uses fused scaled-dot-product attention. Its outputs match ``model(tokens,
repr_layers=[L])`` to float32 rounding; the tests hold it to that.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path

import esm
import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2

from protsae.activations import DTYPES, ShardWriter, id_digest, is_holdout, shard_of
from protsae.io import atomic_path
from protsae.progress import Progress, get_logger
from protsae.sequences import esm_residue_letters

#: Longest sequence ESM-2 takes: 1024 positions minus BOS and EOS.
MAX_RESIDUES = 1022
#: The 25 residue letters of ESM-2's alphabet (20 standard + X, B, U, Z, O).
RESIDUE_LETTERS = frozenset(esm_residue_letters())
#: fair-esm's training-time mask ratio (15% masked x 80% replaced by <mask>), used by token dropout.
_MASK_RATIO_TRAIN = 0.15 * 0.8
_FLOAT16_MAX = float(np.finfo(np.float16).max)

Record = tuple[str, str]
Edit = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- devices, loading


def resolve_device(preference: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when there is one, else CPU; an explicit CUDA request without CUDA is an error."""
    if isinstance(preference, torch.device):
        preference = str(preference)
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} requested but CUDA is not available here")
    return device


def _regression_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(f"{checkpoint.stem}-contact-regression.pt")


def build_random_init(num_layers: int, embed_dim: int, attention_heads: int, seed: int) -> ESM2:
    """fair-esm's ESM2 with its default (random) initialisation, reproducible from ``seed``.

    The global RNG is left as it was, so building a model never changes a caller's random stream.
    """
    if num_layers < 1 or embed_dim < 1 or attention_heads < 1:
        raise ValueError(
            f"random ESM-2 needs positive sizes, got layers={num_layers}, "
            f"embed_dim={embed_dim}, heads={attention_heads}"
        )
    if embed_dim % attention_heads or (embed_dim // attention_heads) % 2:
        raise ValueError(
            f"embed_dim {embed_dim} must split into {attention_heads} heads of even size "
            "(rotary embeddings rotate pairs of dimensions)"
        )
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ESM2(
            num_layers=num_layers,
            embed_dim=embed_dim,
            attention_heads=attention_heads,
            alphabet=alphabet,
            token_dropout=True,
        )
    return model.eval()


def save_random_init(
    path: str | os.PathLike[str], num_layers: int, embed_dim: int, attention_heads: int, seed: int
) -> None:
    """Save a seeded random ESM-2 in fair-esm's checkpoint layout (plus its contact-regression file).

    Random weights make an offline pipeline possible; writing them in the published layout means
    they load through exactly the path the real weights take.
    """
    path = Path(path)
    model = build_random_init(num_layers, embed_dim, attention_heads, seed)
    state = model.state_dict()
    regression = {k: v for k, v in state.items() if k.startswith("contact_head.regression.")}
    encoder = {f"encoder.{k}": v for k, v in state.items() if k not in regression}
    cfg = argparse.Namespace(
        encoder_layers=num_layers,
        encoder_embed_dim=embed_dim,
        encoder_attention_heads=attention_heads,
        token_dropout=True,
    )
    # Regression file first: the .pt is the declared output, so it must be the last to appear.
    with atomic_path(_regression_path(path)) as tmp:
        torch.save({"model": regression}, tmp)
    with atomic_path(path) as tmp:
        torch.save({"model": encoder, "cfg": {"model": cfg}}, tmp)


def _load_torch_file(path: Path) -> object:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean "not a usable checkpoint"
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a readable torch checkpoint ({first_line})") from err


def _check_esm2_layout(path: Path, data: object) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ValueError(
            f"{path}: not an ESM-2 checkpoint (expected a dict with a 'model' state dict)"
        )
    cfg = data.get("cfg")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), argparse.Namespace):
        hint = " (it has 'args': an ESM-1/ESM-1b checkpoint?)" if "args" in data else ""
        raise ValueError(
            f"{path}: not an ESM-2 checkpoint in fair-esm's format: no cfg['model'] namespace{hint}"
        )
    required = ("encoder_layers", "encoder_embed_dim", "encoder_attention_heads", "token_dropout")
    missing = [key for key in required if not hasattr(cfg["model"], key)]
    if missing:
        raise ValueError(
            f"{path}: not an ESM-2 checkpoint: cfg['model'] lacks {', '.join(missing)}"
        )


def load_model(
    checkpoint: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[ESM2, esm.data.Alphabet]:
    """Load an ESM-2 checkpoint in fair-esm's format (published, local or our random init).

    ``torch.load(weights_only=True)`` with only ``argparse.Namespace`` allowed, so a checkpoint
    cannot run arbitrary code; then fair-esm's own ``load_model_and_alphabet_core``. The
    ``<stem>-contact-regression.pt`` beside it is used when present (contacts are not needed here).
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ESM-2 checkpoint not found")
    model_data = _load_torch_file(path)
    _check_esm2_layout(path, model_data)
    regression_file = _regression_path(path)
    regression_data = _load_torch_file(regression_file) if regression_file.is_file() else None
    # fair-esm chooses its ESM-2 branch by name prefix alone; the stem may be anything.
    name = path.stem if path.stem.startswith("esm2") else f"esm2_{path.stem}"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Regression weights not found")
            model, alphabet = esm.pretrained.load_model_and_alphabet_core(
                name, model_data, regression_data
            )
    except (RuntimeError, KeyError, AttributeError, TypeError) as err:
        raise ValueError(f"{path}: state dict does not fit its ESM-2 config: {err}") from err
    return model.eval().to(resolve_device(device)), alphabet


# --------------------------------------------------------------------------- records, batching


def check_records(records: Sequence[Record]) -> None:
    """Reject what ESM-2 cannot embed faithfully, naming the record, before any compute."""
    for seq_id, sequence in records:
        if not sequence:
            raise ValueError(f"sequence {seq_id!r} is empty")
        if len(sequence) > MAX_RESIDUES:
            raise ValueError(
                f"sequence {seq_id!r} has {len(sequence)} residues; ESM-2 takes at most {MAX_RESIDUES}"
            )
        bad = set(sequence) - RESIDUE_LETTERS
        if bad:
            raise ValueError(
                f"sequence {seq_id!r} has characters outside ESM-2's alphabet: {''.join(sorted(bad))!r}"
            )


def token_batches(lengths: Sequence[int], max_tokens_per_batch: int) -> list[list[int]]:
    """Group indices, longest first, so that each padded batch (BOS/EOS included) fits the budget.

    Longest first so an out-of-memory batch shows at once rather than at the end; a sequence
    longer than the budget on its own gets a batch of one.
    """
    if max_tokens_per_batch < 1:
        raise ValueError(f"max_tokens_per_batch must be positive, got {max_tokens_per_batch}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in order:
        size = lengths[i] + 2
        if current and max(width, size) * (len(current) + 1) > max_tokens_per_batch:
            batches.append(current)
            current, width = [], 0
        current.append(i)
        width = max(width, size)
    if current:
        batches.append(current)
    return batches


def _id_seed(seq_id: str, seed: int) -> np.random.Generator:
    """A generator that depends on the sequence id and seed only, never on batching or order."""
    digest = int.from_bytes(id_digest(seq_id), "little")
    return np.random.default_rng([seed, digest])


def sample_positions(seq_id: str, length: int, count: int | None, seed: int) -> np.ndarray:
    """Sorted residue positions to store for one sequence: ``count`` of them, or all."""
    if count is None or count >= length:
        return np.arange(length, dtype=np.int32)
    if count < 1:
        raise ValueError(f"tokens_per_sequence must be positive or None, got {count}")
    chosen = _id_seed(seq_id, seed).choice(length, size=count, replace=False)
    return np.sort(chosen).astype(np.int32)


def mask_positions(seq_id: str, length: int, mask_fraction: float, seed: int) -> np.ndarray:
    """The residue positions masked for the masked-LM loss: at least one, seeded per id."""
    if not 0 < mask_fraction <= 1:
        raise ValueError(f"mask_fraction must be in (0, 1], got {mask_fraction}")
    count = max(1, round(mask_fraction * length))
    # A distinct stream from sample_positions' so the two selections are unrelated.
    chosen = _id_seed(seq_id, seed + 0x5EED).choice(length, size=count, replace=False)
    return np.sort(chosen).astype(np.int64)


# --------------------------------------------------------------------------- the forward pass


def _autocast(device: torch.device, bf16: bool | None):
    if bf16 is None:
        bf16 = device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def _embed(model: ESM2, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token embeddings exactly as fair-esm scales them: token dropout rescaling, padding zeroed."""
    padding = tokens.eq(model.padding_idx)
    x = model.embed_scale * model.embed_tokens(tokens)
    if model.token_dropout:
        masked = tokens.eq(model.mask_idx)
        x = x.masked_fill(masked.unsqueeze(-1), 0.0)
        observed = masked.sum(-1).to(x.dtype) / (~padding).sum(-1)
        x = x * (1 - _MASK_RATIO_TRAIN) / (1 - observed)[:, None, None]
    x = x * (1 - padding.unsqueeze(-1).type_as(x))
    return x, padding


def _rotary_tables(
    model: ESM2, length: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    # Same table as fair-esm's RotaryEmbedding (every layer holds the same inv_freq).
    inv_freq = model.layers[0].self_attn.rot_emb.inv_freq.to(device)
    t = torch.arange(length, device=device).type_as(inv_freq)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def _layer_forward(
    layer: torch.nn.Module,
    x: torch.Tensor,
    attn_mask: torch.Tensor | None,
    cos: torch.Tensor,
    sin: torch.Tensor,
) -> torch.Tensor:
    """One fair-esm TransformerLayer on batch-first ``x``, with fused attention.

    Calls the layer's own submodules (layer norms, projections) so hooks on them see the work.
    """
    attn = layer.self_attn
    batch, length, dim = x.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    h = layer.self_attn_layer_norm(x)
    q = (attn.q_proj(h) * attn.scaling).view(batch, length, heads, head_dim).transpose(1, 2)
    k = attn.k_proj(h).view(batch, length, heads, head_dim).transpose(1, 2)
    v = attn.v_proj(h).view(batch, length, heads, head_dim).transpose(1, 2)
    # fair-esm rotates in float32 (its tables are float32) before the attention product.
    q = _rotate(q.float(), cos, sin).to(v.dtype)
    k = _rotate(k.float(), cos, sin).to(v.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=1.0)
    x = x + attn.out_proj(out.transpose(1, 2).reshape(batch, length, dim))
    h = layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))
    return x + h


def _run_layers(
    model: ESM2,
    tokens: torch.Tensor,
    stop: int,
    layer: int | None = None,
    edit: Edit | None = None,
) -> torch.Tensor:
    """Residue stream after ``stop`` layers (final layer norm applied when ``stop`` is the last).

    The output of ``layer`` (the quantity fair-esm reports as representation ``layer``) is
    replaced by ``edit(h)`` before anything later runs.
    """
    x, padding = _embed(model, tokens)
    if edit is not None and layer == 0:
        x = edit(x)
    attn_mask = (~padding)[:, None, None, :] if padding.any() else None
    cos, sin = _rotary_tables(model, tokens.shape[1], tokens.device)
    num_layers = model.num_layers
    for index in range(stop):
        x = _layer_forward(model.layers[index], x, attn_mask, cos, sin)
        if index + 1 == num_layers:
            x = model.emb_layer_norm_after(x)
        if edit is not None and index + 1 == layer:
            x = edit(x)
    return x


def _check_layer(model: ESM2, layer: int) -> None:
    if not 0 <= layer <= model.num_layers:
        raise ValueError(f"layer {layer} out of range: this ESM-2 has layers 0..{model.num_layers}")


def _model_device(model: ESM2, device: str | torch.device | None) -> torch.device:
    if device is None:
        return next(model.parameters()).device
    device = resolve_device(device)
    model.to(device)
    return device


def layer_representations(
    model: ESM2,
    alphabet: esm.data.Alphabet,
    records: Sequence[Record],
    layer: int,
    max_tokens_per_batch: int,
    device: str | torch.device | None = None,
    *,
    batch_order_seed: int | None = None,
    loader_workers: int = 0,
    bf16: bool | None = None,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(id, [len, d_model] float32 CPU tensor)``: layer ``layer``'s output per residue.

    Equal to fair-esm's ``model(tokens, repr_layers=[layer])["representations"][layer][i,
    1:len+1]``, but no layer after ``layer`` runs. Sequences are grouped longest first into
    batches of at most ``max_tokens_per_batch`` padded tokens; results are yielded batch by batch
    in that order (within a batch, longest first), or with ``batch_order_seed`` set, in a seeded
    random order of the batches (so a stored shard has no length trend). ``device`` moves the
    model there (default: where it is); bf16 autocast on CUDA, float32 on CPU unless ``bf16``
    says otherwise. ``loader_workers`` tokenizes in that many worker processes (for a GPU).
    """
    _check_layer(model, layer)
    check_records(records)
    device = _model_device(model, device)
    batches = token_batches([len(seq) for _, seq in records], max_tokens_per_batch)
    if batch_order_seed is not None:
        order = np.random.default_rng(batch_order_seed).permutation(len(batches))
        batches = [batches[i] for i in order]
    batch_records = [[records[i] for i in batch] for batch in batches]
    loader = torch.utils.data.DataLoader(
        batch_records,
        batch_size=None,
        shuffle=False,
        collate_fn=alphabet.get_batch_converter(),
        num_workers=loader_workers,
        pin_memory=device.type == "cuda",
    )
    for ids, seqs, tokens in loader:
        tokens = tokens.to(device, non_blocking=True)
        lengths = [len(seq) for seq in seqs]
        with torch.inference_mode(), _autocast(device, bf16):
            hidden = _run_layers(model, tokens, stop=layer)
            width = max(lengths)
            residues = (
                torch.arange(width, device=device)[None, :]
                < torch.tensor(lengths, device=device)[:, None]
            )
            # One gather and one device-to-host copy per batch, then split per sequence.
            flat = hidden[:, 1 : width + 1][residues].float().cpu()
        yield from zip(ids, torch.split(flat, lengths), strict=True)


def forward_with_layer_edit(
    model: ESM2, tokens: torch.Tensor, layer: int, edit: Edit | None
) -> torch.Tensor:
    """Logits ``[B, T, vocab]`` with the residue stream after ``layer`` replaced by ``edit(h)``.

    ``h`` is ``[B, T, d]``, batch-first, every position (BOS, EOS, padding too) and is the same
    quantity ``layer_representations`` returns, so for the last layer it is taken after the final
    layer norm. ``edit=None`` is the plain forward. bf16 autocast when ``tokens`` are on CUDA.
    """
    _check_layer(model, layer)
    with _autocast(tokens.device, None):
        hidden = _run_layers(model, tokens, stop=model.num_layers, layer=layer, edit=edit)
        return model.lm_head(hidden).float()


def masked_lm_cross_entropy(
    model: ESM2,
    alphabet: esm.data.Alphabet,
    records: Sequence[Record],
    layer: int,
    edit: Edit | None,
    mask_fraction: float = 0.15,
    seed: int = 0,
    max_tokens_per_batch: int = 4096,
    device: str | torch.device | None = None,
) -> tuple[float, int]:
    """Mean masked-LM cross-entropy (nats) over masked residues, and how many were scored.

    The masked positions depend on (id, seed) only, so clean, SAE-reconstructed and
    zero-ablated runs score exactly the same positions and their losses compare.
    """
    _check_layer(model, layer)
    check_records(records)
    device = _model_device(model, device)
    convert = alphabet.get_batch_converter()
    total = 0.0
    count = 0
    for batch in token_batches([len(seq) for _, seq in records], max_tokens_per_batch):
        _, _, tokens = convert([records[i] for i in batch])
        rows, cols = [], []
        for row, i in enumerate(batch):
            seq_id, sequence = records[i]
            positions = mask_positions(seq_id, len(sequence), mask_fraction, seed)
            rows.append(np.full(len(positions), row))
            cols.append(positions + int(alphabet.prepend_bos))
        row_index = torch.from_numpy(np.concatenate(rows))
        col_index = torch.from_numpy(np.concatenate(cols))
        targets = tokens[row_index, col_index].to(device)
        tokens[row_index, col_index] = alphabet.mask_idx
        with torch.inference_mode():
            logits = forward_with_layer_edit(model, tokens.to(device), layer, edit)
            scored = logits[row_index.to(device), col_index.to(device)]
            loss = F.cross_entropy(scored, targets, reduction="sum")
        total += float(loss)
        count += len(targets)
    return (total / count if count else math.nan), count


# --------------------------------------------------------------------------- shards


def extract_shard(
    checkpoint: str | os.PathLike[str],
    records: Sequence[Record],
    out_path: str | os.PathLike[str],
    layer: int,
    model_name: str,
    max_tokens_per_batch: int,
    dtype: str,
    tokens_per_sequence: int | None,
    seed: int,
    device: str | torch.device | None = None,
    logger: logging.Logger | None = None,
    *,
    loader_workers: int | None = None,
) -> int:
    """Write layer ``layer``'s residue vectors of ``records`` to an activation shard; rows written.

    With ``tokens_per_sequence`` only that many seeded random residues per sequence are stored
    (positions depend on id and seed, not on batching). Rows follow a seeded random order of
    length-sorted batches. ``loader_workers`` defaults to 0 on CPU and up to 4 on CUDA.
    """
    if dtype not in DTYPES:
        raise ValueError(f"activation dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if tokens_per_sequence is not None and tokens_per_sequence < 1:
        raise ValueError(f"tokens_per_sequence must be positive or None, got {tokens_per_sequence}")
    ids = [seq_id for seq_id, _ in records]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"{out_path}: sequence id {duplicate!r} appears more than once")
    check_records(records)
    logger = logger or get_logger()
    device = resolve_device("auto" if device is None else device)
    model, alphabet = load_model(checkpoint, device)
    _check_layer(model, layer)
    if loader_workers is None:
        loader_workers = min(4, max(0, (os.cpu_count() or 1) - 1)) if device.type == "cuda" else 0
    lengths = {seq_id: len(seq) for seq_id, seq in records}
    progress = Progress("extract", total=sum(lengths.values()), unit="tokens", logger=logger)
    sequences_done = 0
    representations = layer_representations(
        model,
        alphabet,
        records,
        layer,
        max_tokens_per_batch,
        device,
        batch_order_seed=seed,
        loader_workers=loader_workers,
    )
    with ShardWriter(out_path, model.embed_dim, dtype, model_name, layer) as writer:
        for seq_id, hidden in representations:
            positions = sample_positions(seq_id, lengths[seq_id], tokens_per_sequence, seed)
            vectors = hidden.numpy()
            if len(positions) < len(vectors):
                vectors = vectors[positions]
            if dtype == "float16" and len(vectors) and np.abs(vectors).max() > _FLOAT16_MAX:
                raise ValueError(
                    f"{out_path}: sequence {seq_id!r}: layer {layer} activation "
                    f"{np.abs(vectors).max():.3g} overflows float16; use dtype float32"
                )
            writer.add(seq_id, positions, vectors)
            sequences_done += 1
            progress.update(lengths[seq_id], sequences=f"{sequences_done}/{len(records)}")
    progress.finish(sequences=f"{sequences_done}/{len(records)}", rows=writer.rows_written)
    return writer.rows_written


def _check_table(table: pa.Table) -> list[str]:
    missing = {"id", "sequence"} - set(table.column_names)
    if missing:
        raise ValueError(
            f"sequence table lacks column(s) {sorted(missing)}; has {table.column_names}"
        )
    return table.column("id").to_pylist()


def _take_records(table: pa.Table, keep: list[bool]) -> list[Record]:
    # Filter before converting, so only the selected sequences become Python strings.
    chosen = table.select(["id", "sequence"]).filter(pa.array(keep, pa.bool_()))
    return list(
        zip(chosen.column("id").to_pylist(), chosen.column("sequence").to_pylist(), strict=True)
    )


def select_shard_records(
    table: pa.Table, shard: int, n_shards: int, holdout_fraction: float
) -> list[Record]:
    """The (id, sequence) records of one training shard, in table order: a function of each id.

    A sequence's shard and holdout membership never move when the sample grows or is reordered.
    """
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} out of range for {n_shards} shards")
    ids = _check_table(table)
    keep = [
        shard_of(seq_id, n_shards) == shard and not is_holdout(seq_id, holdout_fraction)
        for seq_id in ids
    ]
    return _take_records(table, keep)


def holdout_records(
    table: pa.Table, holdout_fraction: float, max_sequences: int | None
) -> list[Record]:
    """Held-out records (never in a training shard), the same ones whatever the table order.

    Ordered by a hash of the id, so the first ``max_sequences`` are a random-like subset.
    """
    held = _take_records(table, [is_holdout(i, holdout_fraction) for i in _check_table(table)])
    held.sort(key=lambda r: (id_digest(r[0]), r[0]))
    return held if max_sequences is None else held[:max_sequences]
