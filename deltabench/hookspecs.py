"""Hook specifications: one per registry, each handing the plugin a ``register`` callback.

A plugin module (or an installed package named in the ``deltabench`` entry-point group) implements
any of these with ``@deltabench.hookimpl`` and calls ``register(ComponentClass)`` once per component.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import pandas as pd

    from .leaderboard import Section
    from .stages import StoredStages

__all__ = ["hookspec", "hookimpl", "PROJECT", "HOOK_KINDS"]

PROJECT = "deltabench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[type], None]


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset sources (subclasses of ``DatasetSource``)."""


@hookspec
def register_models(register: Register) -> None:
    """Register model families (subclasses of ``ModelFamily``)."""


@hookspec
def register_attacks(register: Register) -> None:
    """Register poisoning attacks (subclasses of ``Attack``)."""


@hookspec
def register_detectors(register: Register) -> None:
    """Register poison detectors (subclasses of ``Detector``)."""


@hookspec
def register_unlearners(register: Register) -> None:
    """Register unlearning methods (subclasses of ``Unlearner``)."""


@hookspec
def register_executors(register: Register) -> None:
    """Register executors that run a suite's jobs (subclasses of ``Executor``)."""


@hookspec
def leaderboard_sections(frame: pd.DataFrame, stages: StoredStages | None) -> list[Section]:
    """Sections a plugin adds to the leaderboard, from the run's rows and (when the run's cache is
    given) its stored stage results; the leaderboard renders them after its own tables."""


# hook name -> component kind it registers
HOOK_KINDS: dict[str, str] = {
    "register_datasets": "dataset",
    "register_models": "model",
    "register_attacks": "attack",
    "register_detectors": "detector",
    "register_unlearners": "unlearner",
    "register_executors": "executor",
}
