"""Config validation and the SAE grid: bad configs stop before any job, naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from protsae.config import (
    ConfigError,
    SaeSpec,
    downloads,
    expand_sweeps,
    extraction_jobs,
    fairesm_urls,
    k_in_file_name,
    layer_passes,
    load_config,
    load_schema,
    model_name,
    model_num_layers,
    pass_rule_name,
    pretrained_specs,
    regression_path,
    validate_config,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = load_schema(ROOT / "workflow/schemas/config.schema.yaml")


def minimal() -> dict:
    return {
        "sources": {
            "uniref50": {"url": "u.fasta.gz"},
            "swissprot": {"url": "sp.dat"},
            "interpro_entries": {"url": "entry.list"},
        },
        "sae": {"sweeps": [{"layers": [4], "ks": [8], "widths": [64]}]},
    }


def check_error(config: dict, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_defaults_are_the_papers_values():
    config = validate_config(minimal(), SCHEMA)
    assert config["results"] == "results"
    assert config["esm"]["model"] == "esm2_t33_650M_UR50D"
    assert config["sequences"] == {
        "sample_size": 1000000,
        "max_length": 1022,
        "seed": 0,
        "swissprot_invalid": "error",
    }
    assert config["clustering"]["min_seq_id"] == 0.3
    assert config["clustering"]["coverage"] == 0.9
    assert config["clustering"]["sensitivity"] == 8
    assert config["latents"]["min_sequences"] == 5
    assert config["latents"]["motif_bounds"] == [20, 50, 300]
    assert config["families"]["f1_threshold"] == 0.7
    assert config["families"]["thresholds"][0] == 0.1
    assert config["steering"]["multipliers"] == [0.5, 1, 1.5, 2, 4]
    assert config["sae"]["training"]["dead_tokens"] == 10_000_000


def test_validation_does_not_modify_the_input():
    raw = minimal()
    before = copy.deepcopy(raw)
    validate_config(raw, SCHEMA)
    assert raw == before


def test_random_init_gets_its_defaults_and_a_name_that_is_not_a_published_model():
    raw = minimal()
    raw["esm"] = {"random_init": {"layers": 6, "embed_dim": 320}}
    config = validate_config(raw, SCHEMA)
    assert config["esm"]["random_init"] == {"layers": 6, "embed_dim": 320, "heads": 4, "seed": 0}
    assert model_name(config["esm"]) == "random-t6-d320-s0"
    assert model_num_layers(config["esm"]) == 6


def test_wrong_type_names_the_key():
    raw = minimal()
    raw["sequences"] = {"sample_size": "many"}
    check_error(raw, "sequences.sample_size", "not of type 'integer'")


@pytest.mark.parametrize("size", [0, -5])
def test_sample_size_must_be_positive(size):
    raw = minimal()
    raw["sequences"] = {"sample_size": size}
    check_error(raw, "sequences.sample_size")


def test_unknown_key_is_an_error_naming_it():
    raw = minimal()
    raw["sae"]["trainig"] = {"lr": 1e-3}
    check_error(raw, "config key sae", "'trainig'")
    raw = minimal()
    raw["activatons"] = {}
    check_error(raw, "'activatons'")


def test_k_larger_than_width_names_the_sweep():
    raw = minimal()
    raw["sae"]["sweeps"].append({"layers": [2], "ks": [128], "widths": [64]})
    check_error(raw, "sae.sweeps[1]", "k=128", "width=64")


def test_layer_deeper_than_the_model():
    raw = minimal()
    raw["esm"] = {"model": "esm2_t6_8M_UR50D"}
    raw["sae"]["sweeps"] = [{"layers": [3, 7], "ks": [8], "widths": [64]}]
    check_error(raw, "sae.sweeps[0].layers", "layer 7", "esm2_t6_8M_UR50D", "6 layers")
    raw["sae"]["sweeps"] = [{"layers": [6], "ks": [8], "widths": [64]}]
    validate_config(raw, SCHEMA)  # the last layer is allowed


def test_layer_depth_checked_against_random_init_too():
    raw = minimal()
    raw["esm"] = {"random_init": {"layers": 2, "embed_dim": 32}}
    check_error(raw, "layer 4", "2 layers")


def test_bad_checksum_format_names_the_source():
    raw = minimal()
    raw["sources"]["uniref50"]["md5"] = "not-a-sum"
    check_error(raw, "sources.uniref50.md5")


def test_missing_required_source():
    raw = minimal()
    del raw["sources"]["swissprot"]
    check_error(raw, "'swissprot' is a required property")


def test_every_problem_is_reported_at_once():
    raw = minimal()
    raw["sequences"] = {"sample_size": 0, "seed": "x"}
    message = check_error(raw, "sequences.sample_size", "sequences.seed")
    assert message.count("config key") == 2


def test_sweeps_expand_to_a_set_each_sae_once():
    sweeps = [
        {"layers": [4, 8], "ks": [64], "widths": [4096]},
        {"layers": [8], "ks": [16, 64], "widths": [4096]},
        {"layers": [8, 8], "ks": [64], "widths": [4096, 4096]},
    ]
    specs = expand_sweeps(sweeps)
    assert specs == [SaeSpec(4, 64, 4096), SaeSpec(8, 16, 4096), SaeSpec(8, 64, 4096)]
    assert specs[0].name == "k64-w4096"


def test_paper_config_grid():
    config = load_config(ROOT / "config/config.yaml", ROOT / "workflow/schemas/config.schema.yaml")
    specs = expand_sweeps(config["sae"]["sweeps"])
    # 8 layers + 5 ks + 5 widths, minus the (24, 64, 4096) and (24, 64, 8192) repeats
    assert len(specs) == 8 + 5 + 5 - 2
    assert sorted({s.layer for s in specs}) == [4, 8, 12, 16, 20, 24, 28, 32]
    files = downloads(config)
    assert files["esm2_t33_650M_UR50D.pt"]["url"].endswith("/models/esm2_t33_650M_UR50D.pt")
    assert "esm2_t33_650M_UR50D-contact-regression.pt" in files
    (thermo,) = [f for f in files.values() if f["source"] == "thermostability"]
    assert thermo["md5"] == "0f8b1e848568f7566713d53594c0ca90"


def test_demo_config_is_valid_and_uses_its_bundled_model():
    config = load_config(ROOT / "config/demo.yaml", ROOT / "workflow/schemas/config.schema.yaml")
    assert config["esm"]["pretrain"] is None
    # a local checkpoint: named by its stem, its depth read from the esm2_t<layers>_ prefix
    assert model_name(config["esm"]) == "esm2_t4_demo"
    assert model_num_layers(config["esm"]) == 4
    assert not any(name.endswith(".pt") for name in downloads(config))


def test_pretrain_gets_its_defaults_and_excludes_random_init():
    raw = minimal()
    raw["esm"] = {"pretrain": {"layers": 4, "embed_dim": 48, "steps": 10}}
    config = validate_config(raw, SCHEMA)
    assert config["esm"]["pretrain"] == {
        "layers": 4,
        "embed_dim": 48,
        "heads": 4,
        "steps": 10,
        "batch_tokens": 8192,
        "lr": 1.0e-3,
        "seed": 0,
        "checkpoint_every": 100,
    }
    assert model_name(config["esm"]) == "pretrained-t4-d48-s0"
    raw["esm"]["random_init"] = {"layers": 4, "embed_dim": 48}
    with pytest.raises(ConfigError, match="random_init and pretrain exclude each other"):
        validate_config(raw, SCHEMA)


def test_checkpoint_path_model_is_named_by_its_stem(tmp_path):
    raw = minimal()
    raw["esm"] = {"model": "models/esm2_t2_tiny.pt"}
    raw["sae"]["sweeps"] = [{"layers": [2], "ks": [8], "widths": [64]}]
    config = validate_config(raw, SCHEMA)
    assert model_name(config["esm"]) == "esm2_t2_tiny"
    assert model_num_layers(config["esm"]) == 2
    assert not any(name.endswith(".pt") for name in downloads(config))


def test_load_config_error_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    raw = minimal()
    raw["sequences"] = {"sample_size": 0}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(path, ROOT / "workflow/schemas/config.schema.yaml")


def test_pretrained_layers_accept_integer_keys():
    raw = minimal()
    raw["sae"]["pretrained"] = {
        24: {"path": "sae.safetensors", "k": 64},
        12: {"path": "b.safetensors", "k": 32},
    }
    config = validate_config(raw, SCHEMA)
    assert set(config["sae"]["pretrained"]) == {"24", "12"}
    raw["sae"]["pretrained"] = {"x": {"path": "sae.safetensors", "k": 64}}
    check_error(raw, "sae.pretrained", "'x'")


def test_pretrained_k_is_required_and_matches_the_file_name():
    raw = minimal()
    # InterProt files store no k: neither a bare path nor {path} may fall back to a default.
    raw["sae"]["pretrained"] = {24: "esm2_plm1280_l24_sae4096.safetensors"}
    check_error(raw, "sae.pretrained.24.k: required", "esm2_plm1280_l24_sae4096.safetensors")
    raw["sae"]["pretrained"] = {24: {"path": "esm2_plm1280_l24_sae4096.safetensors"}}
    check_error(raw, "sae.pretrained.24.k: required")
    raw["sae"]["pretrained"] = {
        24: {"path": "dir/esm2_plm1280_l24_sae4096_k64_auxk640.safetensors", "k": 128}
    }
    check_error(raw, "sae.pretrained.24.k: k=128", "says k64")
    raw["sae"]["pretrained"][24]["k"] = 64
    assert validate_config(raw, SCHEMA)["sae"]["pretrained"]["24"]["k"] == 64
    assert k_in_file_name("esm2_plm1280_l24_sae4096_k64_auxk640.safetensors") == 64
    assert k_in_file_name("a/b/sae_k32.safetensors") == 32
    assert k_in_file_name("esm2_plm1280_l24_sae4096_auxk640.safetensors") is None
    assert k_in_file_name("k8/sae.safetensors") is None  # only the file name counts
    with pytest.raises(ConfigError, match=r"sae\.pretrained\.3\.k"):
        pretrained_specs({"sae": {"pretrained": {"3": "w.safetensors"}}}, lambda path: 128)
    specs = pretrained_specs(
        {"sae": {"pretrained": {"3": {"path": "w.safetensors", "k": 8}}}}, lambda path: 128
    )
    assert specs == {SaeSpec(3, 8, 128): "w.safetensors"}


def test_download_names_follow_the_url():
    raw = minimal()
    first = downloads(validate_config(raw, SCHEMA))
    raw["sources"]["swissprot"]["url"] = "https://example.org/other_sprot.dat.gz"
    second = downloads(validate_config(raw, SCHEMA))
    names = {f["source"]: name for name, f in first.items()}
    new_names = {f["source"]: name for name, f in second.items()}
    assert names["uniref50"] == new_names["uniref50"]
    assert names["swissprot"] != new_names["swissprot"]
    assert names["swissprot"].startswith("swissprot-")


def test_sae_evaluation_needs_held_out_sequences():
    raw = minimal()
    raw["activations"] = {"holdout_fraction": 0}
    check_error(raw, "activations.holdout_fraction")


def test_fairesm_urls() -> None:
    model, regression = fairesm_urls("esm2_t33_650M_UR50D")
    assert model == "https://dl.fbaipublicfiles.com/fair-esm/models/esm2_t33_650M_UR50D.pt"
    assert regression == (
        "https://dl.fbaipublicfiles.com/fair-esm/regression/"
        "esm2_t33_650M_UR50D-contact-regression.pt"
    )


def test_regression_file_sits_beside_its_checkpoint() -> None:
    # The name fair-esm's loader looks for; the download of fairesm_urls keeps it.
    assert regression_path("models/esm2_t6_8M_UR50D.pt") == Path(
        "models/esm2_t6_8M_UR50D-contact-regression.pt"
    )
    assert (
        regression_path("models/esm2_t6_8M_UR50D.pt").name
        == fairesm_urls("esm2_t6_8M_UR50D")[1].rsplit("/", 1)[1]
    )


def test_steering_defaults_and_cross_checks():
    steering = validate_config(minimal(), SCHEMA)["steering"]
    assert steering["filter"] == {"multiplier": 0.5, "min_fraction_unchanged": 0.2}
    assert steering["conservation_bins"][0] == 0.0 and steering["conservation_bins"][-1] == 1.0
    assert steering["only_where_active"] is False and steering["min_homologs"] == 2
    raw = minimal()
    raw["steering"] = {"multipliers": [1, 2], "conservation_bins": [0, 0.7, 0.3, 1]}
    check_error(
        raw,
        "steering.filter.multiplier: 0.5 is not one of steering.multipliers [1, 2]",
        "steering.conservation_bins: edges must increase from 0 to 1",
    )


# ---- activations.layer_passes ----------------------------------------------------------


def with_passes(passes, esm=None) -> dict:
    config = minimal()
    config["activations"] = {"layer_passes": passes}
    if esm is not None:
        config["esm"] = esm
    return config


def test_layer_passes_default_to_none_and_keep_their_groups():
    assert validate_config(minimal(), SCHEMA)["activations"]["layer_passes"] == []
    config = validate_config(with_passes([[8, 4], [12]]), SCHEMA)
    assert layer_passes(config) == [(4, 8), (12,)]
    # the groups with a wanted layer run; wanted layers of no group run alone
    assert extraction_jobs(config, {4, 20, 3}) == ([(4, 8)], [3, 20])
    assert pass_rule_name((8, 4)) == "extract_pass_L4_8"


def test_a_layer_in_two_groups_is_refused():
    check_error(
        with_passes([[4, 8], [8, 12], [12]]),
        "config key activations.layer_passes[1]: layer 8 is already in activations.layer_passes[0]",
        "config key activations.layer_passes[2]: layer 12 is already in activations.layer_passes[1]",
    )


def test_bad_groups_are_refused_naming_the_group():
    check_error(with_passes([[]]), "config key activations.layer_passes[0]", "should be non-empty")
    check_error(with_passes([[4, 4]]), "activations.layer_passes[0]", "non-unique")
    check_error(with_passes([[0, 4]]), "activations.layer_passes[0][0]", "minimum of 1")
    check_error(with_passes([4]), "activations.layer_passes[0]", "not of type 'array'")
    check_error(
        with_passes([[4, 40]]),
        "config key activations.layer_passes[0]: layer 40 is deeper than the model (33 layers)",
    )
    esm = {"random_init": {"layers": 4, "embed_dim": 32, "heads": 4}}
    config = with_passes([[2, 5]], esm)
    config["sae"]["sweeps"][0]["layers"] = [2]
    check_error(config, "activations.layer_passes[0]: layer 5 is deeper than the model (4 layers)")
