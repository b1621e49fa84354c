# ESM-2 residue activations of one layer, in deterministic shards of the UniRef50 sample:
# one early-exit job per (layer, shard), or for the layers of an activations.layer_passes
# group one job per shard that runs the forward once and writes each group layer's shard.
# Both run scripts/extract_activations.py: a lone layer is a group of one.
# `eval_set` is not read: no ESM job starts before the evaluation set has passed its checks
# (entries ESM-2 can read, a test cluster); ancient, so a new evaluation set reruns nothing here.


include: "inputs/activations.smk"


rule extract_activations:
    input:
        model=esm_checkpoint,
        regression=esm_regression,
        sample=res("sequences", "uniref50_sample.parquet"),
        eval_set=ancient(res("sequences", "swissprot_clusters.parquet")),
    output:
        res("activations", "{model}", "L{layer}", "shard-{shard}.parquet"),
    log:
        res("logs", "activations", "{model}", "L{layer}", "shard-{shard}.log"),
    benchmark:
        res("benchmarks", "activations", "{model}", "L{layer}", "shard-{shard}.tsv")
    wildcard_constraints:
        layer=LONE_LAYER,  # a layer of no layer_passes group: the group's rule makes it
    conda:
        "../../envs/protsae.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=720,
    params:
        model_name=MODEL,
        layers=lone_layer,
        shard=wildcard_int("shard"),
        n_shards=config["activations"]["shards"],
        holdout_fraction=config["activations"]["holdout_fraction"],
        max_tokens_per_batch=config["esm"]["max_tokens_per_batch"],
        tokens_per_sequence=config["activations"]["tokens_per_sequence"],
        dtype=config["activations"]["dtype"],
        seed=config["activations"]["seed"],
    script:
        "../scripts/extract_activations.py"


for _group in LAYER_PASSES:

    rule:
        name:
            pass_rule_name(_group)
        input:
            model=esm_checkpoint,
            regression=esm_regression,
            sample=res("sequences", "uniref50_sample.parquet"),
            eval_set=ancient(res("sequences", "swissprot_clusters.parquet")),
        output:
            pass_shards(_group),
        log:
            res(
                "logs",
                "activations",
                "{model}",
                pass_rule_name(_group),
                "shard-{shard}.log",
            ),
        benchmark:
            res(
                "benchmarks",
                "activations",
                "{model}",
                pass_rule_name(_group),
                "shard-{shard}.tsv",
            )
        conda:
            "../../envs/protsae.yaml"
        threads: 4
        resources:
            gpu=1,
            mem_mb=32000,
            runtime=720,
        params:
            model_name=MODEL,
            layers=list(_group),
            shard=wildcard_int("shard"),
            n_shards=config["activations"]["shards"],
            holdout_fraction=config["activations"]["holdout_fraction"],
            max_tokens_per_batch=config["esm"]["max_tokens_per_batch"],
            tokens_per_sequence=config["activations"]["tokens_per_sequence"],
            dtype=config["activations"]["dtype"],
            seed=config["activations"]["seed"],
        script:
            "../scripts/extract_activations.py"
