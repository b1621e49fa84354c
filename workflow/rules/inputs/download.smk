# Input and params functions of the download stage (its rules: workflow/rules/download.smk).

from protsae.config import source_file_name
from protsae.store import content_key


def hf_files(wildcards=None):
    """The downloaded files of a Hugging Face ESM-2 (``esm.model`` hf:<id> or a folder) by name:
    links as ancient (touching a folder's file reruns nothing) and their records (the bytes).
    """
    from protsae.huggingface import download_name

    files = {}
    for file in HF_MODEL.files():
        name = download_name(HF_MODEL, file)
        key = file.split(".")[0]
        files[key] = ancient(f"{DOWNLOADS_DIR}/{name}")
        files[f"{key}_record"] = f"{DOWNLOADS_DIR}/{name}.json"
    return files


def source_file(name):
    """The link to config source ``name`` (ancient: touching a source reruns nothing; a
    consumer reruns when the source's bytes change through ``source_record``)."""
    return ancient(
        f"{DOWNLOADS_DIR}/{source_file_name(name, config['sources'][name]['url'])}"
    )


def source_record(name):
    """The record of config source ``name`` (its checksums; rewritten only when its bytes
    change): every rule reading ``source_file(name)`` takes this too."""
    file = source_file_name(name, config["sources"][name]["url"])
    return f"{DOWNLOADS_DIR}/{file}.json"


def download_field(field):
    def get(wildcards):
        return DOWNLOADS[wildcards.file][field]

    get.__name__ = f"download_{field}"
    return get


def download_content(wildcards):
    """What the download's bytes must be (protsae.store.content_key): the job reruns when
    this changes, never because a file was touched or a checksum it has was added."""
    try:
        return content_key(DOWNLOADS[wildcards.file], wildcards.file, DOWNLOADS_DIR)
    except ConfigError as err:
        raise WorkflowError(str(err)) from None
