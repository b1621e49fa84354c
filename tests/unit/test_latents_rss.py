"""The latent-statistics stage's peak RSS does not grow with the evaluation set.

Each run is a fresh process (peak RSS is per process) through the real ESM-2 + SAE path.
The stage's buffers (pending activations, pending seq_stats rows) are set small so that
both runs fill them; then ten times more sequences must cost far less extra memory than
holding their layer activations would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from protsae.esm import save_random_init
from protsae.sae import SAEConfig, TopKSAE, save_sae

pytestmark = pytest.mark.slow

D_MODEL, WIDTH, LAYER = 64, 256, 2
CHILD = textwrap.dedent(
    """
    import resource, sys, torch
    from protsae.esm import ForwardOptions
    from protsae.latents import StreamBounds
    from protsae.latents.stats import EvaluationSet, latent_stats_from_files
    from protsae.sae.at_layer import EsmSaeFiles
    torch.set_num_threads(1)
    folder, n = sys.argv[1], sys.argv[2]
    latent_stats_from_files(
        EsmSaeFiles(f"{folder}/esm.pt", f"{folder}/sae.safetensors", 2),
        EvaluationSet(f"{folder}/sp{n}.parquet", f"{folder}/cl{n}.parquet", chunk_size=256),
        top_examples=20,
        seq_stats_path=f"{folder}/stats{n}.parquet", top_examples_path=f"{folder}/top{n}.parquet",
        forward=ForwardOptions(4096, "cpu"),
        bounds=StreamBounds(batch_activations=20_000, row_group_rows=10_000),
    )
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    """
)


def evaluation_set(folder, n, rng):
    ids = [f"Q{i:06d}" for i in range(n)]
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    seqs = ["".join(rng.choice(letters, 300)) for _ in range(n)]
    pq.write_table(
        pa.table({"accession": ids, "sequence": seqs, "families": [[] for _ in ids]}),
        folder / f"sp{n}.parquet",
    )
    split = ["test" if i % 2 else "train" for i in range(n)]
    pq.write_table(
        pa.table({"accession": ids, "cluster": ids, "split": split}), folder / f"cl{n}.parquet"
    )


def peak_rss_mib(folder, n) -> float:
    # A fixed mmap threshold turns off glibc's dynamic one, which otherwise lets the heap
    # creep by ~60 MB over thousands of differently shaped ESM batches (fragmentation, not
    # data held: Python, numpy and Arrow allocations stay flat). With it, RSS measures what
    # the stage itself keeps.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(n)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(proc.stdout.strip().splitlines()[-1]) / 1024


def test_peak_rss_is_flat_in_the_number_of_sequences(tmp_path):
    rng = np.random.default_rng(0)
    save_random_init(tmp_path / "esm.pt", 4, D_MODEL, 4, seed=0)
    sae = TopKSAE(SAEConfig(d_model=D_MODEL, width=WIDTH, k=8, layer=LAYER), seed=0)
    save_sae(sae, tmp_path / "sae.safetensors", tmp_path / "sae.json")
    for n in (200, 2000):
        evaluation_set(tmp_path, n, rng)
    small = peak_rss_mib(tmp_path, 200)
    large = peak_rss_mib(tmp_path, 2000)
    layer_activations_mib = 2000 * 300 * D_MODEL * 4 / 2**20  # what holding them would take
    assert pq.read_metadata(tmp_path / "stats2000.parquet").num_rows > 0
    assert large - small < layer_activations_mib / 3, (small, large, layer_activations_mib)
