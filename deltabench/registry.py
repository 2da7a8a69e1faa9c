"""Loads built-in and third-party plugins through pluggy and indexes their components by kind.

Built-in components are registered through the same hooks as installed plugins: every module in
the built-in component packages is handed to the plugin manager (as pytest does with its default
plugins), then the ``deltabench`` entry-point group is loaded. ``check_pending`` turns a misspelt
hook name into a load-time error, and a second component with a taken name is refused.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import types
import uuid
from dataclasses import dataclass, field
from functools import cache

import pluggy

from . import hookspecs
from .components import KINDS, Component
from .exceptions import RegistryError
from .names import did_you_mean

__all__ = ["Registry", "RegistryRecipe", "ComponentInfo", "load_registry", "BUILTIN_PACKAGES"]

BUILTIN_PACKAGES = (
    "deltabench.data",
    "deltabench.models",
    "deltabench.attacks",
    "deltabench.detectors",
    "deltabench.unlearners",
    "deltabench.executors",
)


@dataclass(frozen=True)
class ComponentInfo:
    """A registered component and where it came from."""

    kind: str
    name: str
    cls: type[Component]

    @property
    def distribution(self) -> str:
        """'name version' of the installed distribution that provides the component."""
        return _distribution_of(self.cls)


@cache
def _packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()  # scans every installed package: ~1 s


def _distribution_of(cls: type) -> str:
    top = cls.__module__.split(".")[0]
    dists = _packages_distributions().get(top, [])
    if not dists:
        return f"{top} (not installed)"
    name = dists[0]
    try:
        return f"{name} {importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return name


@dataclass(frozen=True)
class RegistryRecipe:
    """How a registry was loaded, so that another process can load the same one.

    ``plugins`` holds the extra plugins: a module by its importable name, anything else as itself
    (it must then pickle to reach a worker process). ``token`` tells recipes apart, so each worker
    loads a given registry once.
    """

    entry_points: bool = True
    plugins: tuple = ()
    token: str = field(default_factory=lambda: uuid.uuid4().hex, compare=False)

    def load(self) -> Registry:
        plugins = tuple(importlib.import_module(p) if isinstance(p, str) else p for p in self.plugins)
        return load_registry(entry_points=self.entry_points, extra_plugins=plugins)


_LOADED: dict[str, Registry] = {}


def _from_recipe(recipe: RegistryRecipe) -> Registry:
    """A registry unpickled in another process: loaded from its recipe, once per process."""
    if recipe.token not in _LOADED:
        _LOADED[recipe.token] = recipe.load()
    return _LOADED[recipe.token]


class Registry:
    """All components, by kind and name.

    A registry pickles as its :class:`RegistryRecipe`: a worker process that receives one loads the
    same built-ins and plugins (a plugin added only in the parent included) instead of its default.
    """

    def __init__(self, plugin_manager: pluggy.PluginManager, recipe: RegistryRecipe | None = None) -> None:
        self.plugin_manager = plugin_manager
        self.recipe = recipe
        self._by_kind: dict[str, dict[str, ComponentInfo]] = {kind: {} for kind in KINDS}

    def __reduce__(self) -> tuple:
        if self.recipe is None:
            raise TypeError("a Registry built without load_registry() cannot be sent to another process")
        return _from_recipe, (self.recipe,)

    def _add(self, kind: str, cls: type) -> None:
        base = KINDS[kind].base
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise RegistryError(f"{cls!r} registered as a {kind} is not a subclass of {base.__name__}")
        if not cls.name:
            raise RegistryError(f"{cls.__module__}.{cls.__qualname__} has no name")
        taken = self._by_kind[kind].get(cls.name)
        if taken is not None and taken.cls is not cls:
            raise RegistryError(
                f"duplicate {kind} name '{cls.name}': {cls.__module__}.{cls.__qualname__} "
                f"and {taken.cls.__module__}.{taken.cls.__qualname__} ({taken.distribution})"
            )
        self._by_kind[kind][cls.name] = ComponentInfo(kind, cls.name, cls)

    def collect(self) -> Registry:
        for kind in KINDS.values():
            hook = getattr(self.plugin_manager.hook, kind.hook)
            hook(register=lambda cls, _kind=kind.name: self._add(_kind, cls))
        return self

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def all(self) -> list[ComponentInfo]:
        return [info for kind in KINDS for _, info in sorted(self._by_kind[kind].items())]

    def info(self, kind: str, name: str) -> ComponentInfo:
        try:
            return self._by_kind[kind][name]
        except KeyError:
            raise RegistryError(
                f"unknown {kind} '{name}'{did_you_mean(name, self.names(kind))} "
                f"(available: {', '.join(self.names(kind))})"
            ) from None

    def get(self, kind: str, name: str) -> type[Component]:
        return self.info(kind, name).cls


def _builtin_modules() -> list[object]:
    modules = []
    for package_name in BUILTIN_PACKAGES:
        package = importlib.import_module(package_name)
        modules.append(package)
        for mod in pkgutil.iter_modules(package.__path__, package_name + "."):
            if not mod.name.rsplit(".", 1)[-1].startswith("_"):
                modules.append(importlib.import_module(mod.name))
    return modules


def new_plugin_manager(*, entry_points: bool = True, extra_plugins: tuple = ()) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module in _builtin_modules():
        pm.register(module)
    for plugin in extra_plugins:
        pm.register(plugin)
    if entry_points:
        try:
            pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        except Exception as exc:  # an installed plugin that fails to import
            raise RegistryError(f"could not load an installed deltabench plugin: {exc}") from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        known = sorted(n for n, f in vars(hookspecs).items() if hasattr(f, f"{hookspecs.PROJECT}_spec"))
        raise RegistryError(f"{exc} (known hooks: {', '.join(known)})") from exc
    return pm


def load_registry(*, entry_points: bool = True, extra_plugins: tuple = ()) -> Registry:
    """Build a fresh registry (tests use ``extra_plugins`` to add in-process plugins).

    For worker processes, give a plugin as an importable module (or a picklable object).
    """
    pm = new_plugin_manager(entry_points=entry_points, extra_plugins=extra_plugins)
    refs = tuple(p.__name__ if isinstance(p, types.ModuleType) else p for p in extra_plugins)
    return Registry(pm, RegistryRecipe(entry_points, refs)).collect()


@cache
def default_registry() -> Registry:
    """The process-wide registry of built-ins plus installed plugins, loaded once."""
    return load_registry()
