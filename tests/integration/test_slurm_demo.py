"""The demo, run with `snakemake --profile slurm` on a real single-node SLURM cluster.

Every job that is not a localrule must go through sbatch, the GPU rules must ask SLURM for
a GPU (the node has one placeholder GPU), and the results must equal a local run's. On the
way, the SAE training job is killed with `scancel` while it runs, as an operator or a
preemption would: the profile's `retries` must resubmit it and the results must still equal
the local run's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from slurm_cluster import SlurmCluster
from workflow_runs import (
    REPO,
    SLURM_SUBMIT,
    compare_results,
    copy_workflow,
    job_headers,
    random_esm,
    shrink_demo,
    snakemake,
    write_config,
)

from protsae.config import pass_rule_name
from protsae.costs.memory import rule_mem_mb

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# the demo extracts its layers 2 and 3 in one pass per shard (activations.layer_passes)
GPU_RULES = {
    "extract_pass_L2_3",
    "train_sae",
    "evaluate_sae",
    "latent_stats",
    "latent_concepts",
    "probe_fit",
}
THREADS = 1  # both runs: equal thread counts keep the numbers comparable, two jobs at a time
CONFIG = ("--configfile", "config/integration.yaml")
# A guard against a hung run, not a duration: on an idle 2-core machine the run takes a few
# minutes; on a loaded one (load average ~16 seen) it took over 15.
HANG_S = 1800
CANCELLED_RULE = "train_sae"  # checkpoints: its retry resumes (profiles/slurm: retries)


class CancelWhenRunning(threading.Thread):
    """Watches the queue and `scancel`s the first job of ``rule`` once SLURM runs it."""

    def __init__(self, cluster: SlurmCluster, rule: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.rule = cluster, rule
        self.cancelled: str | None = None  # the SLURM job id
        self.stop = threading.Event()

    def run(self) -> None:
        squeue, scancel = shutil.which("squeue"), shutil.which("scancel")
        while not self.stop.is_set() and self.cancelled is None:
            listed = subprocess.run(
                [squeue, "--noheader", "--states=RUNNING", "--format=%i|%k"],
                env=self.cluster.env,
                capture_output=True,
                text=True,
            ).stdout
            for line in listed.splitlines():
                job, _, comment = line.partition("|")
                if comment.startswith(f"rule_{self.rule}_") or comment == f"rule_{self.rule}":
                    time.sleep(2.0)  # let it start working: torch imported, steps taken
                    subprocess.run([scancel, job], env=self.cluster.env, check=True)
                    self.cancelled = job
                    break
            self.stop.wait(0.2)


def one_sae_demo(config: dict) -> dict:
    """The demo's every rule with one SAE: the node has one GPU, so GPU jobs run one by one."""
    first = config["sae"]["sweeps"][0]
    config["sae"]["sweeps"] = [
        {"layers": first["layers"][:1], "ks": first["ks"][:1], "widths": first["widths"][:1]}
    ]
    # probes only where that one SAE is
    config["probes"].update(
        layers=first["layers"][:1], sae={"k": first["ks"][:1][0], "width": first["widths"][0]}
    )
    return shrink_demo(random_esm(config))


def site_profile(committed: dict, cluster: SlurmCluster) -> dict:
    """The committed profile with the edits a site makes, sized to fit the test node."""
    profile = json.loads(json.dumps(committed))  # deep copy
    budget_mb = cluster.memory_mb // 4
    defaults = profile["default-resources"]
    defaults["slurm_partition"] = cluster.partition
    defaults["mem_mb"] = min(defaults["mem_mb"], budget_mb)
    overrides = profile["set-resources"]
    # Rules state their own mem_mb (paper-scale estimates): a site caps them to its nodes.
    stated = rule_mem_mb(REPO / "workflow" / "rules")
    # A layer_passes group's rule is made in a loop (activations.smk), named after its layers,
    # and states extract_activations' mem_mb.
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    for group in demo["activations"].get("layer_passes", []):
        stated[pass_rule_name(group)] = stated["extract_activations"]
    for rule, mem_mb in stated.items():
        if mem_mb > budget_mb:
            overrides.setdefault(rule, {})["mem_mb"] = budget_mb
    for resources in overrides.values():
        if "cpus_per_gpu" in resources:
            resources["cpus_per_gpu"] = min(resources["cpus_per_gpu"], THREADS)
    profile.update(
        {
            "slurm-no-account": True,  # no accounting daemon, so no accounts
            "slurm-status-command": "squeue",  # sacct needs accounting
            "slurm-init-seconds-before-status-checks": 1,
            "seconds-between-status-checks": 1,
            "max-threads": THREADS,
            "slurm-keep-successful-logs": True,
        }
    )
    return profile


def client_wrappers(bin_dir: Path, cluster: SlurmCluster) -> None:
    """`sbatch` that records its arguments, `srun` that finds the private slurm.conf.

    The plugin's in-job step drops every SLURM_* variable before calling srun, SLURM_CONF
    included, so srun would look for /etc/slurm/slurm.conf instead of this cluster's.
    """
    bin_dir.mkdir(parents=True)
    real_sbatch, real_srun = shutil.which("sbatch"), shutil.which("srun")
    (bin_dir / "sbatch").write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.environ['SBATCH_RECORD'], 'a') as fh:\n"
        "    fh.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"os.execv({real_sbatch!r}, ['sbatch', *sys.argv[1:]])\n"
    )
    (bin_dir / "srun").write_text(
        f'#!/bin/sh\nSLURM_CONF="{cluster.conf}" exec "{real_srun}" "$@"\n'
    )
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755 | stat.S_IXUSR)


def slurm_logs(workdir: Path) -> str:
    logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-1500:]}" for p in logs)


def rule_of(call: list[str]) -> str:
    """The rule an sbatch call runs, from the plugin's `--comment rule_<name>[_wildcards_...]`."""
    comment = option(call, "--comment") or ""
    return comment.removeprefix("rule_").split("_wildcards_")[0]


def option(args: list[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value` in an sbatch argument list."""
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def run_through_slurm(
    workdir: Path, cluster: SlurmCluster, scratch: Path, *args: str
) -> tuple[str, list]:
    """`snakemake --profile slurm --cores all` in `workdir`, with the site's profile edits;
    returns Snakemake's log and the argument list of every sbatch call."""
    profile_file = workdir / "profiles" / "slurm" / "config.yaml"
    committed = yaml.safe_load(profile_file.read_text())
    profile_file.write_text(yaml.safe_dump(site_profile(committed, cluster)))
    client_wrappers(scratch / "bin", cluster)
    record = scratch / "sbatch.jsonl"
    env = {
        **cluster.env,
        "PATH": os.pathsep.join([str(scratch / "bin"), os.environ.get("PATH", "")]),
        "SBATCH_RECORD": str(record),
    }
    # The README's literal command, in the copy (its `slurm` symlink resolves the profile).
    try:
        done = snakemake(
            workdir, "--profile", "slurm", "--cores", "all", *args, env=env, timeout=HANG_S
        )
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{slurm_logs(workdir)}\n{cluster.logs()}") from None
    calls = (
        [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    )
    return done.stdout + done.stderr, calls


def assert_jobs_went_through_sbatch(
    log: str, calls: list, cluster: SlurmCluster, retried: str
) -> None:
    """Every non-local job was submitted with sbatch, once, except the ``retried`` rule's
    cancelled job, submitted twice; GPU rules asked for a GPU."""
    assert log.count("Trying to restart job") == 1, "one job, the cancelled one, is retried"
    headers = job_headers(log)
    remote = Counter(rule for kind, rule in headers if not kind.startswith("local"))
    local = Counter(rule for kind, rule in headers if kind.startswith("local"))
    assert remote, f"no job was sent to SLURM:\n{log[-3000:]}"
    assert set(remote) >= GPU_RULES, f"GPU rules not run on SLURM: {GPU_RULES - set(remote)}"
    assert not set(local) & set(remote)
    # Every non-local job got a SLURM job id, and sbatch saw exactly those jobs.
    submitted = Counter(rule_of(call) for call in calls)
    assert submitted[retried] == 2, "the cancelled job was not submitted again"
    assert len(SLURM_SUBMIT.findall(log)) == sum(submitted.values())
    assert submitted - Counter({retried: 1}) == remote - Counter({retried: remote[retried] - 1})
    for call in calls:
        rule = rule_of(call)
        assert option(call, "-p") == cluster.partition
        if rule in GPU_RULES:
            assert option(call, "--gpus") == "1", call
            assert option(call, "--cpus-per-gpu") == str(THREADS), call
            assert option(call, "--cpus-per-task") is None, call
        else:
            assert option(call, "--gpus") is None, call
            assert option(call, "--cpus-per-task") == str(THREADS), call


def test_demo_runs_through_slurm_like_locally(slurm_cluster: SlurmCluster, tmp_path: Path):
    # The local run for comparison goes alongside: the SLURM run mostly waits on status checks.
    local_run = copy_workflow(tmp_path / "local-run")
    write_config(local_run, "integration", one_sae_demo)
    local_log = tmp_path / "local-run.log"
    with open(local_log, "w") as out:
        local = subprocess.Popen(
            [sys.executable, "-m", "snakemake", *CONFIG, "--cores", "1", "--max-threads", "1"],
            cwd=local_run,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so a kill takes its jobs too
        )
    try:
        on_slurm = copy_workflow(tmp_path / "slurm-run")
        write_config(on_slurm, "integration", one_sae_demo)
        canceller = CancelWhenRunning(slurm_cluster, CANCELLED_RULE)
        canceller.start()
        try:
            log, calls = run_through_slurm(on_slurm, slurm_cluster, tmp_path, *CONFIG)
        finally:
            canceller.stop.set()
            canceller.join(timeout=10)
        assert canceller.cancelled is not None, f"no {CANCELLED_RULE} job was seen running"
        assert_jobs_went_through_sbatch(log, calls, slurm_cluster, retried=CANCELLED_RULE)
        assert local.wait(timeout=HANG_S) == 0, local_log.read_text()[-4000:]
    finally:
        if local.poll() is None:
            os.killpg(local.pid, signal.SIGKILL)
            local.wait(timeout=30)

    results = yaml.safe_load((local_run / "config" / "integration.yaml").read_text())["results"]
    # Exact: with equal thread counts the demo is bit-reproducible (checked on 16 data files).
    differences = compare_results(on_slurm / results, local_run / results, rtol=0, atol=0)
    assert not differences, "\n".join(differences[:40])
