# Input and params functions of the browser and structures stage (its rules:
# workflow/rules/browser.smk).

BROWSER_SAE = res("browser", "L{layer}-k{k}-w{width}")
STRUCTURES = config["structures"]
# 3Dmol.js as `make setup` installs it (npm ci in tools/viewer)
_VIEWER_PARTS = ("tools", "viewer", "node_modules", "3dmol", "build", "3Dmol-min.js")
VIEWER_JS = str(Path(workflow.basedir, *_VIEWER_PARTS))
# Without 3Dmol.js the pages still build (structures are fetched and listed; the page says the
# viewer is missing), so a dry run or a checkout without npm is not stopped here.
VIEWER_INSTALLED = Path(VIEWER_JS).is_file()
if STRUCTURES["source"] != "none" and SAES and not VIEWER_INSTALLED:
    logger.warning(
        f"structures.source is {STRUCTURES['source']}, but the 3D viewer (3Dmol.js) is not "
        "installed: the browser's pages will show no 3D structure. Run `make setup` "
        "(it needs npm; Debian: apt-get install npm) and rerun browser_index."
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


def _with_viewer():
    return STRUCTURES["source"] != "none" and VIEWER_INSTALLED


def browser_viewer(wildcards=None):
    return [VIEWER_JS] if _with_viewer() else []


def browser_index_files():
    files = ["index.html", "latent.html", "assets/browser.js", "assets/style.css"]
    files.append("assets/index.js")
    if _with_viewer():
        files.append("assets/3Dmol-min.js")
    return [res("browser", *name.split("/")) for name in files]


def browser_targets():
    """The browser's pages and every SAE's folder, when there are SAEs to browse."""
    return browser_index_files() + browser_sae_dirs() if SAES else []


def structures_url(wildcards):
    """structures.url as written (a function: Snakemake would read its {accession} as a
    wildcard in a plain string)."""
    return STRUCTURES["url"]
