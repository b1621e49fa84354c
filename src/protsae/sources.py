"""Downloads that survive flaky networks: retries, HTTP resume, checksums, atomic rename.

A download first lands in ``<dest>.part`` beside its destination and is renamed onto
``dest`` only after it is complete and its checksums match, so a file under the final
name is always whole. The partial file is kept between attempts (and between runs)
so HTTP downloads resume with a ``Range`` request instead of starting over; a small
``<dest>.part.json`` beside it remembers which URL (and which ETag / Last-Modified
version) the bytes came from, so a partial file is never continued from another
source or another version of the file.

FTP goes through ``urllib`` and restarts from zero on every attempt (urllib has no
``REST`` support); ``file://`` URLs and plain paths are copied. Networking uses only
the standard library.

Given a ``kind`` (see :data:`protsae.filetypes.KINDS`), the finished bytes must also pass
:func:`protsae.filetypes.check_format` before the rename: an HTML page served with status
200 or a gzip stream cut short never lands under the final name. A body that came without
a Content-Length must also end where its format ends (:func:`protsae.filetypes.check_complete`:
gzip stream end, zip central directory, Swiss-Prot's closing ``//``, a complete last line of
text), whatever its kind, even with no ``kind`` for gzip and zip; one that fails is thrown
away and fetched again, never kept to resume from. A body of the announced length that fails
the format check is an error at once. Errors start with the source's name and
the user's URL, with the local copy in parentheses.
"""

from __future__ import annotations

import email.utils
import ftplib
import hashlib
import http.client
import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protsae.filetypes import FormatError, check_complete, check_format
from protsae.progress import Progress, get_logger

CHUNK_BYTES = 1 << 20
MAX_DELAY_S = 300.0
USER_AGENT = "protsae-download/0.1 (python urllib)"
RETRY_STATUSES = frozenset({408, 429})


class DownloadError(RuntimeError):
    """A download failed for good (bad URL, HTTP 4xx, retries exhausted)."""


class NotFoundError(DownloadError):
    """The server has no such file (HTTP 404 or 410): not retried."""

    def __init__(self, message: str, code: int = 404) -> None:
        super().__init__(message)
        self.code = code


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the expected md5/sha256."""


class _Transient(Exception):
    """An attempt failed in a way another attempt may fix (connection, timeout, 5xx, truncation)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def partial_path(dest: str | os.PathLike[str]) -> Path:
    """Where the bytes of ``dest`` accumulate until the download is complete and verified."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


@dataclass(frozen=True)
class Retry:
    """How :func:`fetch` insists: retries after the first attempt, timeout (s), backoff (s)."""

    retries: int = 5
    timeout: float = 60
    backoff: float = 1.0


def fetch(
    url: str,
    dest: str | os.PathLike[str],
    md5: str | None = None,
    sha256: str | None = None,
    retry: Retry | None = None,
    logger: logging.Logger | None = None,
    kind: str | None = None,
    label: str | None = None,
) -> Path:
    """Download ``url`` (http(s)://, ftp://, file:// or a local path) to ``dest``.

    Makes up to ``retry.retries + 1`` attempts (default :class:`Retry`), waiting
    ``retry.backoff * 2**(attempt - 1)`` seconds (at most 5 minutes, or the server's
    ``Retry-After``) before each retry. Retried:
    connection errors, timeouts, truncated bodies, HTTP 5xx, 408 and 429. Other 4xx
    responses fail at once. With ``kind`` the bytes must pass that format check (see the
    module docstring). On success the file is renamed onto ``dest`` and its path returned;
    ``dest`` never holds partial or unverified bytes. ``label`` (e.g. ``sources.uniref50``)
    starts every error message.
    """
    dest = Path(dest)
    retry = retry or Retry()
    logger = logger or get_logger()
    md5 = md5.strip().lower() if md5 else None
    sha256 = sha256.strip().lower() if sha256 else None
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest)
    sidecar = part.with_name(part.name + ".json")
    where = f"{label + ': ' if label else ''}{url} (cached copy {dest})"

    logger.info("fetching %s -> %s", url, dest)
    start = time.perf_counter()
    attempt = _attempt_for(url, part, sidecar, retry.timeout, logger, where)
    checked: _Checked | None = None
    try:
        if attempt is None:
            _copy_local(url, part, logger)
            _check_kind(part, kind, served=False)
        else:
            checked = _Checked(attempt, kind, sidecar)
            _with_retries(checked, url, retry.retries, retry.backoff, logger)
        _verify(part, md5, sha256)
    except (DownloadError, OSError) as exc:
        # Permanent failure (4xx, bad checksum, missing local file): these bytes are useless.
        part.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        if isinstance(exc, DownloadError):
            if isinstance(exc, NotFoundError):
                raise NotFoundError(f"{where}: {exc}", exc.code) from exc
            raise type(exc)(f"{where}: {exc}") from exc
        raise
    except _RetriesExhausted as exc:
        raise DownloadError(
            f"{where}: failed after {retry.retries + 1} attempts; last error: {exc}. "
            + _what_was_received(part, checked)
        ) from None

    os.replace(part, dest)
    sidecar.unlink(missing_ok=True)
    elapsed = max(time.perf_counter() - start, 1e-9)
    size = dest.stat().st_size
    logger.info(
        "fetched %s: %s bytes in %.1f s (%.2f MB/s)%s",
        dest,
        f"{size:,}",
        elapsed,
        size / 1e6 / elapsed,
        "".join(f", {name} ok" for name, value in (("md5", md5), ("sha256", sha256)) if value),
    )
    return dest


class _RetriesExhausted(Exception):
    pass


def _what_was_received(part: Path, checked: _Checked | None) -> str:
    """The last sentence of a failed download's message: what the attempts left behind."""
    kept = _size(part)
    if kept:
        return f"{kept:,} bytes kept in {part} to resume from on the next run."
    discarded = checked.discarded if checked is not None else []
    if discarded:
        sizes = ", ".join(f"{size:,}" for size in discarded)
        return (
            f"{len(discarded)} incomplete bod{'y' if len(discarded) == 1 else 'ies'} "
            f"received ({sizes} bytes) and thrown away; nothing kept."
        )
    return "Nothing was received."


def _attempt_for(
    url: str, part: Path, sidecar: Path, timeout: float, logger: logging.Logger, where: str
) -> _HttpAttempt | _FtpAttempt | None:
    """The transfer for the URL's scheme; None for a local file (copied, not retried)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        _discard_foreign_partial(part, sidecar, url, logger)
        return _HttpAttempt(url, part, sidecar, timeout, logger)
    if scheme == "ftp":
        return _FtpAttempt(url, part, timeout, logger)
    if scheme == "file" or scheme == "" or len(scheme) == 1:  # len 1: a Windows drive letter
        return None
    raise DownloadError(
        f"{where}: unsupported URL scheme {scheme!r} (use http(s)://, ftp://, file:// or a path)"
    )


def _check_kind(part: Path, kind: str | None, served: bool) -> None:
    if kind is None:
        return
    try:
        check_format(part, kind, served=served)
    except FormatError as exc:
        raise DownloadError(str(exc)) from exc


class _Checked:
    """An attempt followed by the format check of what it received.

    A body whose length the server did not announce may be cut short without any error,
    so it must also end where its format says a file ends (:func:`check_complete`); one
    that fails either check is thrown away and retried, never kept to resume from. A body
    of the announced length that fails the format check is what the server has, and fails
    for good.
    """

    def __init__(
        self, attempt: _HttpAttempt | _FtpAttempt, kind: str | None, sidecar: Path
    ) -> None:
        self.attempt = attempt
        self.kind = kind
        self.sidecar = sidecar
        self.discarded: list[int] = []  # sizes of the bodies thrown away as incomplete

    def __call__(self) -> None:
        self.attempt()
        part = self.attempt.part
        try:
            if self.kind is not None:
                check_format(part, self.kind, served=True)
            if not self.attempt.length_known:
                check_complete(part, self.kind)
        except FormatError as exc:
            if self.attempt.length_known:
                raise DownloadError(str(exc)) from exc
            size = _size(part)
            self.discarded.append(size)
            part.unlink(missing_ok=True)
            self.sidecar.unlink(missing_ok=True)
            raise _Transient(
                f"the body ({size:,} bytes, no Content-Length) was cut short or is damaged: {exc}"
            ) from exc


def _with_retries(
    attempt: _Checked,
    url: str,
    retries: int,
    backoff: float,
    logger: logging.Logger,
) -> None:
    last: _Transient | None = None
    for number in range(retries + 1):
        if last is not None:
            delay = min(backoff * 2 ** (number - 1), MAX_DELAY_S)
            if last.retry_after is not None:
                delay = max(delay, min(last.retry_after, MAX_DELAY_S))
            logger.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.1f s",
                url,
                number,
                retries + 1,
                last,
                delay,
            )
            time.sleep(delay)
        try:
            attempt()
            return
        except _Transient as exc:
            last = exc
    raise _RetriesExhausted(str(last))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _discard_foreign_partial(part: Path, sidecar: Path, url: str, logger: logging.Logger) -> None:
    """Drop a partial file left by a download of some other URL (or of unknown origin)."""
    if not part.exists():
        sidecar.unlink(missing_ok=True)
        return
    try:
        origin = json.loads(sidecar.read_text()).get("url")
    except (OSError, ValueError):
        origin = None
    if origin != url:
        logger.info("discarding %s: it was not downloaded from %s", part, url)
        part.unlink()
        sidecar.unlink(missing_ok=True)


def _retry_after(headers: http.client.HTTPMessage | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range: bytes a-b/n`` (or ``bytes */n``) header."""
    if not value or not value.startswith("bytes "):
        return None, None
    spec, _, total = value[6:].partition("/")
    first = int(spec.split("-")[0]) if spec[:1].isdigit() else None
    return first, int(total) if total.strip().isdigit() else None


class _HttpAttempt:
    """One GET of the remaining bytes, appending to the partial file."""

    def __init__(
        self, url: str, part: Path, sidecar: Path, timeout: float, logger: logging.Logger
    ) -> None:
        self.url = url
        self.part = part
        self.sidecar = sidecar
        self.timeout = timeout
        self.logger = logger
        self.length_known = False

    def _validator(self) -> str | None:
        try:
            return json.loads(self.sidecar.read_text()).get("validator")
        except (OSError, ValueError):
            return None

    def __call__(self) -> None:
        offset = _size(self.part)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            validator = self._validator()
            if validator:
                # If the file changed on the server, it sends all of it (200) instead of a stale tail.
                headers["If-Range"] = validator
        request = urllib.request.Request(self.url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                self._refused(exc, offset)
            return
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc

        with response:
            status = response.status
            if status == 206:
                first, total = _content_range(response.headers.get("Content-Range"))
                if first != offset:
                    self.part.unlink(missing_ok=True)
                    raise _Transient(f"asked for bytes from {offset}, server sent from {first}")
                mode = "ab"
                self.logger.info("resuming %s at byte %s", self.url, f"{offset:,}")
            elif status == 200:
                if offset:
                    self.logger.info(
                        "%s: server sent the whole file instead of a range; starting over",
                        self.url,
                    )
                offset, mode = 0, "wb"
                validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
                self.sidecar.write_text(json.dumps({"url": self.url, "validator": validator}))
            else:
                raise DownloadError(f"unexpected HTTP status {status}")
            self.length_known = _receive_body(
                response, self.part, mode, offset, self.logger, (OSError, http.client.HTTPException)
            )

    def _refused(self, exc: urllib.error.HTTPError, offset: int) -> None:
        if exc.code == 416 and offset:
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total == offset:
                self.length_known = True
                return  # the partial file already holds every byte
            self.part.unlink(missing_ok=True)
            raise _Transient(f"HTTP 416 for a range from byte {offset}; starting over")
        if exc.code >= 500 or exc.code in RETRY_STATUSES:
            raise _Transient(f"HTTP {exc.code} {exc.reason}", _retry_after(exc.headers))
        if exc.code in (404, 410):
            raise NotFoundError(f"HTTP {exc.code} {exc.reason} (not retried)", exc.code)
        raise DownloadError(f"HTTP {exc.code} {exc.reason} (not retried)")


def _receive_body(
    response: Any,
    part: Path,
    mode: str,
    offset: int,
    logger: logging.Logger,
    connection_errors: tuple[type[BaseException], ...],
) -> bool:
    """Stream a response body into ``part`` (appending when resuming at ``offset``).

    A connection lost mid-body or a body shorter than its Content-Length is transient:
    the bytes received so far stay in ``part`` for the next attempt to resume from.
    Returns whether the server announced the body's length.
    """
    length = response.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    progress = Progress(
        f"download {part.name.removesuffix('.part')}",
        expected / 1e6 if expected else None,
        "MB",
        logger,
        interval=10.0,
    )
    received = 0
    with open(part, mode) as out:
        try:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                received += len(chunk)
                progress.update(len(chunk) / 1e6)
        except connection_errors as exc:
            raise _Transient(
                f"connection lost after byte {offset + received:,} ({type(exc).__name__}: {exc})"
            ) from exc
    progress.finish()
    if expected is not None and received != expected:
        raise _Transient(
            f"truncated body: received {received:,} of {expected:,} bytes "
            f"(file now holds {offset + received:,})"
        )
    return expected is not None


class _FtpAttempt:
    """One FTP transfer of the whole file (urllib cannot resume FTP)."""

    def __init__(self, url: str, part: Path, timeout: float, logger: logging.Logger) -> None:
        self.url = url
        self.part = part
        self.timeout = timeout
        self.logger = logger
        self.length_known = False

    def __call__(self) -> None:
        try:
            response = urllib.request.urlopen(self.url, timeout=self.timeout)
        except urllib.error.URLError as exc:
            if isinstance(exc.__cause__, ftplib.error_perm):
                raise DownloadError(f"{exc.reason} (not retried)") from exc
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        except (OSError, ftplib.Error) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        with response:
            self.length_known = _receive_body(
                response, self.part, "wb", 0, self.logger, (OSError, ftplib.Error)
            )


def _copy_local(url: str, part: Path, logger: logging.Logger) -> None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme.lower() == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DownloadError(f"file:// URLs must name a local file (host {parsed.netloc!r})")
        source = Path(urllib.request.url2pathname(parsed.path))
    else:
        source = Path(url)
    if not source.is_file():
        raise DownloadError(f"no such file ({source})")
    with open(source, "rb") as src, open(part, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK_BYTES)
    logger.info("copied %s (%s bytes)", source, f"{_size(part):,}")


def _verify(path: Path, md5: str | None, sha256: str | None) -> None:
    """Check the finished bytes against the expected sums; name both sums on a mismatch."""
    if not md5 and not sha256:
        return
    digests = {
        name: hashlib.new(name) for name, expected in (("md5", md5), ("sha256", sha256)) if expected
    }
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            for digest in digests.values():
                digest.update(block)
    expected_sums = {"md5": md5, "sha256": sha256}
    wrong = [
        f"{name} expected {expected_sums[name]}, got {digest.hexdigest()}"
        for name, digest in digests.items()
        if digest.hexdigest() != expected_sums[name]
    ]
    if wrong:
        raise ChecksumError(f"checksum mismatch ({'; '.join(wrong)}); download removed")
