"""Base classes of pluggable components and the contexts the runner hands them.

A component is a small class with a ``name``, a ``version`` (bump it when a change alters its
output: it is part of every cache key), a pydantic ``Params`` model (typed parameters with
defaults and help text, validated from YAML) and one method. It never reads suite files, seeds
RNGs, picks devices or writes results: the runner does, and passes what is needed in a context.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .artifacts import Dataset, Detection, ImageSet, PoisonedData
from .training import Trainer

__all__ = [
    "Params",
    "OUTSIDE_IDENTITY",
    "locating_field",
    "Component",
    "DatasetInfo",
    "ParamProblem",
    "class_problems",
    "Requirement",
    "DatasetSource",
    "ModelFamily",
    "Attack",
    "Detector",
    "Unlearner",
    "AttackContext",
    "DetectionContext",
    "UnlearningContext",
    "Executor",
    "Kind",
    "KINDS",
]


class Params(BaseModel):
    """Base of every component's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: ``json_schema_extra`` of a parameter that says where or how a component gets its input (a data
#: folder, downloading, checksum checks, decoding threads), not what it computes. Such parameters
#: stay out of stage identities, hence out of seeds and cache keys: a suite draws the same random
#: choices wherever its data lives. The resolved config in each row still records them.
OUTSIDE_IDENTITY: dict[str, Any] = {"identity": False}


def locating_field(default: Any, description: str, **constraints: Any) -> Any:
    """A parameter field marked :data:`OUTSIDE_IDENTITY`: where or how the input is found."""
    return Field(default, description=description, json_schema_extra=OUTSIDE_IDENTITY, **constraints)


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset source knows without loading anything: enough to check a suite's parameters.

    ``missing`` says why the files cannot be loaded and how to get them (None: they are there, or
    the source will download them). ``test_size`` is None where it is only known from the files.
    """

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    test_size: int | None = None
    missing: str | None = None


class ParamProblem(NamedTuple):
    """One parameter that cannot work on a dataset: its name, and the problem followed by the fix."""

    key: str
    text: str


def class_problems(data: DatasetInfo, **classes: int | None) -> list[ParamProblem]:
    """The class-index parameters (name=value; None = drawn later) that ``data`` has no class for."""
    k = data.num_classes
    return [
        ParamProblem(key, f"class {c} is not in {data.name} ({k} classes, 0-{k - 1}); pick a class below {k}")
        for key, c in classes.items()
        if c is not None and c >= k
    ]


@dataclass(frozen=True)
class Requirement:
    """An optional dependency a component imports when it runs, and what installs it.

    Checked when a suite is validated, so a missing one is a one-line error before anything runs.
    """

    module: str  # top-level import name, e.g. "ray"
    label: str  # the name users know it by, e.g. "Ray"
    install: str  # what to pip install, e.g. "deltabench[ray]"

    def installed(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None  # finds it without importing it
        except (ImportError, ValueError):
            return False


class Component:
    """Common part of every component kind.

    ``reference`` marks a component that only gives the other rows something to compare with (the
    true poison set, the victim left as it is): a suite with ``references: true`` gets every
    registered reference component of its detector and unlearner lists added in front.
    """

    kind: ClassVar[str] = "component"
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    reference: ClassVar[bool] = False
    Params: ClassVar[type[Params]] = Params
    #: optional dependencies it imports when it runs (installed as an extra, not by default)
    requires: ClassVar[tuple[Requirement, ...]] = ()
    #: where it knowingly differs from the paper's method or code, one sentence each (shown on the
    #: site's component cards; docs/paper-settings.md has the evidence)
    deviations: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def missing_requirements(cls) -> list[str]:
        """One line per required package that is not installed, with the command that installs it."""
        return [
            f"{cls.kind} '{cls.name}' needs {r.label}: pip install \"{r.install}\""
            for r in cls.requires
            if not r.installed()
        ]

    def __init__(self, params: Params | None = None, **values: Any) -> None:
        if params is not None and values:
            raise TypeError("pass either a Params instance or keyword values, not both")
        self.params = params if params is not None else self.Params(**values)

    @classmethod
    def from_spec_params(cls, params: dict[str, Any], checked: BaseModel | None = None) -> Component:
        """Built from a suite's parameters. ``checked`` is the ``Params`` instance the suite was
        validated with: it is used as it is (Params are frozen), so nothing is validated twice."""
        return cls(checked) if isinstance(checked, cls.Params) else cls(**params)

    @classmethod
    def summary(cls) -> str:
        """First paragraph of the docstring, on one line: what ``deltabench plugins`` shows."""
        paragraph = (cls.__doc__ or "").strip().split("\n\n")[0]
        return " ".join(paragraph.split())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    def check_dataset(self, data: DatasetInfo) -> list[ParamProblem]:
        """Parameters that cannot work on a dataset with this metadata (e.g. a class index it does
        not have), found before anything is loaded or trained; ``deltabench validate`` reports them."""
        return []


class DatasetSource(Component):
    """Loads a dataset (files, or data bundled with a package)."""

    kind = "dataset"

    def load(self, seed: int) -> Dataset:
        """Return the dataset; ``seed`` fixes any split the source makes itself."""
        raise NotImplementedError

    def info(self) -> DatasetInfo | None:
        """Class count, image shape and whether the files are there, without loading the data.
        Cheap (no decoding, no checksums); None means unknown, and then no parameter is checked
        against this dataset before the run."""
        return None


class ModelFamily(Component):
    """Builds an untrained classifier for a dataset's image shape and class count."""

    kind = "model"

    def build(
        self,
        image_shape: tuple[int, int, int],
        num_classes: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> nn.Module:
        raise NotImplementedError


@dataclass
class AttackContext:
    """What an attack may use: the clean dataset, seeded RNGs, and a trainer for surrogate models."""

    dataset: Dataset
    rng: np.random.Generator
    trainer: Trainer

    @property
    def device(self) -> torch.device:
        return self.trainer.device


@dataclass
class DetectionContext:
    """What a detector may use: the victim, its (poisoned) training set and the affected points.

    ``affected`` holds the affected test input(s) found after deployment, labelled with the class
    the victim wrongly predicts (the attacker's target). ``rng`` and the trainer's generator are
    seeded by the runner. ``clean_holdout`` is clean labelled data the defender holds (the runner passes
    the dataset's clean test set); a detector that reads it says so in its docs. ``true_poisons``
    holds the attack's poison indices only for a detector whose class sets ``sees_true_poisons``
    (a reference row such as the oracle, never a method), else ``None``.
    """

    model: nn.Module
    train: ImageSet
    affected: ImageSet
    num_classes: int
    rng: np.random.Generator
    trainer: Trainer
    clean_holdout: ImageSet | None = None
    true_poisons: np.ndarray | None = None

    @property
    def device(self) -> torch.device:
        return self.trainer.device


@dataclass
class UnlearningContext:
    """What an unlearner may use: the victim, the training set and the forget / retain split."""

    model: nn.Module
    train: ImageSet
    forget: np.ndarray
    retain: np.ndarray
    num_classes: int
    rng: np.random.Generator
    trainer: Trainer

    @property
    def device(self) -> torch.device:
        return self.trainer.device


class Attack(Component):
    """Poisons a clean dataset.

    ``relative_cost`` is a rough cost of ``poison`` in units of training one victim; the runner
    starts the costliest victims first, so that parallel workers finish close together.
    """

    kind = "attack"
    relative_cost: ClassVar[float] = 0.0

    def poison(self, ctx: AttackContext) -> PoisonedData:
        raise NotImplementedError


class Detector(Component):
    """Finds the training points responsible for the affected test point(s)."""

    kind = "detector"
    #: reference detectors only: the detection stage then fills ``ctx.true_poisons``
    sees_true_poisons: ClassVar[bool] = False

    def detect(self, ctx: DetectionContext) -> Detection:
        raise NotImplementedError


class Unlearner(Component):
    """Removes the influence of the flagged training points from the victim."""

    kind = "unlearner"

    def unlearn(self, ctx: UnlearningContext) -> nn.Module:
        raise NotImplementedError


class Executor(Component):
    """Runs independent jobs of a suite (one per trained victim) and yields results as they end."""

    kind = "executor"

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any | BaseException]]:
        """Yield ``(job index, result or raised exception)`` in completion order."""
        raise NotImplementedError


@dataclass(frozen=True)
class Kind:
    """One kind of component: the single table that hooks, registry and suite schema derive from."""

    name: str
    base: type[Component]
    #: a suite lists several of this kind under the plural key (``detectors:``), or names one (``executor:``)
    many: bool = True

    @property
    def plural(self) -> str:
        return f"{self.name}s"

    @property
    def suite_key(self) -> str:
        return self.plural if self.many else self.name

    @property
    def hook(self) -> str:
        """The pluggy hook that registers this kind, e.g. ``register_detectors``."""
        return f"register_{self.plural}"


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("dataset", DatasetSource),
        Kind("model", ModelFamily),
        Kind("attack", Attack),
        Kind("detector", Detector),
        Kind("unlearner", Unlearner),
        Kind("executor", Executor, many=False),
    )
}
