"""Heavy dependencies imported on first use, so that loading the registry imports none of them.

``deltabench plugins`` and ``deltabench validate`` import every built-in component module; if each
imported torchvision, scikit-learn or an influence library at the top, every command would pay
seconds of imports for code it never runs. A module-level name bound with :func:`lazy_module` reads
like the import it replaces and imports the module at the first attribute access.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule:
    """Stands in for a module until an attribute is read (then the real module answers)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        module: ModuleType = importlib.import_module(self._name)  # a dict lookup once imported
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """``TF = lazy_module("torchvision.transforms.v2.functional")``: imported when first used."""
    return _LazyModule(name)
