"""One run at a time per results file: a second ``deltabench run`` on the same output fails fast.

Two runs that both read the CSV, compute and rewrite it would each drop the other's new rows. The
lock is an exclusive ``flock`` on ``.<results file>.lock`` next to the CSV, held for the whole run;
the kernel releases it when the holder exits, however it dies, so there is never a stale lock to
clean up. The second run fails at once (rather than waiting) because waiting would look like a hang
and, once the first run ends, find nothing left to do; the message names the holder's pid. Shards
(``--shard I/N``) write their own CSVs and so take their own locks and run side by side.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .exceptions import DeltabenchError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not guarded
    fcntl = None  # type: ignore[assignment]

__all__ = ["OutputLockError", "lock_path", "hold_output_lock"]


class OutputLockError(DeltabenchError):
    """The lock on a results file cannot be taken: another run holds it, or its folder cannot be made."""


def lock_path(results: Path) -> Path:
    return results.with_name(f".{results.name}.lock")


def _holder(handle) -> str:
    """The pid the holder wrote (it writes it just after locking, so give it a moment)."""
    for _ in range(20):
        handle.seek(0)
        text = handle.read().strip()
        if text:
            return text
        time.sleep(0.05)
    return "unknown"


@contextmanager
def hold_output_lock(results: Path) -> Iterator[None]:
    """Hold the lock on ``results`` (a CSV path) for the ``with`` block, or raise
    :class:`OutputLockError` at once if another run holds it."""
    if fcntl is None:
        yield
        return
    path = lock_path(results)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise OutputLockError(
            f"{path}: cannot create the run's lock file ({exc.strerror}); set `output:` to a writable folder"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(handle)
            raise OutputLockError(
                f"{results}: another deltabench run (pid {holder}) is writing this file; wait for it to "
                "end, or give this suite a different `output:` folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
