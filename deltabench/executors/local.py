"""Run jobs one after another in this process (the default) or in a pool of worker processes."""

from __future__ import annotations

import os

from pydantic import Field

from ..components import Executor, Params
from ..hookspecs import hookimpl
from .workers import run_in_workers


class Serial(Executor):
    """One job at a time, in this process: simplest, and what tests and debugging want."""

    name = "local"

    def map(self, fn, jobs):
        for i, job in enumerate(jobs):
            try:
                yield i, fn(job)
            except Exception as exc:  # a job's failure is reported, not raised
                yield i, exc


class ProcessPool(Executor):
    """Jobs spread over worker processes on this machine.

    Workers share the artifact cache on disk, so a killed pool resumes like a serial run. Each stage
    runs with the suite's ``threads`` torch threads, here as in this process, so the executor never
    changes a number. Workers die with the run that started them, however it ends (see :mod:`.workers`).
    """

    name = "processes"

    class Params(Params):
        workers: int = Field(0, ge=0, description="worker processes; 0 = one per CPU core")
        spread_gpus: bool = Field(
            True,
            description="each worker sees one of the visible GPUs, in turn (its CUDA_VISIBLE_DEVICES); "
            "off for a suite that names a device index such as cuda:1",
        )

    def map(self, fn, jobs):
        workers = self.params.workers or os.cpu_count() or 1
        gpus = visible_gpus() if self.params.spread_gpus else []
        # stages set the suite's thread count themselves; 1 between stages keeps workers from oversubscribing
        yield from run_in_workers(fn, jobs, workers=min(workers, max(1, len(jobs))), threads=1, gpus=gpus)


def visible_gpus() -> list[str]:
    """The CUDA device ids this process may use: ``CUDA_VISIBLE_DEVICES``'s entries when it is set,
    else one per device torch counts (through NVML, without initialising CUDA here)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and not d.strip().startswith("-")]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


@hookimpl
def register_executors(register) -> None:
    register(Serial)
    register(ProcessPool)
