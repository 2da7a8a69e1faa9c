"""Every error deltabench raises on purpose, so callers can catch ours and not the world's."""

from __future__ import annotations

__all__ = [
    "DeltabenchError",
    "SuiteError",
    "RegistryError",
    "DatasetMissingError",
    "ComponentError",
    "NoAffectedPointError",
    "PackError",
]


class DeltabenchError(Exception):
    """Base class of all deltabench errors."""


class SuiteError(DeltabenchError):
    """A suite file is invalid. ``problems`` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class RegistryError(DeltabenchError):
    """Plugins could not be loaded: a misspelt hook, a duplicate component name, a bad component."""


class DatasetMissingError(DeltabenchError):
    """The files of a dataset are not where the suite says they are."""


class ComponentError(DeltabenchError):
    """A component returned something the runner cannot use (wrong type, out-of-range indices)."""


class NoAffectedPointError(DeltabenchError):
    """The victim sends no triggered test input to the target class: the attack did not take, so
    there is nothing to trace back. Its cells are recorded as ``skipped``, not as failures."""


class PackError(DeltabenchError):
    """A victim pack that cannot be used: missing, altered, or not built for this suite or dataset."""
