"""Parameters and engine access shared by the influence-based detectors."""

from __future__ import annotations

from pydantic import Field

from ..components import DetectionContext, Params
from .engine import Backend, Damping, InfluenceEngine, InfluenceSettings, get_engine

__all__ = ["EngineParams", "engine_for"]


class EngineParams(Params):
    """The influence-engine fields every influence detector exposes (defaults sized for a CPU)."""

    backend: Backend = Field("ekfac", description="ekfac (paper), kfac, diagonal, identity, trak, exact")
    damping: Damping = Field(
        "heuristic",
        description="Hessian damping: heuristic = 0.1 x the mean eigenvalue (ours); paper = an absolute "
        "1e-8 (kronfluence 1.0.1's default, which the paper's code used); or a number >= 0. Absolute "
        "thresholds (influence-threshold th, delta-influence th != 0) are on the scale it sets",
    )
    factor_batch_size: int = Field(256, ge=1, description="examples per batch when fitting factors")
    train_batch_size: int = Field(256, ge=1, description="training examples per batch when scoring")
    proj_dim: int = Field(512, ge=8, description="TRAK projection dimension")


def engine_for(ctx: DetectionContext, params: EngineParams) -> InfluenceEngine:
    """The (cached) fitted engine for the victim of ``ctx``, on ``ctx.device``."""
    settings = InfluenceSettings(
        backend=params.backend,
        damping=params.damping,
        factor_batch_size=params.factor_batch_size,
        train_batch_size=params.train_batch_size,
        proj_dim=params.proj_dim,
    )
    return get_engine(ctx.model, ctx.train, settings, device=ctx.device)
