"""Jobs as one SLURM job array, submitted and collected with submitit.

The run submits one array (one array task per victim job, at most ``array_parallelism`` running at
once) and yields each job's rows as soon as its task ends, so the runner saves them at once. A
preempted or timed-out task is requeued through submitit's checkpointing and starts again from
the shared artifact cache, so it repeats only the stage it was in. A run that is stopped and
started again submits only the cells missing from the CSV. ``cluster: local`` runs the same array
as processes on this machine and ``cluster: debug`` in this process (no SLURM needed): tests use
them, and they are a way to try a suite's executor block before submitting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from pydantic import Field

from ..components import Executor, Params, Requirement
from ..hookspecs import hookimpl

__all__ = ["SlurmExecutor", "JobTask"]


class JobTask:
    """One victim job as submitit runs it: fixed torch threads, and requeued when interrupted.

    submitit calls ``checkpoint`` when SLURM preempts the task or its time runs out; resubmitting
    the same job is enough, since every stage it finished is already in the shared cache.
    """

    def __init__(self, fn: Callable[[Any], Any], threads: int) -> None:
        self.fn = fn
        self.threads = threads

    def __call__(self, job: Any) -> Any:
        import torch

        previous = torch.get_num_threads()  # the debug cluster runs tasks in the caller's process
        torch.set_num_threads(self.threads)
        try:
            return self.fn(job)
        finally:
            torch.set_num_threads(previous)

    def checkpoint(self, job: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, job)


class SlurmExecutor(Executor):
    """Jobs as one SLURM job array through submitit (``cluster: local`` / ``debug`` to try it here).

    Needs ``pip install "deltabench[slurm]"``, deltabench installed where the tasks run, and the
    suite's cache and this executor's ``folder`` on a file system shared with the compute nodes.
    """

    name = "slurm"
    requires = (Requirement("submitit", "submitit", "deltabench[slurm]"),)

    class Params(Params):
        partition: str | None = Field(None, description="SLURM partition; null = the cluster's default")
        gpus_per_node: int = Field(0, ge=0, description="GPUs of each array task")
        cpus_per_task: int = Field(1, ge=1, description="CPUs of each array task")
        timeout_min: int = Field(60, ge=1, description="time limit of each task, in minutes (then requeued)")
        mem_gb: float | None = Field(
            None, gt=0, description="memory of each task; null = the partition's default"
        )
        array_parallelism: int = Field(256, ge=1, description="array tasks running at once")
        folder: str = Field(
            ".deltabench/slurm/%j", description="logs and submission files (%j = job id); on a shared disk"
        )
        threads: int = Field(
            1,
            ge=1,
            description="torch threads of the task between stages (each stage runs with the suite's threads)",
        )
        cluster: Literal["slurm", "local", "debug"] = Field(
            "slurm", description="slurm; local = processes on this machine; debug = in this process"
        )
        poll_s: float = Field(15.0, gt=0, description="seconds between checks of the tasks' states")
        submitit_params: dict[str, Any] = Field(
            default_factory=dict,
            description="more submitit AutoExecutor parameters, e.g. {slurm_account: x, slurm_qos: y}",
        )

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any | BaseException]]:
        if not jobs:
            return
        import submitit

        p = self.params
        executor = submitit.AutoExecutor(folder=p.folder, cluster=p.cluster)
        executor.update_parameters(
            name="deltabench",
            timeout_min=p.timeout_min,
            cpus_per_task=p.cpus_per_task,
            gpus_per_node=p.gpus_per_node,
            mem_gb=p.mem_gb,
            slurm_partition=p.partition,
            slurm_array_parallelism=p.array_parallelism,
            **p.submitit_params,
        )
        pending = dict(enumerate(executor.map_array(JobTask(fn, p.threads), list(jobs))))
        try:
            while pending:
                for i, job in list(pending.items()):
                    try:
                        finished = job.done()
                    except Exception as exc:  # the debug cluster runs the task inside done()
                        del pending[i]
                        yield i, exc
                        continue
                    if finished:
                        del pending[i]
                        yield i, _outcome(job)
                if pending:
                    time.sleep(p.poll_s)
        finally:
            for job in pending.values():  # interrupted: cancel what has not finished
                job.cancel(check=False)


def _outcome(job: Any) -> Any:
    """The task's result, or the error submitit reports for it (failed, cancelled, timed out)."""
    try:
        return job.result()
    except Exception as exc:
        return exc


@hookimpl
def register_executors(register) -> None:
    register(SlurmExecutor)
