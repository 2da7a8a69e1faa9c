"""Hook specifications: one ``register_<kind>s`` hook per component kind, each handing the plugin a
``register`` callback.

A plugin module (or an installed package named in the ``deltabench`` entry-point group) implements
any of these with ``@deltabench.hookimpl`` and calls ``register(ComponentClass)`` once per component.
The hooks are made from :data:`deltabench.components.KINDS`, so a new kind is one line there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

from .components import KINDS, Kind

if TYPE_CHECKING:
    import pandas as pd

    from .leaderboard import Section
    from .site.sections import SiteSection
    from .stages import StoredStages

__all__ = ["hookspec", "hookimpl", "PROJECT", "HOOK_KINDS"]

PROJECT = "deltabench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[type], None]


def _register_hook(kind: Kind) -> Callable[[Register], None]:
    def spec(register: Register) -> None:
        pass

    spec.__name__ = spec.__qualname__ = kind.hook
    spec.__doc__ = f"Register {kind.plural} (subclasses of ``{kind.base.__name__}``)."
    return hookspec(spec)


@hookspec
def leaderboard_sections(frame: pd.DataFrame, stages: StoredStages | None) -> list[Section]:
    """Sections a plugin adds to the leaderboard, from the run's rows and (when the run's cache is
    given) its stored stage results; the leaderboard renders them after its own tables."""


@hookspec
def site_sections(frame: pd.DataFrame, stages: StoredStages | None) -> list[SiteSection]:
    """Sections a plugin adds to each run's part of the site (``deltabench site``), e.g. figures from
    its stored stage results; ``stages`` is None when the run's cache is not there."""


# hook name -> component kind it registers
HOOK_KINDS: dict[str, str] = {kind.hook: kind.name for kind in KINDS.values()}
globals().update({kind.hook: _register_hook(kind) for kind in KINDS.values()})
