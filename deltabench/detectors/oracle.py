"""The reference detector: flags exactly the true poisons, to show what unlearning can do at best."""

from __future__ import annotations

from ..artifacts import Detection
from ..components import DetectionContext, Detector
from ..hookspecs import hookimpl


class Oracle(Detector):
    """Flags exactly the attack's true poison set (a reference row, not a method)."""

    name = "oracle"
    reference = True
    sees_true_poisons = True

    def detect(self, ctx: DetectionContext) -> Detection:
        if ctx.true_poisons is None:
            raise ValueError("the oracle needs ctx.true_poisons (the runner fills it for this class)")
        return Detection(ctx.true_poisons)


@hookimpl
def register_detectors(register) -> None:
    register(Oracle)
