"""Atomic file output: a file appears under its final name complete or not at all."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class NoSpaceError(OSError):
    """A write ran out of disk space (or quota); the message names the output, which was
    left as it was, and says the partial file was removed."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


def _is_full_disk(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that ran out of space: an ``OSError`` with ENOSPC or EDQUOT,
    or pyarrow's OSError, which carries the errno only in its text."""
    if not isinstance(exc, OSError) or isinstance(exc, NoSpaceError):
        return False
    if exc.errno in _FULL:
        return True
    text = str(exc)
    return any(os.strerror(code) in text or f"errno {code}]" in text for code in _FULL)


def _free_bytes(folder: Path) -> int | None:
    try:
        info = os.statvfs(folder)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def _no_space(path: Path, exc: OSError) -> NoSpaceError:
    free = _free_bytes(path.parent)
    where = f"{free:,} bytes free on its file system" if free is not None else "its file system"
    return NoSpaceError(
        errno.ENOSPC,
        f"No space left on device writing {path} ({where}); the partial file was removed and "
        f"{path} was left as it was. Free some space (or point `results` elsewhere) and rerun. "
        f"[{type(exc).__name__}: {exc}]",
    )


@contextlib.contextmanager
def naming_full_disk(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a write that runs out of space inside the block into a :class:`NoSpaceError`
    naming ``path`` (the output whose write failed)."""
    try:
        yield
    except OSError as exc:
        if _is_full_disk(exc):
            raise _no_space(Path(path), exc) from exc
        raise


class AtomicFile:
    """A temporary file beside ``path`` that takes its place on :meth:`commit`.

    The temporary file lives in the same directory so the final ``os.replace`` is atomic
    on POSIX file systems; until then the final path keeps whatever it had.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with naming_full_disk(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent
            )
        os.close(fd)
        self.tmp = Path(tmp_name)

    def commit(self) -> None:
        """Move the finished temporary file onto the final path."""
        try:
            # mkstemp creates 0600; results on a shared cluster must be readable as umask allows.
            with naming_full_disk(self.path):
                os.chmod(self.tmp, 0o666 & ~_current_umask())
                os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Remove the temporary file."""
        self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    On any exception the temporary file is removed and the final path is left untouched.
    """
    file = AtomicFile(path)
    try:
        with naming_full_disk(file.path):
            yield file.tmp
    except BaseException:
        file.discard()
        raise
    file.commit()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new folder beside ``path``; on success it replaces ``path`` (readable by all,
    like the files written here), on any exception it is removed and ``path`` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    try:
        with naming_full_disk(final):
            yield work
        os.chmod(work, 0o755)
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


class AtomicParquetWriter:
    """A ``pq.ParquetWriter`` on an :class:`AtomicFile`, for tables written in row groups.

    :meth:`finish` is the one place that makes sure a file whose caller failed, whose last
    flush failed, or whose footer could not be written never appears under its final name.
    """

    def __init__(self, path: str | os.PathLike[str], schema: pa.Schema, **kwargs: Any) -> None:
        self.file = AtomicFile(path)
        try:
            with naming_full_disk(self.file.path):
                self.writer = _NamingWriter(
                    pq.ParquetWriter(self.file.tmp, schema, **kwargs), self.file.path
                )
        except BaseException:
            self.file.discard()
            raise

    def finish(self, ok: bool, final_flush: Callable[[], None] | None = None) -> None:
        """Close the file; commit it only if ``ok`` (the caller's work succeeded) and both
        ``final_flush`` and the footer write succeed, otherwise discard it."""
        try:
            with naming_full_disk(self.file.path):
                if ok and final_flush is not None:
                    final_flush()
                self.writer.close()
        except BaseException:
            with contextlib.suppress(Exception):
                self.writer.close()
            self.file.discard()
            raise
        if ok:
            self.file.commit()
        else:
            self.file.discard()


class _NamingWriter:
    """A ``pq.ParquetWriter`` whose writes that run out of space name the final output."""

    def __init__(self, writer: pq.ParquetWriter, path: Path) -> None:
        self._writer = writer
        self.path = path

    def write_batch(self, *args: Any, **kwargs: Any) -> None:
        with naming_full_disk(self.path):
            self._writer.write_batch(*args, **kwargs)

    def write_table(self, *args: Any, **kwargs: Any) -> None:
        with naming_full_disk(self.path):
            self._writer.write_table(*args, **kwargs)

    def close(self) -> None:
        with naming_full_disk(self.path):
            self._writer.close()


def write_parquet(table: pa.Table, path: str | os.PathLike[str], **kwargs: Any) -> None:
    """Write ``table`` to ``path`` atomically (pyarrow ``write_table`` keyword arguments pass through)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# ---- one writer per output ---------------------------------------------------------


class LockHeld(RuntimeError):
    """Another process holds the lock on an output; the message names it."""


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file that guards ``path`` (a hidden file beside it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on the lock file of ``path`` while the block runs.

    A second holder fails at once with :class:`LockHeld` naming the process (pid and host)
    that holds it. The kernel drops the lock when its process dies, even by SIGKILL, so a
    lock never outlives its writer. The lock file stays (removing it would race a new
    holder).
    """
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise LockHeld(
                f"{path} is being written by another process ({holder}); wait for it to end "
                "or stop it (a snakemake killed with -9 leaves its jobs running)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield lock
    finally:
        os.close(fd)  # closing releases the flock


def remove_stale_parts(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that :class:`AtomicFile` left beside ``path`` (a writer
    killed before it could clean up); call only while holding ``path``'s lock."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.part"))
    for part in stale:
        part.unlink(missing_ok=True)
    return stale


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


_claimed: list[contextlib.ExitStack] = []


def claim_outputs(*paths: str | os.PathLike[str]) -> list[Path]:
    """The first call of a long-writing job: lock its outputs for the rest of the process,
    remove stale temporary files of them, and turn SIGTERM (Snakemake and SLURM stopping a
    job) into an exception, so writers interrupted that way remove their temporary files.

    The lock is taken on the first path; stale files are removed for all of them. Returns
    the removed files. Raises :class:`LockHeld` when another process writes these outputs.
    """
    if not paths:
        return []
    stack = contextlib.ExitStack()
    stack.enter_context(exclusive_lock(paths[0]))
    _claimed.append(stack)  # held until the process ends
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_on_sigterm)
    return [part for path in paths for part in remove_stale_parts(path)]
