"""ESM-2's forward pass on fair-esm's weights: record checks, token batches, early exit, layer edits.

This re-implements fair-esm's ESM-2 forward on its modules' weights, for two reasons: it can
stop after the layer we want (early exit, or after the deepest of several layers it keeps from
one pass: :func:`multi_layer_representations`), and it uses fused scaled-dot-product attention. Its
outputs match ``model(tokens, repr_layers=[L])`` to float32 rounding; the tests hold it to that.
Steering, probes and encoding import the forward from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import esm
import numpy as np
import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2

from protsae.conventions import FAIR_ESM, INTERPROT, check_convention, trains_on_bos_eos
from protsae.device import resolve_device
from protsae.esm.tokens import ResidueBatchConverter
from protsae.sequences import esm_residue_letters

#: Longest sequence ESM-2 takes: 1024 positions minus BOS and EOS.
MAX_RESIDUES = 1022
#: The 25 residue letters of ESM-2's alphabet (20 standard + X, B, U, Z, O).
RESIDUE_LETTERS = frozenset(esm_residue_letters())
#: fair-esm's training-time mask ratio (15% masked x 80% replaced by <mask>), used by token dropout.
_MASK_RATIO_TRAIN = 0.15 * 0.8

Record = tuple[str, str]
Edit = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ForwardOptions:
    """How ESM-2 forward passes run, for every stage that runs them: batches of at most
    ``max_tokens_per_batch`` padded tokens on ``device`` (``"auto"``: CUDA when there is one;
    None: wherever a given model already is, ``"auto"`` where the function loads the model),
    bf16 autocast as ``bf16`` says (None: on CUDA only), tokenized in ``loader_workers`` worker
    processes (None: none, except in extraction: up to 4 on CUDA)."""

    max_tokens_per_batch: int = 4096
    device: str | torch.device | None = None
    bf16: bool | None = None
    loader_workers: int | None = None


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


# --------------------------------------------------------------------------- the forward pass


def _autocast(device: torch.device, bf16: bool | None):
    if bf16 is None:
        bf16 = device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def _embed(
    model: ESM2, tokens: torch.Tensor, convention: str = FAIR_ESM
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token embeddings with padding zeroed; under ``fair-esm`` exactly as fair-esm scales them
    (token-dropout rescaling, ``<mask>`` zeroed), under ``interprot`` not rescaled at all."""
    padding = tokens.eq(model.padding_idx)
    x = model.embed_scale * model.embed_tokens(tokens)
    if model.token_dropout and convention == FAIR_ESM:
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
    convention: str = FAIR_ESM,
    tap: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Residue stream after ``stop`` layers, in ``convention``.

    ``fair-esm`` applies the final layer norm when ``stop`` is the last layer (as fair-esm's
    representation of that layer does); ``interprot`` never applies it. The output of ``layer``
    is replaced by ``edit(h)`` before anything later runs. ``tap(i, h)`` sees the stream after
    layer ``i`` (0: the embedding) for every ``i <= stop``, as the representation of ``i``.
    """
    x, padding = _embed(model, tokens, convention)
    if edit is not None and layer == 0:
        x = edit(x)
    if tap is not None:
        tap(0, x)
    attn_mask = (~padding)[:, None, None, :] if padding.any() else None
    cos, sin = _rotary_tables(model, tokens.shape[1], tokens.device)
    num_layers = model.num_layers
    for index in range(stop):
        x = _layer_forward(model.layers[index], x, attn_mask, cos, sin)
        if index + 1 == num_layers and convention == FAIR_ESM:
            x = model.emb_layer_norm_after(x)
        if edit is not None and index + 1 == layer:
            x = edit(x)
        if tap is not None:
            tap(index + 1, x)
    return x


def check_layer(model: ESM2, layer: int) -> None:
    """Reject a layer index this model does not have (0 is the embedding output)."""
    if not 0 <= layer <= model.num_layers:
        raise ValueError(f"layer {layer} out of range: this ESM-2 has layers 0..{model.num_layers}")


def model_device(model: ESM2, device: str | torch.device | None) -> torch.device:
    """Move the model to ``device`` (resolved) and return it; ``None`` keeps it where it is."""
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
    forward: ForwardOptions,
    *,
    batch_order_seed: int | None = None,
    convention: str = FAIR_ESM,
    bos_eos: bool = False,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(id, [len, d_model] float32 CPU tensor)``: layer ``layer``'s output per residue.

    Under ``convention="fair-esm"`` equal to fair-esm's ``model(tokens, repr_layers=[layer])
    ["representations"][layer][i, 1:len+1]``, but no layer after ``layer`` runs; under
    ``"interprot"`` the vectors InterProt's SAEs were trained on (see :mod:`protsae.conventions`).
    ``bos_eos=True`` yields ``[len + 2, d_model]``: BOS, the residues, EOS. Sequences are grouped longest first into
    batches of at most ``forward.max_tokens_per_batch`` padded tokens; results are yielded batch
    by batch in that order (within a batch, longest first), or with ``batch_order_seed`` set, in a
    seeded random order of the batches (so a stored shard has no length trend).
    ``forward.device`` moves the model there (None: where it is); bf16 autocast on CUDA, float32
    on CPU unless ``forward.bf16`` says otherwise. ``forward.loader_workers`` tokenizes in that
    many worker processes (for a GPU).
    """
    for seq_id, hidden in multi_layer_representations(
        model,
        alphabet,
        records,
        [layer],
        forward,
        batch_order_seed=batch_order_seed,
        convention=convention,
        bos_eos=bos_eos,
    ):
        yield seq_id, hidden[layer]


def multi_layer_representations(
    model: ESM2,
    alphabet: esm.data.Alphabet,
    records: Sequence[Record],
    layers: Sequence[int],
    forward: ForwardOptions,
    *,
    batch_order_seed: int | None = None,
    convention: str = FAIR_ESM,
    bos_eos: bool = False,
) -> Iterator[tuple[str, dict[int, torch.Tensor]]]:
    """Yield ``(id, {layer: [len, d_model] float32 CPU tensor})`` for every layer of ``layers``
    from ONE forward per batch that stops at the deepest of them.

    Each layer's vectors are those :func:`layer_representations` gives for it alone (the same
    batches, order and arguments); the forward runs ``max(layers)`` layers instead of one early
    exit per layer. A batch holds the residue stream of each kept layer until its forward ends.
    """
    layers = sorted(set(layers))
    if not layers:
        raise ValueError("no layers to extract")
    for layer in layers:
        check_layer(model, layer)
    check_convention(convention)
    check_records(records)
    device = model_device(model, forward.device)
    batches = token_batches([len(seq) for _, seq in records], forward.max_tokens_per_batch)
    if batch_order_seed is not None:
        order = np.random.default_rng(batch_order_seed).permutation(len(batches))
        batches = [batches[i] for i in order]
    batch_records = [[records[i] for i in batch] for batch in batches]
    loader = torch.utils.data.DataLoader(
        batch_records,
        batch_size=None,
        shuffle=False,
        collate_fn=ResidueBatchConverter(alphabet),
        num_workers=forward.loader_workers or 0,
        pin_memory=device.type == "cuda",
    )
    streams: dict[int, torch.Tensor | None] = {}

    def keep(index: int, hidden: torch.Tensor) -> None:
        if index in streams:
            streams[index] = hidden

    for ids, seqs, tokens in loader:
        tokens = tokens.to(device, non_blocking=True)
        lengths = [len(seq) + 2 * bos_eos for seq in seqs]
        start, width = (0 if bos_eos else 1), max(lengths)
        streams.update(dict.fromkeys(layers))
        with torch.inference_mode(), _autocast(device, forward.bf16):
            _run_layers(model, tokens, stop=layers[-1], convention=convention, tap=keep)
            real = (
                torch.arange(width, device=device)[None, :]
                < torch.tensor(lengths, device=device)[:, None]
            )
            # One gather and one device-to-host copy per kept layer and batch, then per sequence.
            split = {
                layer: torch.split(hidden[:, start : start + width][real].float().cpu(), lengths)
                for layer, hidden in streams.items()
            }
        streams.clear()
        for n, seq_id in enumerate(ids):
            yield seq_id, {layer: split[layer][n] for layer in layers}


def forward_with_layer_edit(
    model: ESM2,
    tokens: torch.Tensor,
    layer: int,
    edit: Edit | None,
    convention: str = FAIR_ESM,
) -> torch.Tensor:
    """Logits ``[B, T, vocab]`` with the residue stream after ``layer`` replaced by ``edit(h)``.

    ``h`` is ``[B, T, d]``, batch-first, every position (BOS, EOS, padding too) and is the same
    quantity ``layer_representations`` returns in ``convention``: for the last layer it is taken
    after the final layer norm under ``fair-esm`` and before it under ``interprot`` (which applies
    the norm after the edit, just before the LM head). ``edit=None`` is the plain forward of that
    convention. bf16 autocast when ``tokens`` are on CUDA.
    """
    check_layer(model, layer)
    check_convention(convention)
    with _autocast(tokens.device, None):
        hidden = _run_layers(
            model, tokens, stop=model.num_layers, layer=layer, edit=edit, convention=convention
        )
        if convention == INTERPROT:
            hidden = model.emb_layer_norm_after(hidden)
        return model.lm_head(hidden).float()


def sae_positions(
    alphabet: esm.data.Alphabet, convention: str
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``tokens [B, T] -> bool [B, T]``: the positions an SAE of ``convention`` was trained on.

    Real residues that are not ``<mask>``, plus BOS and EOS for ``interprot``. Splicing an SAE's
    reconstruction only there keeps its evaluation on the inputs it learned.
    """
    residue_ids = sorted(alphabet.get_idx(letter) for letter in RESIDUE_LETTERS)
    special = [alphabet.cls_idx, alphabet.eos_idx] if trains_on_bos_eos(convention) else []
    allowed = torch.tensor(residue_ids + special)

    def positions(tokens: torch.Tensor) -> torch.Tensor:
        return torch.isin(tokens, allowed.to(tokens.device))

    return positions
