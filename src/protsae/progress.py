"""Progress lines for long jobs: rate and ETA, written to a log at a bounded frequency."""

from __future__ import annotations

import logging
import sys
import time


def get_logger(name: str = "protsae") -> logging.Logger:
    """A logger that writes timestamped lines to stderr (Snakemake scripts redirect it to the rule's log)."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def _format_seconds(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):  # NaN or unknown
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}"


class Progress:
    """Counts work units and logs rate and ETA at most every ``interval`` seconds.

    ``total`` is in the same unit as ``update``'s argument (tokens, sequences, steps).
    Extra named quantities (e.g. ``fve=0.93``) are appended to each line.
    """

    def __init__(
        self,
        what: str,
        total: float | None,
        unit: str,
        logger: logging.Logger | None = None,
        interval: float = 10.0,
    ) -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.logger = logger or get_logger()
        self.interval = interval
        self.done = 0.0
        self.start = time.perf_counter()
        self._last_log = self.start

    def update(self, amount: float, force: bool = False, **extra: float | int | str) -> None:
        """Add ``amount`` units of finished work; log a line if the interval has passed."""
        self.done += amount
        now = time.perf_counter()
        if force or now - self._last_log >= self.interval:
            self._last_log = now
            self.logger.info(self.line(now, **extra))

    @property
    def rate(self) -> float:
        """Units per second since the start."""
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self, now: float | None = None, **extra: float | int | str) -> str:
        now = time.perf_counter() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.what}: {self.done:,.0f}"]
        if self.total:
            parts[0] += f"/{self.total:,.0f} {self.unit} ({100.0 * self.done / self.total:.1f}%)"
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            parts.append(f"ETA {_format_seconds(eta)}")
        else:
            parts[0] += f" {self.unit}"
        parts.append(f"{rate:,.1f} {self.unit}/s")
        parts.append(f"elapsed {_format_seconds(elapsed)}")
        for key, value in extra.items():
            parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
        return ", ".join(parts)

    def finish(self, **extra: float | int | str) -> None:
        """Log the final line unconditionally."""
        self.update(0, force=True, **extra)
