"""Worker processes end when the process that started them dies, however it dies.

A parent killed with SIGKILL runs no cleanup, so without this its workers (each holding a dataset
and models, ~1 GB) live on as orphans. On Linux the kernel delivers SIGKILL to the worker when its
parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere (macOS) a daemon thread polls the parent pid.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent", "watch_parent"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_SECONDS = 0.5


def die_with_parent(parent_pid: int) -> None:
    """Make this process exit when ``parent_pid`` (its parent) dies; call first thing in a worker.

    Linux's death signal fires when the *thread* that started the worker ends, so the pool must
    start its workers from a thread that outlives them (the runner's, which is the main thread).
    """
    if not (sys.platform.startswith("linux") and _set_death_signal(signal.SIGKILL)):
        watch_parent(parent_pid)
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)


def _set_death_signal(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the running program's symbols, libc's among them
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc or no prctl: fall back to polling
        return False


def watch_parent(parent_pid: int, interval: float = POLL_SECONDS) -> threading.Thread:
    """A daemon thread that ends this process once it is no longer ``parent_pid``'s child (an
    orphan is re-parented to init or a subreaper, so its parent pid changes)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    thread = threading.Thread(target=watch, name="deltabench-parent-watch", daemon=True)
    thread.start()
    return thread
