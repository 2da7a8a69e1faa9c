"""A pool of worker processes that the parent watches, so a worker never outlives it and one stuck
or crashed worker costs only its own job.

Compared with ``concurrent.futures.ProcessPoolExecutor``: each worker dies with the parent (see
:mod:`.lifeline`); Ctrl-C or SIGTERM of the parent stops the workers at once instead of waiting
for queued jobs; a worker that dies fails its own job only (not the whole pool); and a worker whose
stage runs past the suite's ``stage_timeout`` (a hang in C code that the in-process alarm cannot
stop) is killed and replaced, and its job runs again with that stage marked expired.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from .. import timeouts
from ..exceptions import DeltabenchError
from .lifeline import die_with_parent

__all__ = ["WorkerDiedError", "run_in_workers", "kill_grace"]

STOP_WAIT_SECONDS = 10.0


class WorkerDiedError(DeltabenchError):
    """The worker process running a job ended without answering (crashed, or killed from outside)."""


def _died(code: int | None) -> WorkerDiedError:
    how = f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0 else "ended"
    return WorkerDiedError(f"the worker process {how} (exit code {code}) while running this job")


def kill_grace(seconds: float) -> float:
    """How long past its limit a stage may run before its worker is killed: the in-process alarm
    normally ends it at the limit, so this is only reached by a hang that the alarm cannot stop."""
    return 5.0 + 0.1 * seconds


@dataclass
class _Worker:
    process: Any  # multiprocessing's SpawnProcess
    conn: Connection
    job: int | None = None
    stage: str | None = None  # key of the time-limited stage it is running
    kill_at: float | None = None  # time.monotonic() past which it is killed
    gpu: str | None = None  # the one GPU it sees (CUDA_VISIBLE_DEVICES)


def _worker_main(conn: Connection, parent_pid: int, threads: int, gpu: str | None = None) -> None:
    die_with_parent(parent_pid)
    if gpu is not None:  # before anything initialises CUDA, which reads it once
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent stops us
    import torch

    torch.set_num_threads(threads)
    timeouts.set_listener(lambda event, key, seconds: conn.send(("stage", event, key, seconds)))
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        fn, job, expired = task
        timeouts.expire(expired)
        try:
            answer: Any = fn(job)
        except Exception as exc:  # reported to the parent as the job's result
            answer = exc
        try:
            payload = pickle.dumps(("done", answer))
        except Exception as exc:
            payload = pickle.dumps(("done", RuntimeError(f"cannot send the job's result back: {exc!r}")))
        conn.send_bytes(payload)


def run_in_workers(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    *,
    workers: int,
    threads: int,
    gpus: Sequence[str] = (),
) -> Iterator[tuple[int, Any]]:
    """Run ``fn(job)`` for every job in up to ``workers`` spawned processes; yield ``(index, result
    or exception)`` in completion order. Workers are started from the calling thread (which must
    outlive them) and are all gone when this generator ends, is closed or is interrupted.

    With ``gpus`` (CUDA device ids), each new worker sees only the one fewest live workers use, so
    ``cuda`` in a worker is its own card and the pool spreads over all of them."""
    ctx = multiprocessing.get_context("spawn")
    pending: deque[int] = deque(range(len(jobs)))
    expired: dict[int, set[str]] = {}
    pool: list[_Worker] = []
    retired: list[Any] = []

    def start() -> _Worker:
        parent_end, child_end = ctx.Pipe()
        used = [w.gpu for w in pool]
        gpu = min(gpus, key=used.count) if gpus else None
        process = ctx.Process(
            target=_worker_main, args=(child_end, os.getpid(), threads, gpu), name="deltabench-worker"
        )
        process.start()
        child_end.close()  # so the parent sees EOF when the worker dies
        return _Worker(process, parent_end, gpu=gpu)

    def retire(worker: _Worker, *, kill: bool) -> None:
        pool.remove(worker)
        if kill:
            worker.process.kill()
            worker.process.join(STOP_WAIT_SECONDS)  # reap it now, not at the end of the run
        else:
            with contextlib.suppress(OSError):  # a worker that already died needs no stop message
                worker.conn.send(None)
        worker.conn.close()
        retired.append(worker.process)

    try:
        while pending or any(w.job is not None for w in pool):
            for worker in [w for w in pool if w.job is None]:
                if not pending or not worker.process.is_alive():
                    retire(worker, kill=False)  # an idle worker holds memory; let it go
            while pending and (len(pool) < workers or any(w.job is None for w in pool)):
                worker = next((w for w in pool if w.job is None), None) or start()
                if worker not in pool:
                    pool.append(worker)
                index = pending.popleft()
                try:
                    worker.conn.send((fn, jobs[index], expired.get(index, set())))
                except Exception as exc:  # fn or the job cannot be sent to a process
                    yield index, exc
                    continue
                worker.job = index
            busy = [w for w in pool if w.job is not None]
            if not busy:
                continue  # every job left could not be sent (reported above)
            deadlines = [w.kill_at for w in busy if w.kill_at is not None]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout))
            for worker in busy:
                index = worker.job
                if worker.conn in ready:
                    try:
                        message = pickle.loads(worker.conn.recv_bytes())
                    except (EOFError, OSError):
                        message = None
                    except Exception as exc:  # the result does not unpickle here
                        message = ("done", RuntimeError(f"cannot read the job's result: {exc!r}"))
                    if message is None:
                        worker.process.join(STOP_WAIT_SECONDS)  # its pipe closed: it is ending
                        yield index, _died(worker.process.exitcode)
                        retire(worker, kill=True)
                    elif message[0] == "stage":
                        event, key, seconds = message[1:]
                        started = event == "start"
                        worker.stage = key if started else None
                        worker.kill_at = time.monotonic() + seconds + kill_grace(seconds) if started else None
                        if event == "timeout":  # if the job runs again, this stage fails at once
                            expired.setdefault(index, set()).add(key)
                    else:
                        worker.job = worker.stage = worker.kill_at = None
                        yield index, message[1]
                elif worker.process.sentinel in ready:
                    worker.process.join(STOP_WAIT_SECONDS)
                    yield index, _died(worker.process.exitcode)
                    retire(worker, kill=True)
                elif worker.kill_at is not None and time.monotonic() >= worker.kill_at:
                    # stuck past its stage's limit where the alarm cannot reach: replace the worker
                    # and run the job again with that stage failing at once (others are cached)
                    expired.setdefault(index, set()).add(worker.stage)
                    retire(worker, kill=True)
                    pending.appendleft(index)
    finally:  # normally every worker is idle here; after an interrupt or an error, busy ones are killed
        for worker in list(pool):
            retire(worker, kill=worker.job is not None)
        for process in retired:
            process.join(STOP_WAIT_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
