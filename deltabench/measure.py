"""Wall time and peak memory of a stage, recorded in every leaderboard row."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil
import torch

from .codec import storable

__all__ = ["StageMeter", "StageCost"]


@storable
@dataclass
class StageCost:
    seconds: float = 0.0
    peak_mb: float = 0.0  # host: peak resident memory of the process during the stage
    gpu_peak_mb: float = 0.0  # the stage's GPU: peak memory torch allocated on it (0 on a CPU)


class StageMeter:
    """Context manager: wall seconds, peak resident memory and peak GPU memory (MB) of the block.

    Peak RSS is sampled every 10 ms from a background thread, because ``ru_maxrss`` only ever
    reports the whole process's high-water mark. The GPU peak is that of ``device`` (the stage's,
    not whichever is current), kept apart from RSS: host and GPU memory are separate budgets.
    """

    def __init__(self, device: torch.device | None = None, interval: float = 0.01) -> None:
        self.interval = interval
        self.gpu = device if device is not None and device.type == "cuda" else None
        self.cost = StageCost()
        self._proc = psutil.Process()
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._proc.memory_info().rss)

    def __enter__(self) -> StageCost:
        self._peak = self._proc.memory_info().rss
        if self.gpu is not None:
            torch.cuda.reset_peak_memory_stats(self.gpu)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._start = time.perf_counter()
        return self.cost

    def __exit__(self, *exc) -> None:
        self.cost.seconds = time.perf_counter() - self._start
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._proc.memory_info().rss)
        self.cost.peak_mb = self._peak / 2**20
        if self.gpu is not None:
            self.cost.gpu_peak_mb = torch.cuda.max_memory_allocated(self.gpu) / 2**20
