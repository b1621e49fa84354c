# Every external input lands in resources/downloads/ through one local rule.


localrules:
    download,
    esm_random_init,


wildcard_constraints:
    file=_alternatives(DOWNLOADS),


rule download:
    input:
        download_input,
    output:
        protected(f"{DOWNLOADS_DIR}/{{file}}"),
    log:
        "resources/logs/download/{file}.log",
    conda:
        "../../envs/protsae.yaml"
    params:
        url=download_field("url"),
        md5=download_field("md5"),
        sha256=download_field("sha256"),
        kind=download_field("kind"),
        label=download_field("label"),
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
        "../scripts/random_init_esm.py"
