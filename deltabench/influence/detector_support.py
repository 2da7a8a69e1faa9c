"""The influence-engine settings every influence detector exposes, and engine access.

The fields are :class:`InfluenceSettings`' own (type, default, help), not restated: a detector's
parameters carry a subset of them flat in the suite (``backend: trak``), and :func:`engine_for`
turns them into one settings object passed whole to the engine.
"""

from __future__ import annotations

from pydantic import create_model

from ..components import DetectionContext, Params
from .engine import InfluenceEngine, InfluenceSettings, get_engine

__all__ = ["ENGINE_FIELDS", "EngineParams", "engine_settings", "engine_for"]

# the settings a detector's parameters expose (the others keep InfluenceSettings' defaults)
ENGINE_FIELDS = ("backend", "damping", "factor_batch_size", "train_batch_size", "proj_dim")

EngineParams = create_model(
    "EngineParams",
    __base__=Params,
    __module__=__name__,
    **{
        name: (InfluenceSettings.model_fields[name].annotation, InfluenceSettings.model_fields[name])
        for name in ENGINE_FIELDS
    },
)
EngineParams.__doc__ = "The influence-engine settings every influence detector exposes."


def engine_settings(params: Params) -> InfluenceSettings:
    """The engine settings a detector's parameters hold."""
    return InfluenceSettings(**params.model_dump(include=set(ENGINE_FIELDS)))


def engine_for(ctx: DetectionContext, params: Params) -> InfluenceEngine:
    """The (cached) fitted engine for the victim of ``ctx``, on ``ctx.device``."""
    return get_engine(ctx.model, ctx.train, engine_settings(params), device=ctx.device)
