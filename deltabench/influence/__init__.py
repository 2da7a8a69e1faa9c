"""Influence of every training point on a batch of query points, in one pass over the training set.

One engine, shared by every influence-based detector (never copied into them):

- :class:`InfluenceEngine` fits the backend's factors once per (model weights, training set,
  settings) and scores any number of queries with one pass over the training set.
- :func:`get_engine` returns a cached engine for the same victim, so two detectors on the same
  victim in one process (e.g. ``delta-influence`` and ``influence-threshold``) fit factors once.

Backends: ``ekfac`` / ``kfac`` / ``diagonal`` / ``identity`` (kronfluence), ``trak`` (traker) and
``exact`` (the damped Gauss-Newton Hessian inverted directly; tiny models only). Sign: a positive
score means the training point supports the query's prediction (removing it would lower the
query's margin).
"""

from .engine import BACKENDS, InfluenceEngine, InfluenceSettings, clear_engine_cache, get_engine
from .measurement import margin, summed_cross_entropy

__all__ = [
    "BACKENDS",
    "InfluenceEngine",
    "InfluenceSettings",
    "get_engine",
    "clear_engine_cache",
    "margin",
    "summed_cross_entropy",
]
