"""Influence-threshold baselines: flag the training points most influential on the affected point.

``influence-threshold`` (EK-FAC, paper: th = 10 on BadNet/CIFAR-10) and ``trak-threshold`` (the same
with TRAK scores). Scores are on each backend's own scale, so besides an absolute ``th`` either
detector can flag the ``top_k`` highest scores or those above a ``percentile``. With several
affected points the score is their mean influence.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from ..artifacts import Detection
from ..components import DetectionContext, Detector
from ..hookspecs import hookimpl
from ..influence.detector_support import ENGINE_KEYS, EngineParams, engine_for

__all__ = ["InfluenceThreshold", "TrakThreshold", "threshold_flags"]


def threshold_flags(
    scores: np.ndarray, th: float, top_k: int | None = None, percentile: float | None = None
) -> np.ndarray:
    """Indices with score > th, or the top_k highest, or those above the given percentile."""
    if top_k is not None:
        return np.sort(np.argsort(-scores, kind="stable")[:top_k])
    if percentile is not None:
        return np.flatnonzero(scores > np.percentile(scores, percentile))
    return np.flatnonzero(scores > th)


class _ThresholdParams(EngineParams):
    th: float = Field(10.0, description="flag scores above th (paper: 10 with EK-FAC on BadNet/CIFAR-10)")
    top_k: int | None = Field(None, ge=1, description="instead of th: flag the k highest scores")
    percentile: float | None = Field(
        None, ge=0, lt=100, description="instead of th: flag scores above this percentile"
    )

    @model_validator(mode="after")
    def _one_rule(self):
        if self.top_k is not None and self.percentile is not None:
            raise ValueError("give top_k or percentile, not both")
        return self


class InfluenceThreshold(Detector):
    """Flag training points whose EK-FAC influence on the affected point exceeds a threshold."""

    name = "influence-threshold"
    deviations = (
        "EK-FAC damping defaults to kronfluence's heuristic; `damping: paper` is the code's 1e-8.",
        "th 10 is from the BadNet/CIFAR-10 notebook; the other settings reuse it (no notebook for them).",
    )

    class Params(_ThresholdParams):
        pass

    def detect(self, ctx: DetectionContext) -> Detection:
        p = self.params
        old = engine_for(ctx, p.model_dump(include=ENGINE_KEYS)).scores(ctx.affected).mean(0)
        return Detection(threshold_flags(old, p.th, p.top_k, p.percentile), {"old": old})


class TrakThreshold(InfluenceThreshold):
    """Flag training points whose TRAK score on the affected point exceeds a threshold."""

    name = "trak-threshold"
    deviations = ("TRAK's threshold th 0 is ours (the later paper version names no value).",)

    class Params(_ThresholdParams):
        backend: Literal["trak"] = Field("trak", description="fixed: trak")
        th: float = Field(0.0, description="flag TRAK scores above th (TRAK's scale: ours, 0)")


@hookimpl
def register_detectors(register) -> None:
    register(InfluenceThreshold)
    register(TrakThreshold)
