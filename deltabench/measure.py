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
    peak_mb: float = 0.0


class StageMeter:
    """Context manager: wall seconds and peak resident memory (MB) of the block.

    Peak RSS is sampled every 10 ms from a background thread (and the CUDA peak added when the
    block used a GPU), because ``ru_maxrss`` only ever reports the whole process's high-water mark.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.cost = StageCost()
        self._proc = psutil.Process()
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._proc.memory_info().rss)

    def __enter__(self) -> StageCost:
        self._peak = self._proc.memory_info().rss
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._start = time.perf_counter()
        return self.cost

    def __exit__(self, *exc) -> None:
        self.cost.seconds = time.perf_counter() - self._start
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._proc.memory_info().rss)
        gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
        self.cost.peak_mb = (self._peak + gpu) / 2**20
