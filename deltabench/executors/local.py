"""Run jobs one after another in this process (the default) or in a pool of worker processes."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os

from pydantic import Field

from ..components import Executor, Params
from ..hookspecs import hookimpl


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
    changes a number.
    """

    name = "processes"

    class Params(Params):
        workers: int = Field(0, ge=0, description="worker processes; 0 = one per CPU core")

    def map(self, fn, jobs):
        workers = self.params.workers or os.cpu_count() or 1
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(
            max_workers=min(workers, max(1, len(jobs))),
            mp_context=ctx,
        ) as pool:
            futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
            for fut in cf.as_completed(futures):
                exc = fut.exception()
                yield futures[fut], (exc if exc is not None else fut.result())


@hookimpl
def register_executors(register) -> None:
    register(Serial)
    register(ProcessPool)
