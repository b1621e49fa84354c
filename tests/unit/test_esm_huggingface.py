"""Hugging Face ESM-2 (protsae.huggingface) against transformers' own EsmForMaskedLM and
fair-esm: a random model saved with save_pretrained, converted, must compute what transformers
computes; bad folders and hub ids are refused naming esm.model and the file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from protsae import esm as pesm
from protsae import huggingface as hf
from protsae.config import downloads, model_name
from protsae.esm.checkpoint import save_hf_as_fairesm

# make test (PROTSAE_REQUIRE_OPTIONAL=1) fails instead of skipping without the hf extra.
if os.environ.get("PROTSAE_REQUIRE_OPTIONAL"):
    import transformers
else:
    transformers = pytest.importorskip("transformers", reason="pip install -e '.[hf]'")

LAYERS, DIM, HEADS = 3, 32, 4
TOL = 1e-5
SEQUENCES = {
    "long": "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ",
    "rare": "MXBZUOACDEFGHIKXLMNPQRSTVWY",
    "short": "MKV",
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def esm_config(**overrides):
    settings = dict(
        vocab_size=33,
        hidden_size=DIM,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=4 * DIM,
        position_embedding_type="rotary",
        token_dropout=True,
        emb_layer_norm_before=False,
        mask_token_id=32,
        pad_token_id=1,
        layer_norm_eps=1e-5,
        max_position_embeddings=1026,
    )
    settings.update(overrides)
    return transformers.EsmConfig(**settings)


def random_hf_model(seed: int = 0, **overrides):
    """A random EsmForMaskedLM whose every parameter (layer norms and biases too) is random,
    so a swapped or dropped tensor in the conversion changes the outputs."""
    torch.manual_seed(seed)
    model = transformers.EsmForMaskedLM(esm_config(**overrides)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("LayerNorm.weight") or name.endswith("layer_norm.weight"):
                param.copy_(1 + 0.2 * torch.randn_like(param))
            else:
                param.copy_(0.1 * torch.randn_like(param))
    return model


def save_hf(model, folder: Path, vocab: bool = True) -> Path:
    model.save_pretrained(folder)
    if vocab:
        (folder / "vocab.txt").write_text("\n".join(hf.ESM2_VOCAB) + "\n")
    return folder


@pytest.fixture(scope="module")
def hf_model():
    return random_hf_model()


@pytest.fixture(scope="module")
def hf_folder(hf_model, tmp_path_factory) -> Path:
    return save_hf(hf_model, tmp_path_factory.mktemp("hf") / "tiny_esm2")


def hf_outputs(model, sequence: str):
    ids = [0] + [hf.ESM2_VOCAB.index(a) for a in sequence] + [2]
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states, out.logits[0]


def test_tokenizer_ids_are_fair_esm_ids(hf_folder):
    """EsmTokenizer on our vocab.txt gives fair-esm's token ids, so the conversion shares them."""
    tokenizer = transformers.EsmTokenizer(vocab_file=str(hf_folder / "vocab.txt"))
    _, alphabet = pesm.load_model(hf_folder)
    converter = alphabet.get_batch_converter()
    for seq_id, sequence in SEQUENCES.items():
        _, _, tokens = converter([(seq_id, sequence)])
        assert tokenizer(sequence)["input_ids"] == tokens[0].tolist()


def test_activations_and_logits_equal_transformers(hf_model, hf_folder):
    """Every layer's residue activations (protsae's forward on the converted weights) equal
    transformers' hidden_states, the last one including the final layer norm, and fair-esm's
    logits on the converted weights equal transformers' logits."""
    model, alphabet = pesm.load_model(hf_folder)
    records = list(SEQUENCES.items())
    for layer in range(1, LAYERS + 1):
        ours = dict(
            pesm.layer_representations(
                model, alphabet, records, layer, pesm.ForwardOptions(4096, "cpu")
            )
        )
        for seq_id, sequence in records:
            hidden, _ = hf_outputs(hf_model, sequence)
            expected = hidden[layer][0, 1 : len(sequence) + 1]
            torch.testing.assert_close(ours[seq_id], expected, atol=TOL, rtol=0)
    _, _, tokens = alphabet.get_batch_converter()(records)
    with torch.no_grad():
        fair = model(tokens, repr_layers=[LAYERS])
    for i, (_, sequence) in enumerate(records):
        _, logits = hf_outputs(hf_model, sequence)
        n = len(sequence) + 2
        torch.testing.assert_close(fair["logits"][i, :n], logits, atol=TOL, rtol=0)
        hidden, _ = hf_outputs(hf_model, sequence)
        torch.testing.assert_close(
            fair["representations"][LAYERS][i, :n], hidden[LAYERS][0], atol=TOL, rtol=0
        )


def test_converted_checkpoint_loads_as_fair_esm(hf_folder, tmp_path):
    """convert() writes a fair-esm checkpoint that fair-esm's loader (through load_model) reads
    into the same weights as the in-memory conversion."""
    out = tmp_path / "hf-tiny_esm2.pt"
    save_hf_as_fairesm(
        hf_folder / "config.json", hf_folder / "model.safetensors", hf_folder / "vocab.txt", out
    )
    assert out.is_file() and (tmp_path / "hf-tiny_esm2-contact-regression.pt").is_file()
    from_file, _ = pesm.load_model(out)
    in_memory, _ = pesm.load_model(hf_folder)
    a, b = from_file.state_dict(), in_memory.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_gamma_beta_names_and_per_layer_rotary_buffers(hf_model, hf_folder, tmp_path):
    """Older hub files name layer norms gamma/beta and store rotary buffers per layer."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(hf_folder / "model.safetensors"))
    renamed = {}
    for name, tensor in tensors.items():
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        )
        renamed[name] = tensor
    for i in range(LAYERS):
        renamed[f"esm.encoder.layer.{i}.attention.self.rotary_embeddings.inv_freq"] = torch.zeros(4)
    folder = tmp_path / "old_layout"
    shutil.copytree(hf_folder, folder)
    save_file(renamed, str(folder / "model.safetensors"))
    model, alphabet = pesm.load_model(folder)
    hidden, _ = hf_outputs(hf_model, SEQUENCES["long"])
    ours = dict(
        pesm.layer_representations(
            model, alphabet, [("x", SEQUENCES["long"])], 2, pesm.ForwardOptions(4096)
        )
    )
    torch.testing.assert_close(ours["x"], hidden[2][0, 1:-1], atol=TOL, rtol=0)


# --------------------------------------------------------------------------- bad input


def test_folder_without_config_json(tmp_path):
    folder = tmp_path / "empty_model"
    folder.mkdir()
    with pytest.raises(hf.HfModelError, match=r"esm\.model.*empty_model.*config\.json"):
        hf.inspect(hf.parse_hf_model(str(folder)))


def test_non_esm_config(tmp_path):
    bert = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4)
    folder = tmp_path / "bert"
    transformers.BertForMaskedLM(bert).save_pretrained(folder)
    with pytest.raises(hf.HfModelError, match=r"esm\.model.*bert.*model_type='bert'"):
        hf.inspect(hf.parse_hf_model(str(folder)))


def test_absolute_positions_refused(tmp_path):
    folder = save_hf(random_hf_model(position_embedding_type="absolute"), tmp_path / "abs")
    with pytest.raises(hf.HfModelError, match=r"config\.json position_embedding_type='absolute'"):
        hf.inspect(hf.parse_hf_model(str(folder)))


def test_shape_mismatch_names_tensor(hf_folder, tmp_path):
    """A config.json that says more layers or another width than the weights hold."""
    folder = tmp_path / "mismatch"
    shutil.copytree(hf_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = LAYERS + 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        hf.HfModelError, match=rf"model\.safetensors.*esm\.encoder\.layer\.{LAYERS}\..* missing"
    ):
        hf.inspect(hf.parse_hf_model(str(folder)))
    config.update(num_hidden_layers=LAYERS, hidden_size=2 * DIM, intermediate_size=8 * DIM)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(hf.HfModelError, match=r"word_embeddings\.weight has shape \[33, 32\]"):
        hf.inspect(hf.parse_hf_model(str(folder)))


def test_wrong_vocabulary(hf_folder, tmp_path):
    folder = tmp_path / "vocab"
    shutil.copytree(hf_folder, folder)
    (folder / "vocab.txt").write_text("\n".join(reversed(hf.ESM2_VOCAB)))
    with pytest.raises(hf.HfModelError, match=r"vocab\.txt.*not ESM-2's 33 tokens"):
        hf.inspect(hf.parse_hf_model(str(folder)))


def test_untied_output_weights_refused(hf_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(hf_folder / "model.safetensors"))
    tensors["lm_head.decoder.weight"] = torch.randn(33, DIM)
    folder = tmp_path / "untied"
    shutil.copytree(hf_folder, folder)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(hf.HfModelError, match="lm_head.decoder.weight differs"):
        pesm.load_model(folder)


def test_bad_hub_id_syntax():
    with pytest.raises(hf.HfModelError, match=r"hf:<owner>/<name>"):
        hf.parse_hf_model("hf:esm2_t6_8M_UR50D")


# --------------------------------------------------------------------------- the hub


@pytest.fixture
def hub(local_hub, hf_folder):
    """The tiny model published on a local server laid out like the hub."""
    return local_hub("tester/esm2_t3_tiny", hf_folder, hf.HUB_FILES)


def test_hub_model_inspected_from_the_hub(hub):
    model = hf.parse_hf_model("hf:tester/esm2_t3_tiny")
    assert model.name == "hf-tester--esm2_t3_tiny"
    assert hf.inspect(model) == hf.EsmShape(LAYERS, DIM, HEADS, True)


def test_hub_404_names_key_and_url(hub):
    model = hf.parse_hf_model("hf:tester/no_such_model")
    with pytest.raises(hf.HfModelError) as err:
        hf.inspect(model)
    message = str(err.value)
    assert "config key esm.model: hf:tester/no_such_model" in message
    assert "/tester/no_such_model/resolve/main/config.json: HTTP 404" in message


def test_hub_shape_mismatch_read_from_header_only(hub):
    """The weights' shapes come from the safetensors header at the start of the download."""
    config = json.loads((hub / "config.json").read_text())
    config["hidden_size"], config["intermediate_size"] = 2 * DIM, 8 * DIM
    (hub / "config.json").write_text(json.dumps(config))
    with pytest.raises(hf.HfModelError, match=r"resolve/main/model\.safetensors.*do not fit"):
        hf.inspect(hf.parse_hf_model("hf:tester/esm2_t3_tiny"))


def test_download_entries_for_a_hub_model(hub):
    """The download stage fetches config, weights and vocabulary from the hub's per-file URLs;
    the model's name and the checkpoint it is converted into follow the hub id."""
    config = {"sources": {}, "esm": {"model": "hf:tester/esm2_t3_tiny@v1", "model_sha256": None}}
    files = downloads(config)
    name = model_name(config["esm"])
    assert name == "hf-tester--esm2_t3_tiny-v1"
    assert sorted(files) == sorted(f"{name}.{f}" for f in hf.HUB_FILES)
    assert files[f"{name}.model.safetensors"]["url"].endswith(
        "/tester/esm2_t3_tiny/resolve/v1/model.safetensors"
    )
    assert {e["label"] for e in files.values()} == {"esm.model"}


def test_encode_finds_hugging_face_weights(hf_folder, tmp_path):
    """protsae encode --model takes a save_pretrained folder as it is, and hf:<id> as the
    checkpoint the workflow converted it into (beside the results folder)."""
    from protsae.encoding.inputs import find_checkpoint
    from protsae.encoding.types import SaeFolder

    results = tmp_path / "results"
    sae = SaeFolder(results / "sae/m/L2/k8-w64", "hf-tester--esm2_t3_tiny", 2, 8, 64, results)
    assert find_checkpoint(sae, hf_folder) == hf_folder
    converted = tmp_path / "resources/downloads/hf-tester--esm2_t3_tiny.pt"
    converted.parent.mkdir(parents=True)
    save_hf_as_fairesm(hf_folder / "config.json", hf_folder / "model.safetensors", None, converted)
    assert find_checkpoint(sae, "hf:tester/esm2_t3_tiny") == converted
    assert find_checkpoint(sae) == converted  # from sae.json's model name
    with pytest.raises(Exception, match=r"--model: 'hf:tiny'"):
        find_checkpoint(sae, "hf:tiny")


def test_plan_reads_the_shape_of_a_hugging_face_model(hf_folder):
    """protsae plan prices a folder from its config.json and a facebook hub id by its name."""
    from protsae.costs.types import model_shape

    shape = model_shape({"model": str(hf_folder)})
    assert (shape.name, shape.layers, shape.d_model) == ("hf-tiny_esm2", LAYERS, DIM)
    hub = model_shape({"model": "hf:facebook/esm2_t12_35M_UR50D"})
    assert (hub.name, hub.layers, hub.d_model) == ("hf-facebook--esm2_t12_35M_UR50D", 12, 480)
