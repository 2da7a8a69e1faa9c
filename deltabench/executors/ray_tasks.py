"""Jobs as Ray tasks, on an existing Ray cluster or on a Ray instance started for the run.

Each job is one ``ray.remote`` task with the declared CPUs and GPUs (fractional GPUs let small
victims share a card). Results come back as tasks finish, so the runner saves each job's rows at
once; a task that raises only fails its own cells. Ctrl-C or SIGTERM (which Ray's core would turn
into an abort that skips any clean-up) cancels the outstanding tasks and stops a Ray instance
started here. Workers share the artifact cache folder, which must be visible to every node.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pydantic import Field

from ..components import Executor, Params, Requirement
from ..hookspecs import hookimpl

__all__ = ["RayExecutor"]


def _run_with_threads(fn: Callable[[Any], Any], job: Any, threads: int) -> Any:
    """Run one job with a fixed torch thread count (Ray's own default follows the task's CPUs)."""
    import torch

    torch.set_num_threads(threads)
    return fn(job)


class RayExecutor(Executor):
    """Jobs as Ray tasks, on the cluster at ``address`` or on a local Ray instance started here.

    Needs ``pip install "deltabench[ray]"``. On a cluster every node needs deltabench (and any
    plugin the suite names) installed, or shipped with ``runtime_env``, and the suite's cache folder
    on a shared file system.
    """

    name = "ray"
    requires = (Requirement("ray", "Ray", "deltabench[ray]"),)

    class Params(Params):
        address: str | None = Field(
            None,
            description="Ray cluster to join ('auto', 'ray://head:10001'); null = start a local instance",
        )
        local_cpus: int | None = Field(
            None, ge=1, description="CPUs of the local instance started when address is null; null = all"
        )
        local_gpus: int | None = Field(
            None, ge=0, description="GPUs of the local instance started when address is null; null = all"
        )
        num_cpus: float = Field(1.0, gt=0, description="CPUs reserved by each job's task")
        num_gpus: float = Field(0.0, ge=0, description="GPUs reserved by each task; 0.25 = four per GPU")
        threads: int = Field(
            1,
            ge=1,
            description="torch threads of the task between stages (each stage runs with the suite's threads)",
        )
        runtime_env: dict[str, Any] | None = Field(
            None, description="Ray runtime_env of the run (pip packages, env_vars, working_dir)"
        )

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any | BaseException]]:
        if not jobs:  # a resumed run with nothing left starts no Ray instance
            return
        import ray

        p = self.params
        started = not ray.is_initialized()
        if started:
            if p.address is None:
                ray.init(
                    num_cpus=p.local_cpus,
                    num_gpus=p.local_gpus,
                    include_dashboard=False,
                    runtime_env=p.runtime_env,
                )
            else:
                ray.init(address=p.address, runtime_env=p.runtime_env)
        previous_sigterm = _sigterm_interrupts()
        pending: list = []
        try:
            task = ray.remote(_run_with_threads).options(
                num_cpus=p.num_cpus, num_gpus=p.num_gpus, max_retries=0
            )
            index = {}
            for i, job in enumerate(jobs):
                index[task.remote(fn, job, p.threads)] = i
            pending = list(index)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    yield index[ref], _outcome(ray, ref)
        finally:
            for ref in pending:  # interrupted: nothing left should keep running on the cluster
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()
            if previous_sigterm is not None:
                signal.signal(signal.SIGTERM, previous_sigterm)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _sigterm_interrupts() -> Any:
    """Make SIGTERM act as Ctrl-C while the tasks run (Ray's core turns it into an abort that skips
    the clean-up); returns the handler to restore, or None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def _outcome(ray: Any, ref: Any) -> Any:
    """The task's result, or the exception it raised (unwrapped from Ray's wrapper when possible)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        return cause if isinstance(cause, Exception) else exc
    except Exception as exc:  # the worker died, ran out of memory, or the task was cancelled
        return exc


@hookimpl
def register_executors(register) -> None:
    register(RayExecutor)
