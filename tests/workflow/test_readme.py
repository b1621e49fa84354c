"""The README stays true: the numbers and lists it states that the code can compute are
recomputed here, and every command it shows runs (dry runs for the workflow commands that would
take hours; the demo-dependent ones against a finished demo, in the slow tier)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from protsae.config import downloads, load_config, schema_path, source_file_name
from protsae.costs.plan import build_plan
from protsae.costs.report import human_bytes
from protsae.costs.types import Assumptions

from .conftest import ROOT
from .test_dag import job_counts

sys.path.insert(0, str(ROOT / "tests" / "integration"))
from workflow_runs import copy_workflow  # noqa: E402

README = (ROOT / "README.md").read_text()
NUMBERS = {"four": 4, "five": 5, "six": 6, "seven": 7}
BIN = str(Path(sys.executable).parent)


def readme_commands() -> list[str]:
    """Every command the README shows: lines of its ```bash blocks (comments dropped) and the
    backticked commands of the "Running it" table."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                commands.append(line)
    table = README.split("## Running it", 1)[1].lstrip("\n").split("\n\n", 1)[0]
    commands += [c for c in re.findall(r"\| `([^`]+)` \|", table)]
    return commands


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


# Each README command and how this file runs it. A command added to the README without a line
# here fails test_every_command_is_run.
DRY_RUNS = {
    "snakemake --cores all": "",
    "snakemake --cores all --configfile config/config.yaml": "",
    "snakemake --cores all --configfile config/laptop.yaml": "",
    "snakemake --profile slurm --cores all --configfile config/config.yaml": "",
}
FAST = {"protsae plan config/config.yaml --gpu h100"}
ON_FINISHED_DEMO = {
    "snakemake --report results/report.html --configfile ...",
    "printf '>my_protein\\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ\\n' "
    "> my_proteins.fasta",
    "protsae encode --sae results/demo/sae/esm2_t4_demo/L2/k8-w256 -o mine --html my_proteins.fasta",
}
# `make demo` is the demo run the finished-demo fixture makes (its two snakemake commands, the
# run and the report, are run here); `make test` and `make test-all` are this test suite itself.
NOT_RUN_HERE = {"make demo", "make test", "make test-all"}


def run(command: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("SNAKEMAKE_PROFILE", None)
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_every_command_is_run() -> None:
    known = set(DRY_RUNS) | FAST | ON_FINISHED_DEMO | NOT_RUN_HERE
    assert set(readme_commands()) == known
    assert len(python_examples()) == 2


# --------------------------------------------------------------------------- numbers and lists


def test_paper_config_jobs_hours_and_disk() -> None:
    """305 jobs in the dry run, at most 946 after steering fans out, 12.4 A100-hours, 906 GB."""
    stated = re.search(
        r"counts (\d+) jobs before\s+steering fans out \(at most (\d+) after\), ([\d.]+) "
        r"A100-hours and \*\*([\d.]+ [kMGT]B) of disk\*\* under `results/`\s+\(([\d.]+ [kMGT]B) of it",
        README,
    )
    assert stated, "the README's sentence on the paper config's plan changed"
    dry = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", "config/config.yaml", "-c1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    total = sum(job_counts(dry.stdout).values())
    plan = build_plan(load_config(ROOT / "config/config.yaml", schema_path()))
    assert int(stated[1]) == total
    assert int(stated[2]) == sum(plan.jobs.values())
    assert float(stated[3]) == round(sum(s.gpu_hours for s in plan.stages), 1)
    assert stated[4] == human_bytes(plan.disk_total)
    assert stated[5] == human_bytes(plan.disk["activations/ (all layers)"])
    benchmark_row = re.search(r"dry run of `config/config.yaml` \((\d+) jobs\)", README)
    assert benchmark_row and int(benchmark_row[1]) == total


def test_gpu_rules_listed_are_the_workflows(tmp_path) -> None:
    """The SLURM section's GPU rules are the rules that declare resources gpu=1 (a dry run of the
    demo with one lone layer, so both extraction rules appear), each with its profile entry."""
    config = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    config["activations"]["layer_passes"] = [[2]]
    config["results"] = str(tmp_path / "results")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    dry = run(f"snakemake -n --forceall --configfile {path} -c1", ROOT).stdout
    dry = dry.replace(str(tmp_path), "")
    gpu_rules = set()
    for block in re.split(r"\n(?=\[|(?:local)?rule \w+:)", dry):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if rule and re.search(r"resources:.*\bgpu=1\b", block):
            gpu_rules.add(re.sub(r"^extract_pass_L[\d_]+$", "extract_pass_L…", rule[1]))
    sentence = re.search(r"the (\w+) GPU\s+rules, (.*?), ask for `--gpus=1`", README, re.S)
    assert sentence, "the README's sentence on the GPU rules changed"
    listed = set(re.findall(r"`(\w+(?:…)?)`", sentence[2]))
    assert listed == gpu_rules
    assert NUMBERS[sentence[1]] == len(gpu_rules - {"extract_pass_L…"})
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    for rule in gpu_rules - {"extract_pass_L…"}:
        assert profile["set-resources"][rule]["cpus_per_gpu"] >= 1, rule


def test_record_file_names() -> None:
    """`resources/downloads/<source>-<hash>.json`: the first 8 hex digits of the URL's SHA-1."""
    assert "`resources/downloads/<source>-<hash>.json`" in README
    assert "first 8 hex digits of the SHA-1 of the source's URL" in " ".join(README.split())
    config = load_config(ROOT / "config/demo.yaml", schema_path())
    for name, source in config["sources"].items():
        digest = hashlib.sha1(source["url"].encode()).hexdigest()[:8]
        assert source_file_name(name, source["url"]) == f"{name}-{digest}"
        assert f"{name}-{digest}" in downloads(config)


def test_laptop_plan_figures() -> None:
    table = README.split("| laptop.yaml | on a 2-core CPU | on one A100 |", 1)[1].split("\n\n")[0]
    rows = {
        row.split("|")[1].strip(): [cell.strip() for cell in row.split("|")[2:4]]
        for row in table.strip().splitlines()[1:]
    }
    config = load_config(ROOT / "config/laptop.yaml", schema_path())
    cpu = build_plan(config, Assumptions(gpu="cpu"))
    gpu = build_plan(config, Assumptions(gpu="a100"))
    jobs = str(sum(cpu.jobs.values()))
    assert rows["jobs (steering's fan-out at most)"] == [jobs, jobs]
    hours = rows["ESM-2 and SAE compute (FLOP-based, 40% of peak)"]
    assert hours[0] == f"{sum(s.gpu_hours for s in cpu.stages):.0f} hours"
    assert hours[1] == f"{sum(s.gpu_hours for s in gpu.stages):.2f} hours"
    disk = human_bytes(cpu.disk_total)
    assert rows["disk under `results/laptop`"] == [disk, disk]
    memory = human_bytes(max(m["estimated_mb"] for m in cpu.memory) * 1e6)
    assert rows["largest job's memory (estimate)"] == [memory, memory]
    stages = {s.rule: s.gpu_hours for s in cpu.stages}
    assert f"`latent_stats` ({stages['latent_stats']:.1f} h" in README
    assert f"ESM-2 features ({stages['probe_fit']:.1f} h)" in README
    # The config is what the README says: the 8M model, two layers, four SAEs, four tasks.
    assert config["esm"]["model"] == "esm2_t6_8M_UR50D"
    assert sorted({layer for s in config["sae"]["sweeps"] for layer in s["layers"]}) == [3, 5]
    assert cpu.jobs["train_sae"] == 4
    assert cpu.jobs["probe_data"] == 4
    assert config["sequences"]["sample_size"] == 50_000


def test_bf16_tolerances_stated() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    import test_bf16_paths as bf16

    text = " ".join(README.split())
    assert f"within {bf16.EXTRACTION_REL_L2:.0%} relative error" in text
    assert f"held-out FVE within {bf16.TRAINING_FVE}" in text


# --------------------------------------------------------------------------- the commands


def test_plan_command() -> None:
    (command,) = FAST
    out = run(command, ROOT).stdout
    assert "plan for config/config.yaml: model esm2_t33_650M_UR50D" in out
    assert "compute on NVIDIA H100 SXM" in out


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(DRY_RUNS))
def test_workflow_commands_dry_run(command, tmp_path) -> None:
    """Each workflow command of the README, as written plus -n, in a copy of the repository
    (the laptop config after its one manual step: the CHO CSV at data/)."""
    workdir = copy_workflow(tmp_path / "repo")
    (workdir / "data").mkdir()
    shutil.copy(ROOT / "resources/demo/cho_expression.csv", workdir / "data/Tegel.proteins.dt.csv")
    out = run(f"{command} -n", workdir).stdout
    assert "This was a dry-run" in out
    assert job_counts(out)


@pytest.mark.slow
def test_commands_on_the_finished_demo(finished: Path, optional_module) -> None:
    """The report, encode and the Python example, against a finished demo."""
    config = "config/small.yaml"  # the finished demo's config (the demo with capped budgets)
    report = next(c for c in ON_FINISHED_DEMO if "--report" in c)
    run(report.replace("--configfile ...", f"--configfile {config}"), finished)
    assert (finished / "results/report.html").stat().st_size > 10_000
    for command in sorted(ON_FINISHED_DEMO - {report}, key=lambda c: not c.startswith("printf")):
        run(command, finished)
    assert (finished / "mine.parquet").is_file() and (finished / "mine/index.html").is_file()
    tsv = (finished / "mine.tsv").read_text().splitlines()
    assert tsv[0].startswith("id\t") and tsv[1].startswith("my_protein\t")

    encode_python, own_activations = python_examples()
    for example in (encode_python, own_activations):
        done = run(f"{sys.executable} -c {shell_quote(example)}", finished)
    fve = re.search(r"my_protein: (\d+) residues, .* FVE ([\d.-]+)", done.stdout)
    assert fve and int(fve[1]) == 66 and float(fve[2]) > 0.5, done.stdout
    sae_lens = optional_module("sae_lens")
    loaded = sae_lens.SAE.load_from_disk(str(finished / "my_sae_saelens"))
    assert loaded.cfg.d_sae == 256


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
