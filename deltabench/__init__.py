"""deltabench: a benchmark for data-poisoning forensics and corrective unlearning.

The public API is small: component base classes and contexts to write plugins, the ``hookimpl``
marker to register them, the artifacts they exchange, and :func:`run` to run a suite from Python.
"""

from __future__ import annotations

from .artifacts import Dataset, Detection, ImageSet, PoisonedData
from .components import (
    Attack,
    AttackContext,
    DatasetInfo,
    DatasetSource,
    DetectionContext,
    Detector,
    Executor,
    ModelFamily,
    ParamProblem,
    Params,
    Requirement,
    Unlearner,
    UnlearningContext,
)
from .hookspecs import hookimpl
from .training import Trainer, TrainingRecipe

__version__ = "0.1.0"

__all__ = [
    "Attack",
    "AttackContext",
    "Dataset",
    "DatasetInfo",
    "DatasetSource",
    "Detection",
    "DetectionContext",
    "Detector",
    "Executor",
    "ImageSet",
    "ModelFamily",
    "ParamProblem",
    "Params",
    "PoisonedData",
    "Requirement",
    "Trainer",
    "TrainingRecipe",
    "Unlearner",
    "UnlearningContext",
    "hookimpl",
    "run",
]


def run(suite_path: str, *, fresh: bool = False):
    """Run a suite file (as ``deltabench run``) and return its :class:`~deltabench.runner.RunSummary`."""
    from .checks import load_checked_suite
    from .registry import default_registry
    from .runner import run_suite

    registry = default_registry()
    return run_suite(load_checked_suite(suite_path, registry), fresh=fresh, registry=registry)
