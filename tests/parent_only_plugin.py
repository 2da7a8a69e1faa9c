"""Detectors registered only by a test (not installed): worker processes must still get them."""

from __future__ import annotations

from deltabench import Detection, Detector, hookimpl


class HalfOracle(Detector):
    """Flags the first half of the true poisons, which it sees through its declared capability."""

    name = "half-oracle"
    sees_true_poisons = True

    def detect(self, ctx):
        return Detection(ctx.true_poisons[: len(ctx.true_poisons) // 2])


class Blind(Detector):
    """Flags nothing, and fails if it is shown the true poisons it did not ask for."""

    name = "blind"

    def detect(self, ctx):
        if ctx.true_poisons is not None:
            raise AssertionError("a detector without sees_true_poisons was shown the true poisons")
        return Detection([])


@hookimpl
def register_detectors(register) -> None:
    register(HalfOracle)
    register(Blind)
