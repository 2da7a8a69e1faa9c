"""Resident memory of this process: now, and the peak inside a block (sampled by a thread).

Why sampling: ``ru_maxrss`` is the peak since the process started, so it shows only the first stage
that raises it. A thread reading ``/proc/self/statm`` every 20 ms gives each stage its
own peak, measured against the RSS just before it (Linux only).
"""

from __future__ import annotations

import os
import resource
import threading

__all__ = ["PeakRss", "rss_mb", "max_rss_mb"]

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_mb() -> float:
    """The resident set size now, in MB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE_MB


def max_rss_mb() -> float:
    """The process's peak resident set size so far (the kernel's count), in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRss:
    """``with PeakRss() as m: ...`` then ``m.before``, ``m.peak`` and ``m.growth`` (MB)."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.before = self.peak = 0.0
        self._stop = threading.Event()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> PeakRss:
        self.before = self.peak = rss_mb()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())

    @property
    def growth(self) -> float:
        """Peak RSS inside the block minus the RSS just before it."""
        return self.peak - self.before
