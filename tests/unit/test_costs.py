"""`protsae plan`'s arithmetic on a fixed config whose every number is worked out here by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from protsae.cli import main
from protsae.config import (
    extraction_jobs,
    load_schema,
    pass_rule_name,
    schema_path,
    validate_config,
)
from protsae.costs.memory import profile_mem_mb, rule_mem_mb
from protsae.costs.plan import build_plan
from protsae.costs.types import GPUS, Assumptions
from protsae.ids import is_holdout

ROOT = Path(__file__).resolve().parents[2]
D, LAYERS, HEADS = 32, 3, 4
LENGTHS = {"s1": 5, "s2": 20, "s3": 30, "s4": 12, "long": 60}  # "long" > max_length
PER_SEQ = 10


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("u.fasta").write_text("".join(f">{i}\n{'A' * n}\n" for i, n in LENGTHS.items()))
    Path("sp.dat").write_text(
        "ID   A\nSQ   SEQUENCE   40 AA;  1 MW;  X CRC64;\n//\n"
        "ID   B\nSQ   SEQUENCE   2000 AA;  1 MW;  X CRC64;\n//\n"  # longer than 1022: not evaluated
    )
    raw = {
        "results": "res",
        "sources": {
            "uniref50": {"url": "u.fasta"},
            "swissprot": {"url": "sp.dat"},
            "interpro_entries": {"url": "entry.list"},
        },
        "esm": {"random_init": {"layers": LAYERS, "embed_dim": D, "heads": HEADS, "seed": 0}},
        "sequences": {"sample_size": 100, "max_length": 50, "seed": 0},
        "activations": {
            "shards": 3,
            "tokens_per_sequence": PER_SEQ,
            "dtype": "float16",
            "holdout_fraction": 0.2,
        },
        "sae": {
            "sweeps": [
                {"layers": [1, 3], "ks": [2], "widths": [16]},
                {"layers": [1], "ks": [2, 4], "widths": [16]},
            ],
            "training": {"total_tokens": 1000, "batch_tokens": 100},
        },
        "probes": {"layers": [1], "sae": {"k": 2, "width": 16}},
    }
    return validate_config(raw, load_schema(schema_path()))


def test_jobs_follow_the_sweep_expansion(config):
    plan = build_plan(config)
    # SAEs (1,2,16), (3,2,16), (1,4,16): the (1,2,16) of both sweeps counts once.
    assert plan.jobs["train_sae"] == 3
    for rule in (
        "evaluate_sae",
        "latent_stats",
        "latent_classes",
        "latent_families",
        "latent_summary",
    ):
        assert plan.jobs[rule] == 3
    assert plan.jobs["extract_activations"] == 2 * 3  # layers {1, 3} x 3 shards
    assert plan.jobs["download"] == 3 and plan.jobs["esm_random_init"] == 1
    assert sum(plan.jobs.values()) == plan.to_dict()["total_jobs"]


def test_tokens_and_bytes_by_hand(config):
    plan = build_plan(config)
    eligible = {i: n for i, n in LENGTHS.items() if n <= 50}
    held = {i for i in eligible if is_holdout(i, 0.2)}
    stored = sum(min(n, PER_SEQ) for i, n in eligible.items() if i not in held)
    assert plan.tokens["sampled_sequences"] == len(eligible)
    assert plan.tokens["sampled_residues"] == sum(eligible.values())
    assert plan.tokens["holdout_sequences"] == len(held)
    assert plan.tokens["stored_tokens_per_layer"] == stored
    assert plan.tokens["epochs_over_cache"] == pytest.approx(1000 / stored)
    assert plan.tokens["eval_set_sequences"] == 1 and plan.tokens["eval_set_residues"] == 40
    # float16 vectors of d=32 plus 6 bytes of id/pos per stored residue, for 2 layers
    assert plan.disk_extra["activations per layer"] == stored * (2 * D + 6)
    assert plan.disk["activations/ (all layers)"] == 2 * stored * (2 * D + 6)
    sae_bytes = 4 * (2 * D * 16 + 16 + D) + 1024
    assert plan.disk["sae/ (weights, train logs, eval)"] == 3 * (sae_bytes + 2000) + 3 * 10 * 40
    assert plan.disk_total == pytest.approx(sum(plan.disk.values()))


def test_flops_by_hand(config):
    plan = build_plan(config, Assumptions(gpu="h100", utilization=0.5))
    eligible = {i: n for i, n in LENGTHS.items() if n <= 50}
    train = {i: n for i, n in eligible.items() if not is_holdout(i, 0.2)}
    tokens = sum(n + 2 for n in train.values())  # BOS and EOS run through the model too
    mean_t = sum((n + 2) ** 2 for n in eligible.values()) / sum(n + 2 for n in eligible.values())
    per_layer = tokens * (24 * D**2 + 4 * mean_t * D)
    stages = {s.rule: s for s in plan.stages}
    assert stages["extract_activations"].flops == pytest.approx(per_layer * (1 + 3))
    alt = plan.extraction_alternative
    assert alt["multi_layer_pass_flops"] == pytest.approx(per_layer * 3)
    assert alt["layer_passes_per_sequence_early_exit"] == 4
    # SAE training: 4 d w + 6 (k + d/2) d per token, total_tokens each
    want = sum(1000 * (4 * D * 16 + 6 * (k + D // 2) * D) for k in (2, 2, 4))
    assert stages["train_sae"].flops == pytest.approx(want)
    assert stages["train_sae"].precision == "fp32"
    assert stages["train_sae"].gpu_hours == pytest.approx(want / (67e12 * 0.5) / 3600)
    assert stages["extract_activations"].gpu_hours == pytest.approx(
        per_layer * 4 / (989e12 * 0.5) / 3600
    )


def test_gpu_choice_scales_gpu_hours_by_peak(config):
    a100 = build_plan(config, Assumptions(gpu="a100"))
    h100 = build_plan(config, Assumptions(gpu="h100"))
    ratio = GPUS["h100"].bf16 / GPUS["a100"].bf16
    assert a100.stages[0].gpu_hours == pytest.approx(h100.stages[0].gpu_hours * ratio)
    with pytest.raises(ValueError, match="unknown GPU 'tpu'"):
        build_plan(config, Assumptions(gpu="tpu"))


def test_null_budget_is_one_pass_over_the_cache(config):
    config["sae"]["training"]["total_tokens"] = None
    plan = build_plan(config)
    assert plan.tokens["sae_training_tokens"] == plan.tokens["stored_tokens_per_layer"]
    assert plan.tokens["epochs_over_cache"] == 1


def test_assumed_lengths_when_the_fasta_is_remote(config):
    config["sources"]["uniref50"]["url"] = "https://example.org/uniref50.fasta.gz"
    plan = build_plan(config, Assumptions(mean_length=200))
    assert plan.tokens["sampled_residues"] == 100 * 200
    assert plan.tokens["holdout_sequences"] == 20
    assert plan.tokens["stored_tokens_per_layer"] == 80 * PER_SEQ
    plan = build_plan(config)
    assert any("mean sampled length 300" in n for n in plan.assumptions["notes"])


def test_mem_mb_from_the_rules_unless_the_profile_overrides(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.smk").write_text(
        "rule heavy:\n    resources:\n        gpu=1,\n        mem_mb=32000,\n"
        "checkpoint light:\n    resources:\n        mem_mb=900,\n"
        "rule plain:\n    shell: 'true'\n"
    )
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        yaml.safe_dump(
            {"default-resources": {"mem_mb": 100}, "set-resources": {"light": {"mem_mb": 2000}}}
        )
    )
    assert rule_mem_mb(rules) == {"heavy": 32000, "light": 900}
    assert profile_mem_mb(profile, rules) == {"heavy": 32000, "light": 2000, "default": 100}


def test_memory_against_the_profile(config, tmp_path):
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump({"set-resources": {"extract_activations": {"mem_mb": 100}}}))
    rows = {r["rule"]: r for r in build_plan(config, profile=profile).memory}
    assert rows["extract_activations"]["profile_mem_mb"] == 100
    assert rows["extract_activations"]["fits"] is False  # a job's python alone needs more
    # the others keep the mem_mb their rule declares
    assert rows["train_sae"]["profile_mem_mb"] == rule_mem_mb()["train_sae"]
    assert rows["train_sae"]["fits"] is True


def test_the_shipped_schema_is_the_workflows():
    assert schema_path().read_bytes() == (ROOT / "workflow/schemas/config.schema.yaml").read_bytes()


def test_cli_json_and_table(config, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["plan", str(path), "--json", "--gpu", "h100"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["jobs"]["train_sae"] == 3
    assert data["assumptions"]["gpu"] == GPUS["h100"].name
    assert math.isclose(data["gpu_hours_total"], sum(s["gpu_hours"] for s in data["stages"]))
    assert main(["plan", str(path)]) == 0
    text = capsys.readouterr().out
    assert "extract_activations" in text and "multi-layer pass" in text and "mem_mb" in text


def test_cli_config_error_is_the_validators_message(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {"sae": {"sweeps": [{"layers": [1], "ks": [64], "widths": [8]}]}, "bogus": 1}
        )
    )
    assert main(["plan", str(path)]) == 1
    err = capsys.readouterr().err
    # protsae.config.load_config's message: the file, then the validator's lines
    assert err.startswith(
        f"{path}: invalid config:\n  config key <top level>: unknown key(s) 'bogus'"
    )
    assert main(["plan", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: cannot read the config" in capsys.readouterr().err


def test_paper_config_fits_in_1tb_and_trains_on_the_full_budget():
    from protsae.config import expand_sweeps, load_config

    config = load_config(ROOT / "config/config.yaml", schema_path())
    for mean_length in (None, 350):  # the default assumption, and a longer UniRef50 mean
        plan = build_plan(config, Assumptions(mean_length=mean_length))
        assert plan.disk_total < 1e12
        assert plan.disk["activations/ (all layers)"] < 1e12
        # every SAE sees at least one pass over every residue of the 1M sampled sequences
        # (an explicit budget: with 40 cached residues per sequence, null would be far less)
        assert plan.tokens["sae_training_tokens"] >= plan.tokens["sampled_residues"]
    specs = expand_sweeps(config["sae"]["sweeps"])
    assert plan.jobs["train_sae"] == len(specs)
    layers = {s.layer for s in specs}
    # the layer sweep's eight layers from one pass per shard (activations.layer_passes)
    assert config["activations"]["layer_passes"] == [sorted(layers)]
    assert plan.jobs[pass_rule_name(sorted(layers))] == config["activations"]["shards"]
    assert "extract_activations" not in plan.jobs
    alt = plan.extraction_alternative
    assert alt["layer_passes_per_sequence_early_exit"] == sum(layers)
    assert alt["layer_passes_per_sequence_configured"] == max(layers)
    assert alt["per_layer_early_exit_flops"] / alt["multi_layer_pass_flops"] == pytest.approx(
        sum(layers) / max(layers)
    )
    assert alt["configured_flops"] == alt["multi_layer_pass_flops"]
    assert all(row["fits"] for row in plan.memory)


def test_demo_plan_follows_its_config(monkeypatch):
    from protsae.config import expand_sweeps, load_config

    monkeypatch.chdir(ROOT)
    config = load_config(ROOT / "config/demo.yaml", schema_path())
    plan = build_plan(config)
    specs = expand_sweeps(config["sae"]["sweeps"])
    layers = {s.layer for s in specs}
    groups, lone = extraction_jobs(config, layers)
    shards = config["activations"]["shards"]
    assert plan.jobs.get("extract_activations", 0) == len(lone) * shards
    assert {pass_rule_name(g): plan.jobs[pass_rule_name(g)] for g in groups} == {
        pass_rule_name(g): shards for g in groups
    }
    assert plan.tokens["sampled_sequences"] <= config["sequences"]["sample_size"]
    assert plan.assumptions["sample_measured"] is True
    d = config["esm"]["random_init"]["embed_dim"] if config["esm"]["random_init"] else None
    if d is not None:
        per_token = d * (2 if config["activations"]["dtype"] == "float16" else 4) + 6
        assert plan.disk_extra["activations per layer"] == pytest.approx(
            plan.tokens["stored_tokens_per_layer"] * per_token
        )


# ---- activations.layer_passes ----------------------------------------------------------


def test_layer_passes_cost_their_deepest_layer_and_lone_layers_their_depth(config):
    config["sae"]["sweeps"].append({"layers": [2], "ks": [2], "widths": [16]})  # layers 1, 2, 3
    config["activations"]["layer_passes"] = [[2, 1]]
    plan = build_plan(config, Assumptions(gpu="h100", utilization=0.5))
    assert plan.jobs[pass_rule_name([1, 2])] == 3 and plan.jobs["extract_activations"] == 3
    eligible = {i: n for i, n in LENGTHS.items() if n <= 50}
    train = {i: n for i, n in eligible.items() if not is_holdout(i, 0.2)}
    mean_t = sum((n + 2) ** 2 for n in eligible.values()) / sum(n + 2 for n in eligible.values())
    per_layer = sum(n + 2 for n in train.values()) * (24 * D**2 + 4 * mean_t * D)
    stages = {s.rule: s for s in plan.stages}
    assert stages["extract_pass_L1_2"].flops == pytest.approx(per_layer * 2)  # one pass to 2
    assert stages["extract_activations"].flops == pytest.approx(per_layer * 3)  # layer 3 alone
    alt = plan.extraction_alternative
    passes = {k: alt[f"layer_passes_per_sequence_{k}"] for k in ("early_exit", "multi_layer")}
    assert passes == {"early_exit": 1 + 2 + 3, "multi_layer": 3}
    assert alt["layer_passes_per_sequence_configured"] == 2 + 3
    assert alt["configured_flops"] == pytest.approx(per_layer * 5)
    assert alt["configured_gpu_hours"] == pytest.approx(per_layer * 5 / (989e12 * 0.5) / 3600)
    rows = {r["rule"]: r for r in plan.memory}
    assert rows["extract_pass_L1_2"]["estimated_mb"] > rows["extract_activations"]["estimated_mb"]
    # the pass rule states extract_activations' resources (made in a loop in activations.smk)
    assert rows["extract_pass_L1_2"]["profile_mem_mb"] == rule_mem_mb()["extract_activations"]


def test_a_group_runs_when_one_of_its_layers_is_wanted_and_writes_them_all(config):
    config["activations"]["layer_passes"] = [[1, 2], [3]]  # sweeps use 1 and 3; 2 rides along
    plan = build_plan(config)
    assert plan.jobs["extract_pass_L1_2"] == plan.jobs["extract_pass_L3"] == 3
    assert "extract_activations" not in plan.jobs
    assert plan.disk["activations/ (all layers)"] == 3 * plan.disk_extra["activations per layer"]
    config["activations"]["layer_passes"] = [[2]]  # no SAE on layer 2: no pass job
    plan = build_plan(config)
    assert plan.jobs["extract_activations"] == 2 * 3 and not any(
        rule.startswith("extract_pass_") for rule in plan.jobs
    )


def test_the_table_prints_all_three_schemes(config, tmp_path, capsys):
    config["activations"]["layer_passes"] = [[1, 3]]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["plan", str(path)]) == 0
    text = capsys.readouterr().out
    rows = {
        line.split("  ")[0]: line.split()[-3:]
        for line in text.splitlines()
        if line.startswith(("per-layer early exit", "one multi-layer pass", "configured"))
    }
    assert [rows[k][0] for k in sorted(rows)] == ["3", "3", "4"]  # configured, multi, per-layer
    assert "extract_pass_L1_3" in text


# ---- probes, steering and the report stage ----------------------------------------------

# two classes in train (after the validation carve) and in test, as probe_data requires
LOC = {
    "P1": ("Nucleus-U", 8),
    "P2": ("Cytoplasm-S", 14),
    "P4": ("Nucleus-U", 10),
    "P5": ("Cytoplasm-S", 12),
    "P3": ("Nucleus-U test", 20),
    "P6": ("Cytoplasm-S test", 16),
}
LOC_DROPPED = ("Cytoplasm-Nucleus-U", 30)  # DeepLoc's reader drops this location


@pytest.fixture
def probed(config):
    """The fixed config plus a local DeepLoc file: one probe task at layer 1 (SAE k2-w16)."""
    text = "".join(f">{acc} {label}\n{'A' * n}\n" for acc, (label, n) in LOC.items())
    Path("loc.fasta").write_text(text + f">P9 {LOC_DROPPED[0]}\n{'A' * LOC_DROPPED[1]}\n")
    config["sources"]["localization"] = {"url": "loc.fasta"}
    return config


def test_probe_jobs_flops_and_disk_by_hand(probed):
    plan = build_plan(probed)
    assert plan.jobs["probe_data"] == 1
    assert plan.jobs["probe_fit"] == 2  # ESM and SAE features at layer 1
    assert plan.jobs["probe_interpret"] == 1 and plan.jobs["probes_table"] == 1
    assert plan.jobs["probe_control"] == 2  # majority and composition
    assert plan.jobs["figure_probes"] == plan.jobs["figure_probe_coefficients"] == 1
    lengths = [n for _, n in LOC.values()]  # P9 dropped
    tokens = sum(n + 2 for n in lengths)
    mean_t = sum((n + 2) ** 2 for n in lengths) / tokens
    forward = tokens * 1 * (24 * D**2 + 4 * mean_t * D)  # to layer 1
    stage = {s.rule: s for s in plan.stages}["probe_fit"]
    assert stage.flops == pytest.approx(2 * forward + tokens * 2 * D * 16)  # + SAE encode
    assert stage.jobs == 2
    # data: 1 byte per residue + 40 per record; 10 localization classes: two coefficient
    # tables (1.5 kB + 6 B per feature and class, ESM d and SAE width), the interpretation
    # (4 kB + 8 B per latent and class; 5 kB + 100 B per top latent, 10 per class and sign),
    # two JSON score files
    data = sum(lengths) + 40 * len(lengths)
    per_probe = 3000 + 6 * 10 * (D + 16) + 4000 + 8 * 10 * 16 + 5000 + 100 * 2 * 10 * 10 + 1400
    per_probe += 12 * len(lengths) * (2 + 2)  # predictions: ESM, SAE and the two controls
    assert plan.disk["probes/ (data, coefficients, scores)"] == pytest.approx(data + per_probe)
    assert any("probe fitting" in n and "not counted" in n for n in plan.assumptions["notes"])
    # memory: python, the model twice, forward buffers, then the probe's pooled features
    # (3 records x max(d, width) float32, three copies) / the steered SAE's weights
    params = LAYERS * 12 * D**2 + 2 * 33 * D
    esm_job = 700 + params * 8 / 1e6 + probed["esm"]["max_tokens_per_batch"] * D * 4 * 8 / 1e6
    rows = {r["rule"]: r for r in plan.memory}
    assert rows["probe_fit"]["estimated_mb"] == round(esm_job + 3 * 3 * D * 4 / 1e6)
    assert rows["steer_latent"]["estimated_mb"] == round(esm_job + 4 * 2 * D * 16 / 1e6)
    assert rows["probe_fit"]["profile_mem_mb"] == rule_mem_mb()["probe_fit"]
    assert not any("not estimated" in n for n in plan.assumptions["notes"])


def test_steering_bound_flops_cpu_and_disk_by_hand(config):
    from protsae.costs.downstream import (
        BLASTP_CELLS_PER_CPU_S,
        CLUSTALO_S_PER_UNIT,
        MAKEBLASTDB_RESIDUES_PER_S,
    )

    config["steering"].update(max_latents=10, sequences=3, multipliers=[1, 2])
    plan = build_plan(config)
    # three SAEs of width 16, at most 10 family-specific latents each (the checkpoint decides)
    assert plan.jobs["steer_latent"] == plan.jobs["steering_homologs"] == 30
    assert plan.jobs["steering_summary"] == 3 and plan.jobs["steering_blastdb"] == 1
    assert plan.to_dict()["jobs_upper_bound"] == [
        "steer_latent",
        "steering_blastdb",
        "steering_homologs",
    ]
    # steered sequences: the evaluation set's mean length (one 40-residue entry), + BOS/EOS
    tokens = 3 * (40 + 2)
    forward = LAYERS * (24 * D**2 + 4 * 42 * D)  # the whole model, for the logits
    want = sum(
        10 * tokens * (3 * forward + 2 * (2 * D * 16 + 2 * k * D))  # plain + 2 clamped
        for k in (2, 2, 4)
    )
    stage = {s.rule: s for s in plan.stages}["steer_latent"]
    assert stage.jobs == 30 and stage.flops == pytest.approx(want)
    # CPU: one blastp (40 x 40 database residues) and one alignment of the single hit per
    # steered sequence, and one makeblastdb
    seconds = 30 * 3 * (40 * 40 / BLASTP_CELLS_PER_CPU_S + CLUSTALO_S_PER_UNIT * 1 * 40)
    seconds += 40 / MAKEBLASTDB_RESIDUES_PER_S
    assert stage.cpu_hours == pytest.approx(seconds / 3600)
    # disk in the total: the BLAST database and a summary per SAE (bins x latents rows)
    bins = len(config["steering"]["conservation_bins"])
    assert plan.disk["steering/ (BLAST db, summaries)"] == pytest.approx(
        1.3 * 40 + 60 * 1 + 3 * (2000 + 100 * bins * 10)
    )
    # beside it, the per-latent tables at their bound: 120 residues per latent, 40 B of
    # conservation, 1.2 B per aligned hit residue, 30 B per multiplier
    assert plan.disk_extra["steering per-latent tables (at most)"] == pytest.approx(
        30 * 120 * (40 + 1.2 * 1 + 30 * 2)
    )


def test_report_jobs_and_disk_by_hand(config):
    from protsae.costs.downstream import FIGURE_BYTES

    plan = build_plan(config)
    # both sweeps vary an axis (layer; k): two sweep figures; SAE quality; one max-activation,
    # one best-concepts and one steering figure per SAE; no probe task configured: no probe figures
    figures = {
        "figure_sweep": 2,
        "figure_sae_quality": 1,
        "figure_max_activation": 3,
        "figure_best_concepts": 3,
        "figure_steering": 3,
    }
    assert {r: n for r, n in plan.jobs.items() if r.startswith("figure_")} == figures
    # the browser: one job per SAE and the index; no structures job (structures.source none)
    assert (
        plan.jobs["browser_sae"],
        plan.jobs["browser_index"],
        plan.jobs.get("structures", 0),
    ) == (
        3,
        1,
        0,
    )
    assert plan.disk["figures/"] == 12 * FIGURE_BYTES
    # browser: 25 kB static; per latent 1.5 kB + a 150 B index row; per top sequence shown
    # (the one evaluation sequence of 40 residues, for each latent active in it) 200 B, its
    # aligned residues (1.2 B each) and 12 B per active position; per latent 4 quantile bins
    # x 2 examples of 150 B and the sequence
    want = 25_000.0
    for k in (2, 2, 4):
        active_latents = 16 * (1 - (1 - k / 16) ** math.sqrt(40))  # < 16 x top_sequences
        positions = 40 * k / active_latents
        want += 16 * 1650 + active_latents * (200 + 1.2 * 40 + 12 * positions)
        want += 16 * 8 * (150 + 40)
    assert plan.disk["browser/"] == pytest.approx(want)
    assert not any(key.startswith("structures/") for key in plan.disk)
    stage = {s.rule: s for s in plan.stages}["browser (one job per SAE, Clustal Omega; index)"]
    assert stage.jobs == 4 and stage.flops == 0 and stage.gpu_hours == 0
    # the Clustal Omega bound: one alignment of top_sequences sequences per latent, per SAE
    top = config["browser"]["top_sequences"]
    assert stage.cpu_hours == pytest.approx(3 * 16 * 8e-5 * top * 40 / 3600)
    assert {s.rule: s for s in plan.stages}["figures"].jobs == 12


def test_structures_disk_at_paper_scale_is_bounded_per_latent(config):
    from protsae.costs.downstream import STRUCTURE_BYTES_PER_RESIDUE

    config["structures"] = {**config["structures"], "source": "alphafold", "top_sequences": 1}
    plan = build_plan(config)
    assert plan.jobs["structures"] == 3
    # at most one model per latent, each accession stored once: the one evaluation sequence
    structures = plan.disk["structures/ (top sequences' models, each once, at most)"]
    assert structures == pytest.approx(1 * STRUCTURE_BYTES_PER_RESIDUE * 40)


def test_probe_features_memory_by_hand():
    from protsae.config import SaeSpec
    from protsae.costs.downstream import TaskSize, probe_features_mb
    from protsae.costs.types import ModelShape

    shape, specs = ModelShape("m", 6, 320), [SaeSpec(2, 8, 4096), SaeSpec(4, 16, 1024)]
    loc = TaskSize(1000, 300_000.0, 0.0, True)
    ss = TaskSize(2000, 500_000.0, 0.0, True)
    # pooled protein rows: 1000 x widest (4096) float32, three copies
    assert probe_features_mb(shape, specs, {"localization": loc}) == 3 * 1000 * 4096 * 4 / 1e6
    # residue rows: 500k x largest k (16) x (value + column, 8 B), twice
    both = probe_features_mb(shape, specs, {"localization": loc, "secondary_structure": ss})
    assert both == max(3 * 1000 * 4096 * 4, 2 * 500_000 * 16 * 8) / 1e6
