# Training sequences (UniRef50 sample) and the evaluation set (clustered Swiss-Prot).


rule sample_uniref50:
    input:
        fasta=source_file("uniref50"),
        fasta_record=source_record("uniref50"),
    output:
        res("sequences", "uniref50_sample.parquet"),
    log:
        res("logs", "sequences", "sample_uniref50.log"),
    benchmark:
        res("benchmarks", "sequences", "sample_uniref50.tsv")
    conda:
        "../../envs/protsae.yaml"
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        sample_size=config["sequences"]["sample_size"],
        max_length=config["sequences"]["max_length"],
        seed=config["sequences"]["seed"],
    script:
        "../scripts/sample_uniref50.py"


rule parse_swissprot:
    input:
        dat=source_file("swissprot"),
        entries=source_file("interpro_entries"),
        dat_record=source_record("swissprot"),
        entries_record=source_record("interpro_entries"),
    output:
        swissprot=res("sequences", "swissprot.parquet"),
        features=res("sequences", "swissprot_features.parquet"),
    log:
        res("logs", "sequences", "parse_swissprot.log"),
    benchmark:
        res("benchmarks", "sequences", "parse_swissprot.tsv")
    conda:
        "../../envs/protsae.yaml"
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        invalid=config["sequences"]["swissprot_invalid"],
    script:
        "../scripts/parse_swissprot.py"


rule cluster_swissprot:
    input:
        swissprot=res("sequences", "swissprot.parquet"),
    output:
        res("sequences", "swissprot_clusters.parquet"),
    log:
        res("logs", "sequences", "cluster_swissprot.log"),
    benchmark:
        res("benchmarks", "sequences", "cluster_swissprot.tsv")
    conda:
        "../../envs/mmseqs2.yaml"
    threads: 8
    resources:
        mem_mb=16000,
        runtime=240,
    params:
        min_seq_id=config["clustering"]["min_seq_id"],
        coverage=config["clustering"]["coverage"],
        sensitivity=config["clustering"]["sensitivity"],
        max_length=config["clustering"]["max_length"],
        test_fraction=config["clustering"]["test_fraction"],
        seed=config["clustering"]["seed"],
    script:
        "../scripts/cluster_swissprot.py"
