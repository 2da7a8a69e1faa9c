"""Work units: a suite's victims and their detections, split so that many workers can share them.

A run goes in two phases, each one ``executor.map`` over independent units:

1. *upstream* units: per victim, the attack and the victim's training; per distinct clean model
   (shared by every attack on the same dataset, model and seed), its training;
2. *detection* units (:meth:`deltabench.runner.Job.per_detector`): one (victim, detector) pair
   with all its unlearnings, reading the victim from the shared artifact cache written in phase 1,
   so no victim is ever trained twice.

So a suite of V victims and D detectors keeps up to V + C workers busy in phase 1 (C clean models)
and V x D in phase 2, where one unit per victim kept at most V busy. Every unit computes its stages
through :class:`~deltabench.stages.Stages`, whose identities seed every RNG, so the rows do not
depend on how the work was cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .cache import stable_hash
from .registry import Registry, default_registry
from .stages import Setting, Stages

if TYPE_CHECKING:
    from .runner import Job

__all__ = [
    "UpstreamUnit",
    "forget_stages",
    "run_upstream",
    "stages_for",
    "upstream_units",
]


@dataclass
class UpstreamUnit:
    """Phase-1 work: ``part`` of the stages of ``setting``; ``jobs`` are the runner's jobs that
    need it (a clean model serves several)."""

    setting: Setting
    part: Literal["victim", "clean"]
    jobs: list[int]


def upstream_units(jobs: list[Job]) -> list[UpstreamUnit]:
    """One victim unit per job, and one clean-model unit per distinct clean model."""
    units = [UpstreamUnit(job, "victim", [i]) for i, job in enumerate(jobs)]
    clean: dict[str, UpstreamUnit] = {}
    for i, job in enumerate(jobs):
        if not job.clean_model:
            continue
        key = stable_hash(job.dataset.key, job.model.key, job.training, job.seed)
        if key in clean:
            clean[key].jobs.append(i)
        else:
            clean[key] = UpstreamUnit(job, "clean", [i])
    return units + list(clean.values())


def run_upstream(unit: UpstreamUnit, registry: Registry | None = None) -> None:
    """Compute (or find in the cache) the unit's stages; a failure raises, for the runner to report."""
    stages = Stages(unit.setting, registry or default_registry())
    if unit.part == "victim":
        stages.poisoned()
        stages.victim()
    else:
        stages.clean_model()


_last: tuple[str, Stages] | None = None


def stages_for(setting: Setting, registry: Registry) -> Stages:
    """The setting's :class:`Stages`, reusing the previous call's when it is the same victim's:
    consecutive detection units of one victim in a process then load its data and weights once."""
    global _last
    s = setting
    key = stable_hash(
        [spec.key for spec in (s.dataset, s.model, s.attack)],
        [s.seed, s.training, s.affected_points, s.clean_model, s.device, s.cache_dir, s.threads],
        [s.stage_timeout, s.fresh, s.upstream_ready, s.deterministic, id(registry)],
    )
    if _last is None or _last[0] != key:
        _last = (key, Stages(s, registry))
    return _last[1]


def forget_stages() -> None:
    """Drop the kept :class:`Stages` (the runner calls it around a run: a later run in the same
    process must see the cache as it is then, and the dataset should not outlive the run)."""
    global _last
    _last = None
