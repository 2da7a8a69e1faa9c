"""The reference detector: flags exactly the true poisons, to show what unlearning can do at best."""

from __future__ import annotations

from ..artifacts import Detection
from ..components import DetectionContext, Detector
from ..hookspecs import hookimpl


class Oracle(Detector):
    """Flags exactly the attack's true poison set (a reference row, not a method)."""

    name = "oracle"
    reference = True
    needs_ground_truth = True

    def detect(self, ctx: DetectionContext) -> Detection:
        return Detection(ctx.extras["true_poisons"])


@hookimpl
def register_detectors(register) -> None:
    register(Oracle)
