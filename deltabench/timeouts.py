"""A time limit per stage (the suite's ``stage_timeout``), so one hanging component fails only its
own cells and the suite goes on.

Two layers. In the thread that runs stages (the main thread of the process, or of each worker
process), a repeating ``SIGALRM`` raises inside the stage once its time is up: that stops any hang
that returns to Python now and then (a sleep loop, a wait on a lock or an event). A hang inside C
code that never returns cannot be interrupted from within; for that, an executor that runs stages
in worker processes listens to stage starts (:func:`set_listener`), kills a worker whose stage runs
well past its limit, and runs the job again with that stage marked expired (:func:`expire`), so it
fails at once while every other stage comes from the cache.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

from .exceptions import ComponentError

__all__ = ["StageTimeoutError", "time_limited", "expire", "set_listener", "timeout_message"]

T = TypeVar("T")
Listener = Callable[[str, str, float], None]  # (event, stage key, seconds)
REPEAT_SECONDS = 1.0  # the alarm fires again until the stage ends, in case a component swallows it

_expired: set[str] = set()
_listener: Listener | None = None
_active = False


class StageTimeoutError(ComponentError):
    """A stage ran past the suite's ``stage_timeout``; its cells are recorded as failed."""


class _Expired(BaseException):
    """Raised by the alarm inside a stage; a BaseException so that a component's own
    ``except Exception`` cannot swallow it. Turned into :class:`StageTimeoutError` at the stage's
    boundary."""


def timeout_message(stage: str, seconds: float) -> str:
    return f"{stage} stage timed out after {seconds:g} s (suite key stage_timeout)"


def expire(keys: Iterable[str]) -> None:
    """Stage keys that already ran past their limit (in a worker that was killed): they fail at once."""
    _expired.clear()
    _expired.update(keys)


def set_listener(listener: Listener | None) -> None:
    """Called with ``("start", key, seconds)`` when a limited stage starts and with ``("end", ...)``
    or ``("timeout", ...)`` when it ends: a worker reports these to the process that watches it."""
    global _listener
    _listener = listener


def time_limited(compute: Callable[[], T], stage: str, key: str, seconds: float | None) -> T:
    """``compute()``, stopped with :class:`StageTimeoutError` after ``seconds`` (``None``: no limit).

    A stage started inside another one runs within the outer stage's limit.
    """
    global _active
    if key in _expired:
        raise StageTimeoutError(timeout_message(stage, seconds or 0))
    if seconds is None or _active:
        return compute()
    alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    armed = True

    def on_alarm(signum: int, frame: object) -> None:
        if armed:
            raise _Expired

    previous = signal.signal(signal.SIGALRM, on_alarm) if alarm else None
    _active = True
    event = "end"
    if _listener is not None:
        _listener("start", key, seconds)
    try:
        try:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_SECONDS)
            return compute()
        finally:
            armed = False  # first: an alarm from here on is ignored
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
            _active = False
    except _Expired:
        event = "timeout"
        raise StageTimeoutError(timeout_message(stage, seconds)) from None
    finally:
        if _listener is not None:
            _listener(event, key, seconds)
