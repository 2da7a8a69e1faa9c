"""The stages of one victim, typed and cached: the one public way to compute or load them.

A :class:`Setting` (dataset, model, attack, seed, training recipe, ...) determines one victim:

    attack   -> PoisonedStage        poisoned training set, triggered test set, poison indices
    victim   -> VictimStage          weights trained on it, clean accuracy, PSR, affected points
    clean    -> CleanModelStage      weights and accuracy of a model trained on the clean set (optional)
    floor    -> FloorStage           that clean model's PSR on the attack's triggered test set
    detect   -> DetectionStage       one detector's flagged set
    unlearn  -> UnlearningStage      one unlearner applied to one detector's flagged set

:class:`Stages` computes each once and keeps it in the artifact cache; the runner, the leaderboard's
plugin sections (through :class:`StoredStages`) and study scripts all go through here, and
:mod:`deltabench.rows` builds the CSV rows from these results.

Identity and cache key. A stage's *identity* hashes its components' specs (name, version,
parameters), its upstream identity, the seed and :data:`CORE_VERSION`; its RNGs are seeded from it,
so a setting draws the same random numbers under any executor. Its *cache key* adds what changes
the arithmetic but not the draw: the digest of :data:`CORE_MODULES` (the shared code that
determines numbers), the torch thread count and the device type (on a GPU also whether arithmetic
was deterministic), so CPU- and GPU-computed stages never mix in a shared cache. Editing the training loop, the influence engine or
this module therefore misses the cache by itself; there is no version to remember to bump.
"""

from __future__ import annotations

import ast
import copy
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .artifacts import Dataset, Detection, PoisonedData
from .cache import ArtifactStore, DamagedArtifact, stable_hash
from .codec import storable
from .components import (
    AttackContext,
    Component,
    DetectionContext,
    Detector,
    UnlearningContext,
)
from .config import ComponentSpec
from .determinism import deterministic_algorithms
from .exceptions import ComponentError, NoAffectedPointError
from .log import log
from .measure import StageCost, StageMeter
from .metrics import accuracy, poison_success_rate
from .registry import Registry, default_registry
from .timeouts import time_limited
from .training import Trainer, TrainingRecipe, predict

__all__ = [
    "CORE_MODULES",
    "CORE_VERSION",
    "CleanModelStage",
    "DetectionStage",
    "FloorStage",
    "PoisonedStage",
    "Setting",
    "Stages",
    "StoredStages",
    "UPSTREAM_STAGES",
    "UnlearningStage",
    "VictimStage",
    "core_digest",
    "resolve_device",
    "torch_threads",
]

# Part of every identity, hence of every seed: bump it only to redraw every random choice.
CORE_VERSION = 3
# The shared code whose changes can change a stage's numbers, relative to the package (a folder
# means each of its modules). A component's own module is covered by its ``version``; a helper
# shared by several components belongs in a ``_private`` module listed here.
CORE_MODULES = (
    "stages.py",
    "training.py",
    "metrics.py",
    "artifacts.py",
    "codec.py",
    "determinism.py",
    "features.py",
    "models/__init__.py",
    "influence/",
    "attacks/_relabel.py",
    "detectors/_per_class.py",
    "unlearners/_steps.py",
)


def _code(path: Path) -> str:
    """The module's code without docstrings, comments or layout: edits to prose keep the cache."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


@cache
def core_digest() -> str:
    """A digest of the code of :data:`CORE_MODULES`: part of every cache key and cell id."""
    root = Path(__file__).resolve().parent
    files = sorted(
        f
        for entry in CORE_MODULES
        for f in (sorted((root / entry).glob("*.py")) if entry.endswith("/") else [root / entry])
    )
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(root).as_posix().encode() + b"\0" + _code(f).encode() + b"\0")
    return digest.hexdigest()[:16]


def resolve_device(name: str) -> torch.device:
    """``auto`` means the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch threads: on a CPU the thread count changes float sums."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _seeded(identity: str) -> tuple[np.random.Generator, torch.Generator]:
    """Seed torch's global RNG (for weight initialisation) and make fresh RNGs for a stage."""
    seed = int(identity[:8], 16) & 0x7FFFFFFF
    torch.manual_seed(seed)
    return np.random.default_rng(seed), torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- stage results


@storable
@dataclass
class PoisonedStage:
    """The attack's output: the poisoned data."""

    key: str
    data: PoisonedData
    cost: StageCost


@storable
@dataclass
class VictimStage:
    """The victim trained on the poisoned data, and the affected points chosen among its mistakes.

    ``affected`` indexes ``triggered_test``: inputs the victim sends to the target class, drawn at
    random (``Setting.affected_points`` of them) from the stage's seeded RNG.
    """

    key: str
    state: dict[str, torch.Tensor]
    clean_acc: float
    psr: float
    affected: np.ndarray
    cost: StageCost


@storable
@dataclass
class CleanModelStage:
    """A model trained on the clean training set, for comparison: its weights and clean accuracy.

    It does not depend on the attack (one per dataset, model, recipe and seed); the weights are
    kept so that each attack's :class:`FloorStage` can evaluate it without retraining.
    """

    key: str
    state: dict[str, torch.Tensor]
    clean_acc: float
    cost: StageCost


@storable
@dataclass
class FloorStage:
    """The attack's floor: the clean model's PSR on the attack's triggered test set.

    Unlearning cannot push a PSR below what a model that never saw a poison scores, so where the
    floor is at or above the success threshold no detector can succeed.
    """

    key: str
    psr: float
    cost: StageCost


@storable
@dataclass
class DetectionStage:
    """One detector's output on the victim."""

    key: str
    detection: Detection
    cost: StageCost


@storable
@dataclass
class UnlearningStage:
    """The victim after one unlearner removed one detector's flagged set."""

    key: str
    clean_acc: float
    psr: float
    cost: StageCost


# the stages before any detector: a run computes them first, then its detections read them back
UPSTREAM_STAGES = ("attack", "victim", "clean")

R = TypeVar("R", PoisonedStage, VictimStage, CleanModelStage, FloorStage, DetectionStage, UnlearningStage)


@dataclass(kw_only=True)
class Setting:
    """What determines one victim and its stages, and where and how they are computed."""

    dataset: ComponentSpec
    model: ComponentSpec
    attack: ComponentSpec
    seed: int
    training: dict[str, Any]
    affected_points: int = 1
    clean_model: bool = True
    device: str = "cpu"
    cache_dir: str = ".deltabench/cache"
    threads: int = 1
    stage_timeout: float | None = None
    deterministic: bool = False
    fresh: bool = False
    upstream_ready: bool = False  # this run computed the upstream stages: read them even when fresh

    def describe(self) -> str:
        return f"{self.dataset.name}/{self.model.name}/{self.attack.name}/seed {self.seed}"

    def cell_id(self, detector: ComponentSpec, unlearner: ComponentSpec) -> str:
        """The identity of one leaderboard row: a row computed by other core code is recomputed."""
        return stable_hash(
            "cell",
            [s.key for s in (self.dataset, self.model, self.attack, detector, unlearner)],
            self.training,
            self.seed,
            self.affected_points,
            CORE_VERSION,
            core_digest(),
            self.threads,
            *_device_parts(resolve_device(self.device), self.deterministic),
        )


def _device_parts(device: torch.device, deterministic: bool) -> list[Any]:
    """What a key adds for the device: its type, so CPU- and GPU-computed stages never mix in a
    shared cache, and on a GPU the deterministic switch (a CPU computes the same numbers either way)."""
    return [device.type] + ([deterministic] if device.type != "cpu" else [])


class Stages:
    """The stages of one setting, each computed on first use or loaded from the cache."""

    def __init__(self, setting: Setting, registry: Registry | None = None) -> None:
        s = setting
        self.setting = s
        self.registry = registry or default_registry()
        self.store = ArtifactStore(s.cache_dir, enabled=not s.fresh)
        self._upstream_store = ArtifactStore(s.cache_dir, enabled=not s.fresh or s.upstream_ready)
        self.device = resolve_device(s.device)
        self.recipe = TrainingRecipe(**s.training)
        dataset_id = stable_hash("dataset", s.dataset.key, s.seed, CORE_VERSION)
        self._attack_id = stable_hash("attack", dataset_id, s.attack.key, s.seed)
        model = s.model.key
        self._victim_id = stable_hash("victim", self._attack_id, model, s.training, s.seed, s.affected_points)
        self._clean_id = stable_hash("clean", dataset_id, model, s.training, s.seed)
        self._floor_id = stable_hash("floor", self._clean_id, self._attack_id)
        self._dataset: Dataset | None = None
        self._poisoned: PoisonedStage | None = None
        self._victim: VictimStage | None = None
        self._clean: CleanModelStage | None = None
        self._victim_model: torch.nn.Module | None = None
        self._last_detection: tuple[str, DetectionStage] | None = None  # (detect identity, stage)
        self._detect_ids: dict[tuple[str, str], str] = {}

    def describe(self) -> str:
        return self.setting.describe()

    def _make(self, kind: str, spec: ComponentSpec) -> Any:
        cls: type[Component] = self.registry.get(kind, spec.name)
        return cls.from_spec_params(spec.params, spec.validated)

    def upstream_identities(self) -> dict[str, str]:
        """The identities of the stages before any detector, by stage name (:data:`UPSTREAM_STAGES`):
        what a victim pack files them by, whichever checkout made it."""
        return {"attack": self._attack_id, "victim": self._victim_id, "clean": self._clean_id}

    def cache_key(self, identity: str) -> str:
        """The cache key of the stage with ``identity`` in this checkout, on this device and thread count."""
        parts = _device_parts(self.device, self.setting.deterministic)
        return stable_hash("stored", identity, core_digest(), self.setting.threads, *parts)

    def _staged(self, stage: str, identity: str, compute: Callable[[str], R], reuse: bool = True) -> R:
        """The stored result, or ``compute(key)`` timed and run under the setting's thread count."""
        key = self.cache_key(identity)

        def timed() -> R:
            meter = StageMeter(self.device)
            with (
                torch_threads(self.setting.threads),
                deterministic_algorithms(self.setting.deterministic, self.device),
                meter,
            ):
                value = time_limited(lambda: compute(key), stage, key, self.setting.stage_timeout)
            value.cost = meter.cost
            log(f"{stage} {self.describe()}: {value.cost.seconds:.1f} s")
            return value

        store = self._upstream_store if stage in UPSTREAM_STAGES else self.store
        return store.get_or_compute(stage, key, timed)[0] if reuse else timed()

    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = self._make("dataset", self.setting.dataset).load(self.setting.seed)
        return self._dataset

    def trainer(self, generator: torch.Generator) -> Trainer:
        family = self._make("model", self.setting.model)
        return Trainer.for_dataset(family, self.dataset, self.recipe, self.device, generator)

    def poisoned(self) -> PoisonedStage:
        if self._poisoned is None:

            def compute(key: str) -> PoisonedStage:
                rng, gen = _seeded(self._attack_id)
                ctx = AttackContext(self.dataset, rng, self.trainer(gen))
                data = self._make("attack", self.setting.attack).poison(ctx)
                if not isinstance(data, PoisonedData):
                    raise ComponentError(f"attack '{self.setting.attack.name}' did not return PoisonedData")
                if len(data.train) != len(self.dataset.train):
                    raise ComponentError("the poisoned training set must keep the clean set's length")
                return PoisonedStage(key, data, StageCost())

            self._poisoned = self._staged("attack", self._attack_id, compute)
        return self._poisoned

    def victim(self) -> VictimStage:
        if self._victim is None:

            def compute(key: str) -> VictimStage:
                data = self.poisoned().data
                rng, gen = _seeded(self._victim_id)
                model = self.trainer(gen).fit_new(data.train, desc="victim")
                hits = (
                    np.flatnonzero(predict(model, data.triggered_test.x).numpy() == data.target_class)
                    if len(data.triggered_test)
                    else np.empty(0, dtype=np.int64)
                )
                k = min(self.setting.affected_points, hits.size)
                affected = np.sort(rng.choice(hits, size=k, replace=False)) if k else hits[:0]
                state = {n: t.detach().cpu() for n, t in model.state_dict().items()}
                clean_acc = accuracy(model, self.dataset.test)
                psr = poison_success_rate(model, data.triggered_test)
                return VictimStage(key, state, clean_acc, psr, affected, StageCost())

            self._victim = self._staged("victim", self._victim_id, compute)
        return self._victim

    def _model_with(self, state: dict[str, torch.Tensor]) -> torch.nn.Module:
        """A fresh model of the setting's family holding ``state``, in eval mode."""
        model = self.trainer(torch.Generator()).new_model()
        model.load_state_dict(state)
        return model.eval()

    def victim_model(self) -> torch.nn.Module:
        """The victim's weights in a fresh model, in eval mode (shared: copy it before changing it)."""
        if self._victim_model is None:
            self._victim_model = self._model_with(self.victim().state)
        return self._victim_model

    def clean_model(self) -> CleanModelStage | None:
        if not self.setting.clean_model:
            return None
        if self._clean is None:

            def compute(key: str) -> CleanModelStage:
                _, gen = _seeded(self._clean_id)
                model = self.trainer(gen).fit_new(self.dataset.train, desc="clean model")
                state = {n: t.detach().cpu() for n, t in model.state_dict().items()}
                return CleanModelStage(key, state, accuracy(model, self.dataset.test), StageCost())

            self._clean = self._staged("clean", self._clean_id, compute)
        return self._clean

    def floor(self) -> FloorStage | None:
        """The clean model's PSR on this attack's triggered test set (``None`` without a clean model)."""
        clean = self.clean_model()
        if clean is None:
            return None

        def compute(key: str) -> FloorStage:
            psr = poison_success_rate(self._model_with(clean.state), self.poisoned().data.triggered_test)
            return FloorStage(key, psr, StageCost())

        return self._staged("floor", self._floor_id, compute)

    def _detect_id(self, spec: ComponentSpec) -> str:
        """The detection's identity, worked out once per detector (its unlearnings hash it too)."""
        known = (spec.name, spec.params_json)
        if known not in self._detect_ids:
            self._detect_ids[known] = stable_hash("detect", self._victim_id, spec.key)
        return self._detect_ids[known]

    def detection_context(
        self, detector: Detector, rng: np.random.Generator, gen: torch.Generator
    ) -> DetectionContext:
        """What ``detector`` may see on this victim, with the given RNGs (the stage seeds them).

        The true poison indices only for a detector whose class sets ``sees_true_poisons``.
        """
        data, victim = self.poisoned().data, self.victim()
        # a private copy: some libraries wrap layers in place
        model = copy.deepcopy(self.victim_model())
        return DetectionContext(
            model=model,
            train=data.train,
            affected=data.triggered_test.subset(victim.affected),
            num_classes=self.dataset.num_classes,
            rng=rng,
            trainer=self.trainer(gen),
            clean_holdout=self.dataset.test,
            true_poisons=data.poison_indices.copy() if detector.sees_true_poisons else None,
        )

    def detection(self, spec: ComponentSpec, *, reuse: bool = True) -> DetectionStage:
        """``spec``'s detection on this victim; ``reuse=False`` recomputes it without touching the
        cache (for a study that records what happens inside, e.g. the influence scores)."""
        identity = self._detect_id(spec)
        if reuse and self._last_detection and self._last_detection[0] == identity:
            return self._last_detection[1]

        def compute(key: str) -> DetectionStage:
            data, victim = self.poisoned().data, self.victim()
            if victim.affected.size == 0:
                raise NoAffectedPointError(
                    f"the attack did not take (victim PSR {victim.psr:.0%}): no triggered test "
                    "input is sent to the target class, so there is no affected point to trace back"
                )
            self.victim_model()  # built before seeding: building one draws initial weights
            rng, gen = _seeded(identity)
            detector = self._make("detector", spec)
            ctx = self.detection_context(detector, rng, gen)
            result = detector.detect(ctx)
            if not isinstance(result, Detection):
                raise ComponentError(f"detector '{spec.name}' did not return a Detection")
            if result.flagged.size and (result.flagged.min() < 0 or result.flagged.max() >= len(data.train)):
                raise ComponentError(f"detector '{spec.name}' flagged indices outside the training set")
            return DetectionStage(key, result, StageCost())

        stage = self._staged("detect", identity, compute, reuse)
        if reuse:
            self._last_detection = (identity, stage)
        return stage

    def unlearning(self, detector: ComponentSpec, unlearner: ComponentSpec) -> UnlearningStage:
        """``unlearner`` applied to the victim with ``detector``'s flagged set as the forget set."""
        flagged = self.detection(detector).detection.flagged
        identity = stable_hash(
            "unlearn", self._detect_id(detector), unlearner.key, self.setting.training
        )

        def compute(key: str) -> UnlearningStage:
            data = self.poisoned().data
            victim = self.victim_model()
            rng, gen = _seeded(identity)
            model = copy.deepcopy(victim)  # unlearners may change weights in place
            ctx = UnlearningContext(
                model=model.eval(),
                train=data.train,
                forget=flagged.copy(),
                retain=np.setdiff1d(np.arange(len(data.train)), flagged),
                num_classes=self.dataset.num_classes,
                rng=rng,
                trainer=self.trainer(gen),
            )
            out = self._make("unlearner", unlearner).unlearn(ctx)
            if not isinstance(out, torch.nn.Module):
                raise ComponentError(f"unlearner '{unlearner.name}' did not return a torch module")
            out.eval()
            return UnlearningStage(
                key,
                accuracy(out, self.dataset.test),
                poison_success_rate(out, data.triggered_test),
                StageCost(),
            )

        return self._staged("unlearn", identity, compute)


class StoredStages:
    """Stage results already in a cache folder, by the keys a leaderboard row records.

    Each getter returns ``None`` when the artifact is absent or damaged: a report built from a
    cache shows what is there and computes nothing.
    """

    def __init__(self, cache_dir: str | Path) -> None:
        self.store = ArtifactStore(cache_dir)

    def _get(self, stage: str, key: str, cls: type[R]) -> R | None:
        if not self.store.has(stage, key):
            return None
        try:
            value = self.store.load(stage, key)
        except DamagedArtifact as exc:
            log(f"cache: {self.store.path(stage, key)}: {exc}; left out")
            return None
        return value if isinstance(value, cls) else None

    def poisoned(self, key: str) -> PoisonedStage | None:
        return self._get("attack", key, PoisonedStage)

    def victim(self, key: str) -> VictimStage | None:
        return self._get("victim", key, VictimStage)

    def detection(self, key: str) -> DetectionStage | None:
        return self._get("detect", key, DetectionStage)
