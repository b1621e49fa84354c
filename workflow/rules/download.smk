# Every external input lands in resources/downloads/ through one local rule.


include: "inputs/download.smk"


localrules:
    download,
    esm_random_init,


wildcard_constraints:
    file=_alternatives(DOWNLOADS),


# Outputs: a link to the bytes (the user's file, or store/{file}, write-protected by the
# job) and a small record of their checksums; see protsae.store. The checksums are not
# params: `content` changes only when the bytes must change, so adding a checksum the
# file has reruns nothing, and one it lacks fetches the file again.
rule download:
    output:
        link=f"{DOWNLOADS_DIR}/{{file}}",
        record=f"{DOWNLOADS_DIR}/{{file}}.json",
    log:
        "resources/logs/download/{file}.log",
    conda:
        "../../envs/protsae.yaml"
    params:
        url=download_field("url"),
        content=download_content,
    script:
        "../scripts/download.py"


rule esm_random_init:
    output:
        model=f"{DOWNLOADS_DIR}/random-t{{layers}}-d{{embed_dim}}-s{{seed}}.pt",
        regression=f"{DOWNLOADS_DIR}/random-t{{layers}}-d{{embed_dim}}-s{{seed}}-contact-regression.pt",
    log:
        "resources/logs/esm_random_init/random-t{layers}-d{embed_dim}-s{seed}.log",
    wildcard_constraints:
        layers=r"\d+",
        embed_dim=r"\d+",
        seed=r"\d+",
    conda:
        "../../envs/protsae.yaml"
    params:
        layers=wildcard_int("layers"),
        embed_dim=wildcard_int("embed_dim"),
        heads=(
            config["esm"]["random_init"]["heads"]
            if config["esm"]["random_init"]
            else 0
        ),
        seed=wildcard_int("seed"),
    script:
        "../scripts/esm_random_init.py"


if HF_MODEL is not None:

    # The Hugging Face weights converted once into fair-esm's layout: every ESM job loads this.
    rule esm_from_hf:
        input:
            unpack(hf_files),
        output:
            model=f"{DOWNLOADS_DIR}/{MODEL}.pt",
            regression=f"{DOWNLOADS_DIR}/{MODEL}-contact-regression.pt",
        log:
            f"resources/logs/esm_from_hf/{MODEL}.log",
        benchmark:
            f"resources/benchmarks/esm_from_hf/{MODEL}.tsv"
        conda:
            "../../envs/protsae.yaml"
        resources:
            # the weights twice in float32 (read, then converted): 2 x 2.6 GB for the 650M model
            mem_mb=16000,
            runtime=60,
        params:
            label=f"esm.model {config['esm']['model']}",
        script:
            "../scripts/esm_from_hf.py"
