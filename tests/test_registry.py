"""Plugin loading: built-ins through the hooks, loud failures for bad plugins."""

from __future__ import annotations

import types

import pytest

from deltabench import Detector, hookimpl
from deltabench.exceptions import RegistryError
from deltabench.hookspecs import HOOK_KINDS
from deltabench.names import closest
from deltabench.registry import load_registry


def test_builtins_are_registered_through_the_hooks():
    registry = load_registry(entry_points=False)
    assert "digits" in registry.names("dataset")
    assert {"small-cnn", "resnet18"} <= set(registry.names("model"))
    assert "badnet" in registry.names("attack")
    assert {"oracle", "spectral"} <= set(registry.names("detector"))
    assert {"none", "eu"} <= set(registry.names("unlearner"))
    assert {"local", "processes"} <= set(registry.names("executor"))
    info = registry.info("detector", "spectral")
    assert info.distribution.startswith("deltabench")


def test_every_hook_is_documented():
    import deltabench.hookspecs as specs

    for hook in HOOK_KINDS:
        assert (getattr(specs, hook).__doc__ or "").strip(), hook


def _plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(**hooks)


def test_misspelt_hook_fails_at_load_time():
    @hookimpl
    def register_detector(register):  # missing the final "s"
        pass

    with pytest.raises(RegistryError, match="register_detector"):
        load_registry(entry_points=False, extra_plugins=(_plugin(register_detector=register_detector),))


def test_duplicate_component_name_fails_at_load_time():
    class Impostor(Detector):
        name = "spectral"

    @hookimpl
    def register_detectors(register):
        register(Impostor)

    with pytest.raises(RegistryError, match="duplicate detector name 'spectral'"):
        load_registry(entry_points=False, extra_plugins=(_plugin(register_detectors=register_detectors),))


def test_component_of_the_wrong_kind_is_refused():
    class NotADetector:
        name = "nope"

    @hookimpl
    def register_detectors(register):
        register(NotADetector)

    with pytest.raises(RegistryError, match="not a subclass of Detector"):
        load_registry(entry_points=False, extra_plugins=(_plugin(register_detectors=register_detectors),))


def test_unknown_name_suggests_the_closest():
    registry = load_registry(entry_points=False)
    with pytest.raises(RegistryError, match="did you mean 'spectral'"):
        registry.get("detector", "spectrl")
    assert closest("badnt", ["badnet", "frequency"]) == "badnet"
