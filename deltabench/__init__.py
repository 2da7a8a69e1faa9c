"""deltabench: a benchmark for data-poisoning forensics and corrective unlearning.

The public API is small: component base classes and contexts to write plugins, the ``hookimpl``
marker to register them, the artifacts they exchange, and :func:`run` to run a suite from Python.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


# Imported on first use (PEP 562), so ``import deltabench`` and commands that never touch a model
# (a rerun of a finished suite: deltabench.uptodate) do not pay for torch.
_EXPORTED_FROM = {
    "artifacts": ("Dataset", "Detection", "ImageSet", "PoisonedData"),
    "components": (
        "Attack",
        "AttackContext",
        "DatasetInfo",
        "DatasetSource",
        "DetectionContext",
        "Detector",
        "Executor",
        "ModelFamily",
        "ParamProblem",
        "Params",
        "Requirement",
        "Unlearner",
        "UnlearningContext",
    ),
    "hookspecs": ("hookimpl",),
    "training": ("Trainer", "TrainingRecipe"),
}
_MODULE_OF = {name: module for module, names in _EXPORTED_FROM.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'deltabench' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))


def run(suite_path: str, *, fresh: bool = False):
    """Run a suite file (as ``deltabench run``) and return its :class:`~deltabench.runner.RunSummary`."""
    from .checks import load_checked_suite
    from .registry import default_registry
    from .runner import run_suite

    registry = default_registry()
    return run_suite(load_checked_suite(suite_path, registry), fresh=fresh, registry=registry)
