# The offline feature browser (browser/ of the results folder, opened from disk): one job per
# SAE writes browser/L{layer}-k{k}-w{width}/ (its latent pages' data, alignments included,
# and its structures), one small job writes the pages and the index over them. Adding an SAE
# runs its job and the index only. Structures (structures.source) are fetched per SAE, for
# the top sequences its pages show.

BROWSER_SAE = res("browser", "L{layer}-k{k}-w{width}")
STRUCTURES = config["structures"]
VIEWER_JS = (
    str(
        Path(workflow.basedir) / "tools" / "viewer" / "node_modules" / "3dmol" / "build"
    )
    + "/3Dmol-min.js"
)
if STRUCTURES["source"] != "none" and SAES and not Path(VIEWER_JS).is_file():
    raise WorkflowError(
        f"structures.source is {STRUCTURES['source']}, but the 3D viewer (3Dmol.js) is not "
        "installed: run `make setup` (it needs npm; Debian: apt-get install npm)"
    )
if STRUCTURES["source"] == "dir" and not STRUCTURES["dir"]:
    raise WorkflowError(
        "invalid config: structures.source is dir but structures.dir is not set"
    )


def browser_sae_name(spec):
    return f"L{spec.layer}-k{spec.k}-w{spec.width}"


def browser_sae(wildcards):
    """What the wildcards' SAE browser job reads of its SAE (params: paths only)."""
    spec = sae_spec(wildcards)
    return {
        "layer": spec.layer,
        "k": spec.k,
        "width": spec.width,
        "latents": latents_dir(spec),
        "steering": f"{steering_dir(spec)}/summary.parquet",
    }


def browser_probe_tables(wildcards):
    """The probes' top_latents tables that name latents of the wildcards' SAE."""
    spec = sae_spec(wildcards)
    if spec not in PROBE_SAES:
        return []
    return [
        f"{probe_dir(spec.layer, task)}/top_latents.parquet" for task in PROBE_TASKS
    ]


def browser_steered(wildcards):
    """The SAE's per-latent steering tables (known after its latent_families checkpoint)."""
    spec = sae_spec(wildcards)
    return steering_latent_tables(
        {"model": MODEL, "layer": spec.layer, "k": spec.k, "width": spec.width}
    )


def browser_structures(wildcards):
    """The SAE's structures folder, when structures.source is not none."""
    if STRUCTURES["source"] == "none":
        return []
    return [res("structures", browser_sae_name(sae_spec(wildcards)))]


def browser_sae_dirs(wildcards=None):
    return [res("browser", browser_sae_name(spec)) for spec in SAES]


def browser_viewer(wildcards=None):
    return [VIEWER_JS] if STRUCTURES["source"] != "none" else []


def browser_index_files():
    files = ["index.html", "latent.html", "assets/browser.js", "assets/style.css"]
    files.append("assets/index.js")
    if STRUCTURES["source"] != "none":
        files.append("assets/3Dmol-min.js")
    return [res("browser", *name.split("/")) for name in files]


def browser_targets():
    """The browser's pages and every SAE's folder, when there are SAEs to browse."""
    return browser_index_files() + browser_sae_dirs() if SAES else []


rule structures:
    input:
        top_examples=latents_file("top_examples.parquet"),
        swissprot=res("sequences", "swissprot.parquet"),
    output:
        directory(res("structures", "L{layer}-k{k}-w{width}")),
    log:
        res("logs", "structures", "L{layer}-k{k}-w{width}.log"),
    conda:
        "../../envs/browser.yaml"
    params:
        source=STRUCTURES["source"],
        url=STRUCTURES["url"],
        folder=STRUCTURES["dir"],
        cache=f"{DOWNLOADS_DIR}/structures",
        top_sequences=min(STRUCTURES["top_sequences"], config["browser"]["top_sequences"]),
    script:
        "../scripts/structures.py"


rule browser_sae:
    input:
        classes=latents_file("classes.parquet"),
        families=latents_file("families.parquet"),
        seq_stats=latents_file("seq_stats.parquet"),
        top_examples=latents_file("top_examples.parquet"),
        swissprot=res("sequences", "swissprot.parquet"),
        features=res("sequences", "swissprot_features.parquet"),
        entries=source_file("interpro_entries"),
        entries_record=source_record("interpro_entries"),
        probes=browser_probe_tables,
        steering=steering_summary_file,
        steered=browser_steered,
        structures=browser_structures,
    output:
        directory(BROWSER_SAE),
    log:
        res("logs", "browser", "L{layer}-k{k}-w{width}.log"),
    benchmark:
        res("benchmarks", "browser", "L{layer}-k{k}-w{width}.tsv")
    conda:
        "../../envs/browser.yaml"
    threads: 4
    params:
        sae=browser_sae,
        top_sequences=config["browser"]["top_sequences"],
        quantiles=config["browser"]["quantiles"],
    script:
        "../scripts/browser_sae.py"


rule browser_index:
    input:
        saes=browser_sae_dirs,
        viewer=browser_viewer,
    output:
        browser_index_files(),
    log:
        res("logs", "browser", "index.log"),
    conda:
        "../../envs/browser.yaml"
    params:
        title=f"{MODEL}, {len(SAES)} SAEs",
    script:
        "../scripts/browser_index.py"
