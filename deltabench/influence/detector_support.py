"""The influence-engine settings every influence detector exposes, and engine access.

The fields are :class:`InfluenceSettings`' own (type, default, help), not restated: a detector's
parameters carry a subset of them flat in the suite (``backend: trak``). A detector hands
:func:`engine_for` those fields alone (``params.model_dump(include=ENGINE_KEYS)``), which become
one settings object passed whole to the engine: the engine never sees the detector's own
parameters.
"""

from __future__ import annotations

from typing import Any

from pydantic import create_model

from ..components import DetectionContext, Params
from .engine import InfluenceEngine, InfluenceSettings, get_engine

__all__ = ["ENGINE_FIELDS", "ENGINE_KEYS", "EngineParams", "engine_for"]

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


#: the engine's fields as a set, for ``params.model_dump(include=ENGINE_KEYS)``
ENGINE_KEYS = frozenset(ENGINE_FIELDS)


def engine_for(ctx: DetectionContext, values: dict[str, Any]) -> InfluenceEngine:
    """The (cached) fitted engine for the victim of ``ctx``, on ``ctx.device``, with the engine
    settings ``values``: the detector's parameters restricted to :data:`ENGINE_KEYS`."""
    return get_engine(ctx.model, ctx.train, InfluenceSettings(**values), device=ctx.device)
