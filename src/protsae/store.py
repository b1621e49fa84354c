"""The downloads folder as Snakemake sees it: links keyed on content, a store, records.

Each source ``F`` (``plan.source_file_name``) becomes, in ``resources/downloads/``:

* ``F`` -- a symbolic link: to the user's file for a local source (nothing is copied),
  to ``store/F`` for a fetched one. The stored file is write-protected by us, not by
  Snakemake, so a rerun of the download job never meets ``ProtectedOutputException``:
  Snakemake removes only the link, and the job finds the bytes still there.
* ``F.json`` -- the record: the source's config key and URL, where the bytes are, their
  size, md5 and sha256, and the content key the job ran with. A copy beside the stored
  bytes (``store/F.json``), which Snakemake never removes, is what :func:`content_key`
  reads.

Snakemake reruns a job when its params change, and reruns consumers when a (large) input
is newer. Consumers take the link as ``ancient()`` and the record as a plain input, so
touching a local source reruns nothing; the download job's ``content`` param
(:func:`content_key`) changes only when the bytes must change: a local file's sha256,
a fetched file's URL, or a configured checksum that the stored bytes do not have. Adding
a checksum the bytes already have changes nothing, so nothing reruns. Hashes of files are
cached by (path, size, mtime in ns), so a large file is hashed once, again only after it
is touched or edited.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from protsae.config import ConfigError, is_local_source, local_source_path
from protsae.filetypes import FormatError, check_format
from protsae.progress import get_logger
from protsae.sources import CHUNK_BYTES, ChecksumError, DownloadError, fetch

STORE = "store"
DIGESTS = ".digests"
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def _cache_file(real_path: str, downloads_dir: str | os.PathLike[str]) -> Path:
    return Path(downloads_dir, DIGESTS, hashlib.sha1(real_path.encode()).hexdigest()[:16] + ".json")


def file_digests(path: str | os.PathLike[str], downloads_dir: str | os.PathLike[str]) -> dict:
    """``{path, size, mtime_ns, md5, sha256}`` of a file, computed once per (size, mtime)."""
    real = os.path.realpath(path)
    info = os.stat(real)
    cache = _cache_file(real, downloads_dir)
    try:
        cached = json.loads(cache.read_text())
        if (cached["path"], cached["size"], cached["mtime_ns"]) == (
            real,
            info.st_size,
            info.st_mtime_ns,
        ):
            return cached
    except (OSError, ValueError, KeyError):
        pass
    if info.st_size > 100_000_000:
        get_logger().info("hashing %s (%s bytes; cached for later runs)", real, f"{info.st_size:,}")
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(real, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            md5.update(block)
            sha256.update(block)
    digests = {
        "path": real,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "md5": md5.hexdigest(),
        "sha256": sha256.hexdigest(),
    }
    from protsae.io import write_json  # deferred: pyarrow is slow to import at DAG time

    write_json(digests, cache)
    return digests


def check_local_format(
    path: str | os.PathLike[str], kind: str, downloads_dir: str | os.PathLike[str]
) -> None:
    """:func:`check_format` of a local source, done once per (size, mtime) of the file:
    a file of the wrong kind stops the run when the DAG is built, before any job."""
    digests = file_digests(path, downloads_dir)
    if kind in digests.get("checked", []):
        return
    check_format(path, kind)
    from protsae.io import write_json

    digests["checked"] = [*digests.get("checked", []), kind]
    write_json(digests, _cache_file(digests["path"], downloads_dir))


def mismatches(digests: dict, md5: str | None, sha256: str | None) -> list[str]:
    """``["md5 expected X, got Y", ...]`` for each given checksum the digests do not match."""
    wrong = []
    for name, expected in (("md5", md5), ("sha256", sha256)):
        if expected and expected.strip().lower() != digests[name]:
            wrong.append(f"{name} expected {expected.strip().lower()}, got {digests[name]}")
    return wrong


def store_path(downloads_dir: str | os.PathLike[str], file: str) -> Path:
    """Where the bytes of fetched source ``file`` are kept."""
    return Path(downloads_dir, STORE, file)


def _read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def content_key(entry: dict[str, str], file: str, downloads_dir: str | os.PathLike[str]) -> str:
    """The download job's ``content`` param: it changes exactly when the bytes must change.

    Local source: ``sha256:<hex>`` of the file; a configured checksum it does not have is
    a :class:`ConfigError` now, before any job. Fetched source: the URL, or the key of the
    stored copy's record while that copy has every configured checksum; a checksum it
    lacks (or a new ``md5_url``) gives a new key, so the job runs and fetches again.
    """
    url, label = entry["url"], entry["label"]
    md5, sha256 = entry.get("md5") or None, entry.get("sha256") or None
    if is_local_source(url):
        path = local_source_path(url)
        if not os.path.isfile(path):
            raise ConfigError(f"config key {label}: {url}: no such file")
        try:
            check_local_format(path, entry["kind"], downloads_dir)
        except FormatError as exc:
            raise ConfigError(f"config key {label}: {url}: {exc}") from None
        wrong = mismatches(file_digests(path, downloads_dir), md5, sha256)
        if wrong:
            raise ConfigError(
                f"config key {label}: {url}: the file does not have the configured checksum "
                f"({'; '.join(wrong)})"
            )
        return f"sha256:{file_digests(path, downloads_dir)['sha256']}"
    stored = store_path(downloads_dir, file)
    record = _read_record(stored.with_name(f"{file}.json"))
    if record is None or not stored.is_file() or record.get("url") != url:
        return url
    md5_url = entry.get("md5_url") or ""
    if record.get("md5_url", "") != md5_url:
        return f"{url} (md5 from {md5_url})"
    wrong = mismatches(file_digests(stored, downloads_dir), md5, sha256)
    if wrong:
        return f"{url} (fetch again: {'; '.join(wrong)})"
    return str(record.get("key", url))


def published_md5(text: str, file_name: str, where: str) -> str:
    """The md5 of ``file_name`` in a checksum listing: a metalink (UniProt's
    ``RELEASE.metalink``), ``md5sum`` output, or a file holding just the checksum."""
    stripped = text.strip()
    if stripped.startswith("<"):
        try:
            root = ElementTree.fromstring(stripped)
        except ElementTree.ParseError as exc:
            raise DownloadError(f"{where}: not a readable metalink ({exc})") from exc
        for node in root.iter():
            if node.tag.rsplit("}", 1)[-1] == "file" and node.get("name") == file_name:
                for hash_node in node.iter():
                    tag = hash_node.tag.rsplit("}", 1)[-1]
                    if tag == "hash" and (hash_node.get("type") or "").lower() == "md5":
                        return (hash_node.text or "").strip().lower()
        raise DownloadError(f"{where}: the metalink has no md5 for {file_name}")
    if _MD5.match(stripped):
        return stripped.lower()
    for line in stripped.splitlines():
        words = line.split()
        if len(words) == 2 and _MD5.match(words[0]) and words[1].lstrip("*") == file_name:
            return words[0].lower()
    raise DownloadError(f"{where}: lists no md5 for {file_name}")


def _fetch_md5(entry: dict[str, str], workdir: Path, logger: logging.Logger) -> str:
    md5_url = entry["md5_url"]
    file_name = Path(urllib.parse.urlsplit(entry["url"]).path).name
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".md5-") as tmp:
        listing = fetch(md5_url, Path(tmp, "listing"), logger=logger, label=entry["label"])
        text = listing.read_text(errors="replace")
    md5 = published_md5(text, file_name, f"{entry['label']}: md5_url {md5_url}")
    logger.info("%s: md5 of %s from %s: %s", entry["label"], file_name, md5_url, md5)
    return md5


def _link(target: Path, link: Path, relative: bool) -> None:
    """Point ``link`` at ``target`` (replacing whatever is there, atomically)."""
    dest = os.path.relpath(target, link.parent) if relative else str(target)
    tmp = link.with_name(f".{link.name}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(dest, tmp)
    os.replace(tmp, link)


def materialise(
    entry: dict[str, str],
    link: str | os.PathLike[str],
    record: str | os.PathLike[str],
    key: str,
    logger: logging.Logger | None = None,
) -> dict[str, Any]:
    """Make the download job's outputs: ``link`` to the verified bytes and its ``record``.

    A local source is format-checked and linked where it is. A fetched source reuses the
    stored copy when it has every configured checksum (``md5``, ``sha256``, or the md5
    published at ``md5_url``) and is fetched again otherwise. Returns the record.
    """
    logger = logger or get_logger()
    link, url, label = Path(link), entry["url"], entry["label"]
    downloads_dir = link.parent
    md5, sha256 = entry.get("md5") or None, entry.get("sha256") or None
    if is_local_source(url):
        target = Path(local_source_path(url))
        if not target.is_file():
            raise DownloadError(f"{label}: {url}: no such file")
        try:
            check_format(target, entry["kind"])
        except FormatError as exc:
            raise DownloadError(f"{label}: {url} (linked as {link}): {exc}") from exc
        digests = file_digests(target, downloads_dir)
        wrong = mismatches(digests, md5, sha256)
        if wrong:
            raise ChecksumError(f"{label}: {url}: checksum mismatch ({'; '.join(wrong)})")
        _link(target.absolute(), link, relative=not target.is_absolute())
    else:
        target = store_path(downloads_dir, link.name)
        if entry.get("md5_url"):
            md5 = md5 or _fetch_md5(entry, target.parent, logger)
        if target.is_file():
            wrong = mismatches(file_digests(target, downloads_dir), md5, sha256)
            if wrong:
                logger.info("%s: stored copy %s: %s; fetching again", label, target, wrong)
                target.with_name(f"{target.name}.json").unlink(missing_ok=True)
                target.unlink()
            else:
                logger.info("%s: %s already fetched and verified; reused", label, target)
        if not target.is_file():
            fetch(
                url, target, md5=md5, sha256=sha256, kind=entry["kind"], label=label, logger=logger
            )
            os.chmod(target, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        digests = file_digests(target, downloads_dir)
        _link(target, link, relative=True)
    written = {
        "source": label,
        "url": url,
        "md5_url": entry.get("md5_url") or "",
        "target": str(target),
        "size": digests["size"],
        "md5": digests["md5"],
        "sha256": digests["sha256"],
        "key": key,
    }
    from protsae.io import write_json

    write_json(written, record)
    if target == store_path(downloads_dir, link.name):
        write_json(written, target.with_name(f"{link.name}.json"))
    logger.info(
        "%s: %s -> %s (%s bytes, sha256 %s)",
        label,
        link,
        target,
        f"{digests['size']:,}",
        digests["sha256"],
    )
    return written


class _SourceNames(logging.Filter):
    """Rewrites each log line so that a downloads link reads as the source the user wrote."""

    def __init__(self, rename: Callable[[str], str]) -> None:
        super().__init__()
        self.rename = rename

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        renamed = self.rename(message)
        if renamed != message:
            record.msg, record.args = renamed, None
        return True


def source_names(records: dict[str, str]) -> dict[str, str]:
    """``{link: "sources.<key>: <url or path> (cached copy <link>)"}`` for each link whose
    record (written by :func:`materialise`) can be read."""
    names = {}
    for link, record in records.items():
        written = _read_record(Path(record))
        if written:
            names[str(link)] = f"{written['source']}: {written['url']} (cached copy {link})"
    return names


@contextlib.contextmanager
def sources_named(records: dict[str, str], logger: logging.Logger | None = None) -> Iterator[None]:
    """Input errors raised inside, and the lines logged inside, name each source as the user
    wrote it: its config key and URL or path, with the cached copy in parentheses.
    ``records`` maps each link a job reads to its record (``source_file`` and
    ``source_record`` of a rule's inputs)."""
    from protsae.sequences.common import InputError

    names = source_names(records)

    def rename(text: str) -> str:
        for link, named in names.items():
            if named not in text:  # already named (an error raised through two of these)
                text = text.replace(link, named)
        return text

    logger = logger or get_logger()
    handlers = [logger, *logger.handlers]
    renamer = _SourceNames(rename)
    for handler in handlers:
        handler.addFilter(renamer)
    try:
        yield
    except InputError as err:
        raise InputError(rename(str(err))) from err
    finally:
        for handler in handlers:
            handler.removeFilter(renamer)
