"""Detectors that never return, for the stage time-limit tests (registered in-process, or through
an entry point that tests/test_timeouts.py writes, so that worker processes load it too)."""

from __future__ import annotations

import signal
import threading
import time

from deltabench import Detection, DetectionContext, Detector, hookimpl


class SleepForever(Detector):
    """A Python loop that never ends."""

    name = "hang-sleep"

    def detect(self, ctx: DetectionContext) -> Detection:
        while True:
            time.sleep(1)


class WaitForever(Detector):
    """A wait on an event nobody sets."""

    name = "hang-wait"

    def detect(self, ctx: DetectionContext) -> Detection:
        threading.Event().wait()
        raise AssertionError("unreachable")


class Unreachable(Detector):
    """A hang the in-process alarm cannot stop, as in C code that never returns: SIGALRM is
    blocked, so only the executor's watchdog (killing the worker) ends it. Never run it serially."""

    name = "hang-unreachable"

    def detect(self, ctx: DetectionContext) -> Detection:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        threading.Event().wait()
        raise AssertionError("unreachable")


@hookimpl
def register_detectors(register) -> None:
    register(SleepForever)
    register(WaitForever)
    register(Unreachable)
