"""ESM-2 extraction on CPU: protsae against fair-esm's loop and against faesm.

Run by ``make bench-peers`` in .venv-faesm (tools/setup_peers.sh: faesm 0.1.1 needs
transformers < 4.47, so it has its own environment; torch is the project's). One random ESM-2
in fair-esm's layout; every contender reads layer L of the same sequences:

- fair-esm: ``scripts/extract.py``'s loop (token-budget batches, full forward,
  ``repr_layers=[L]``), the baseline of benchmarks/bench_extraction.py;
- fair-esm cut at L: the same loop on a copy that keeps the first L layers (a naive early exit);
- faesm: ``FAEsmModel`` (its SDPA attention; flash-attn does not exist on CPU) with the same
  weights converted to the Hugging Face layout, cut at L like protsae, on the same batches;
- protsae: ``protsae.esm.layer_representations`` (early exit, fused attention, its batching).

Sequences are split into chunks; each chunk runs every contender in rotating order. Prints
per-chunk time ratios contender/protsae (min, median, max), the largest absolute difference of
protsae's vectors from fair-esm's and from faesm's, and the load average.

    .venv-faesm/bin/python benchmarks/peers/extraction.py [--quick]
"""

from __future__ import annotations

import copy
import sys
import tempfile
import traceback
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import Interleaved, load_line, tier_parser  # noqa: E402
from bench_extraction import fair_esm_extract, realistic_records  # noqa: E402

from protsae import esm as pesm  # noqa: E402

TOKENS_PER_BATCH = 4096


def hf_state_dict(model) -> dict[str, torch.Tensor]:
    """fair-esm ESM2 weights under the Hugging Face ``EsmModel`` names."""
    source = model.state_dict()
    out = {"embeddings.word_embeddings.weight": source["embed_tokens.weight"]}
    renames = {
        "self_attn.q_proj": "attention.self.query",
        "self_attn.k_proj": "attention.self.key",
        "self_attn.v_proj": "attention.self.value",
        "self_attn.out_proj": "attention.output.dense",
        "self_attn_layer_norm": "attention.LayerNorm",
        "fc1": "intermediate.dense",
        "fc2": "output.dense",
        "final_layer_norm": "LayerNorm",
    }
    for i in range(model.num_layers):
        for theirs, ours in renames.items():
            for kind in ("weight", "bias"):
                out[f"encoder.layer.{i}.{ours}.{kind}"] = source[f"layers.{i}.{theirs}.{kind}"]
    for kind in ("weight", "bias"):
        out[f"encoder.emb_layer_norm_after.{kind}"] = source[f"emb_layer_norm_after.{kind}"]
    return out


def faesm_model(model, alphabet, layer: int):
    """faesm's encoder with ``model``'s weights, keeping the first ``layer`` layers."""
    from faesm.esm import FAEsmModel
    from transformers import EsmConfig

    config = EsmConfig(
        vocab_size=len(alphabet.all_toks), hidden_size=model.embed_dim,
        num_hidden_layers=model.num_layers, num_attention_heads=model.attention_heads,
        intermediate_size=4 * model.embed_dim, position_embedding_type="rotary",
        token_dropout=True, emb_layer_norm_before=False, mask_token_id=alphabet.mask_idx,
        pad_token_id=alphabet.padding_idx, layer_norm_eps=1e-5, max_position_embeddings=1026,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    config.use_fa = False
    theirs = FAEsmModel(config, add_pooling_layer=False).eval()
    missing, unexpected = theirs.load_state_dict(hf_state_dict(model), strict=False)
    # Rotary frequencies are computed, not loaded; the contact head and the absolute position
    # table (built but unused with rotary embeddings) play no part here.
    unused = ("inv_freq", "contact_head.", "position_embeddings.")
    missing = [n for n in missing if not any(part in n for part in unused)]
    if missing or unexpected:
        raise RuntimeError(f"weights did not map onto faesm: missing {missing}, extra {unexpected}")
    theirs.encoder.layer = theirs.encoder.layer[:layer]
    if layer < model.num_layers:
        theirs.encoder.emb_layer_norm_after = None  # layer L's output, as fair-esm's repr L
    return theirs


def faesm_extract(theirs, alphabet, records, toks_per_batch: int) -> dict[str, torch.Tensor]:
    """faesm on fair-esm's batches (the same padding); a few sequences kept for the check."""
    import esm

    dataset = esm.data.FastaBatchedDataset([r[0] for r in records], [r[1] for r in records])
    converter = alphabet.get_batch_converter()
    kept = {}
    with torch.no_grad():
        for batch in dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1):
            labels, strs, toks = converter([(dataset.sequence_labels[i], dataset.sequence_strs[i]) for i in batch])  # fmt: skip
            hidden = theirs(input_ids=toks, attention_mask=toks.ne(alphabet.padding_idx))[0]
            for i, label in enumerate(labels):
                vector = hidden[i, 1 : len(strs[i]) + 1].clone()
                if len(kept) < 4:
                    kept[label] = vector
    return kept


def cut(model, layer: int):
    """A copy of a fair-esm ESM2 with only its first ``layer`` layers, no final layer norm."""
    short = copy.deepcopy(model)
    short.layers = nn.ModuleList(list(short.layers)[:layer])
    if layer < model.num_layers:
        short.emb_layer_norm_after = nn.Identity()
    return short


def compare(name: str, model, alphabet, records, layer: int, chunks: int) -> None:
    tokens = sum(len(s) for _, s in records)
    reference: dict[str, torch.Tensor] = {}
    from_faesm: dict[str, torch.Tensor] = {}
    diffs = {"fair-esm": [], "faesm": []}

    def ours(chunk):
        for seq_id, hidden in pesm.layer_representations(
            model, alphabet, chunk, layer, pesm.ForwardOptions(TOKENS_PER_BATCH)
        ):
            for label, kept in (("fair-esm", reference), ("faesm", from_faesm)):
                if seq_id in kept:
                    diffs[label].append((hidden - kept[seq_id]).abs().max().item())

    contenders = {
        "fair-esm": lambda c: reference.update(
            fair_esm_extract(model, alphabet, c, layer, TOKENS_PER_BATCH)
        ),
        "fair-esm cut at L": lambda c: fair_esm_extract(
            short, alphabet, c, layer, TOKENS_PER_BATCH
        ),
    }
    short = cut(model, layer)
    failure = None
    try:
        theirs = faesm_model(model, alphabet, layer)
        contenders["faesm"] = lambda c: from_faesm.update(
            faesm_extract(theirs, alphabet, c, TOKENS_PER_BATCH)
        )
    except Exception as err:  # a peer that does not import or build is reported
        failure = f"{err.__class__.__name__}: {err}"
        traceback.print_exc(limit=3)
    contenders["protsae"] = ours

    parts = [records[c::chunks] for c in range(chunks)]
    position = {key: iter(parts) for key in contenders}
    timing = Interleaved(
        {key: (lambda key=key: contenders[key](next(position[key]))) for key in contenders}
    )
    for fn in contenders.values():  # warm-up on two sequences, outside the rounds
        fn(records[:2])
    reference.clear()
    from_faesm.clear()
    diffs["fair-esm"].clear()
    diffs["faesm"].clear()
    # protsae runs last in the first round so that the sequences it compares are kept.
    timing.contenders = dict(sorted(timing.contenders.items(), key=lambda kv: kv[0] == "protsae"))
    timing.run(rounds=chunks, warmup=0)
    print(
        f"\n{name}: {model.num_layers} layers x {model.embed_dim} dims, layer {layer}, "
        f"{len(records)} sequences, {tokens:,} residues, {TOKENS_PER_BATCH} tokens per batch, "
        f"{chunks} interleaved chunks; {timing.load()}"
    )
    for key in timing.contenders:
        line = f"  {key:18s} {tokens / sum(timing.seconds[key]):8,.0f} tokens/s"
        if key != "protsae":
            line += f"   {key}/protsae time {timing.ratio_line(key, 'protsae')}"
        print(line)
    for label in ("fair-esm", "faesm"):
        if diffs[label]:
            print(
                f"  max |protsae - {label}| over {len(diffs[label])} sequences: "
                f"{max(diffs[label]):.1e}"
            )
    if failure:
        print(f"  PEER NOT RUN: faesm ({failure})")


def main() -> None:
    args = tier_parser(__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(2)
    print(f"ESM-2 extraction peers on CPU, {torch.get_num_threads()} threads; {load_line()}")
    versions = []
    for package in ("faesm", "transformers", "fair-esm", "torch"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} NOT INSTALLED")
    print("  " + ", ".join(versions))
    failed = Path(sys.prefix) / ".install-failed"
    if failed.is_file():
        print(f"  faesm did not install (tools/setup_peers.sh):\n{failed.read_text().strip()}")

    n_small, n_big = (40, 2) if args.quick else (200, 8)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "random-t6-d320-s0.pt"
        pesm.save_random_init(checkpoint, 6, 320, 20, seed=0)
        model, alphabet = pesm.load_model(checkpoint)
    compare("ESM-2 8M shape", model, alphabet, realistic_records(n_small, seed=0), 3,
            chunks=max(2, n_small // 20))  # fmt: skip
    model = pesm.build_random_init(33, 1280, 20, seed=0)
    compare("ESM-2 650M shape", model, model.alphabet, realistic_records(n_big, seed=1), 24,
            chunks=max(2, n_big // 2))  # fmt: skip


if __name__ == "__main__":
    main()
