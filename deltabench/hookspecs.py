"""Hook specifications: one ``register_<kind>s`` hook per component kind, each handing the plugin a
``register`` callback.

A plugin module (or an installed package named in the ``deltabench`` entry-point group) implements
any of these with ``@deltabench.hookimpl`` and calls ``register(ComponentClass)`` once per component.
The hooks are made from :data:`deltabench.components.KINDS`, so a new kind is one line there.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from .components import KINDS, Kind

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


# hook name -> component kind it registers
HOOK_KINDS: dict[str, str] = {kind.hook: kind.name for kind in KINDS.values()}
globals().update({kind.hook: _register_hook(kind) for kind in KINDS.values()})
