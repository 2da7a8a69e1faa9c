"""Dirty-label poisoning shared by BadNet and the frequency trigger: draw the poisons from the source
class, give them the trigger and the target label, trigger every source-class test image.

A private module listed in ``stages.CORE_MODULES``: it is in the core digest, so an edit here misses
the cache of both attacks (a component's own module is covered by its ``version``, a shared helper
by the digest).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pydantic import ValidationInfo, field_validator

from ..artifacts import ImageSet, PoisonedData
from ..components import AttackContext, Params

__all__ = ["RelabelParams", "choose_budget", "relabel_poison"]


def choose_budget(budget: float, available: int) -> int:
    """A budget below 1 is a fraction of ``available``; from 1 up it is a count."""
    count = round(budget * available) if budget < 1 else int(budget)
    return max(1, min(count, available))


def relabel_poison(
    ctx: AttackContext,
    source: int,
    target: int,
    budget: float,
    make_trigger: Callable[[], tuple[Callable[[torch.Tensor], torch.Tensor], dict[str, Any]]],
) -> PoisonedData:
    """Dirty-label poisoning, shared by BadNet and the frequency trigger.

    ``budget`` source-class training images (drawn with ``ctx.rng``) get the trigger and the target
    label; every source-class test image gets the trigger. ``make_trigger`` is called after the
    draw and returns the function that applies the trigger plus facts for ``info``.
    """
    data = ctx.dataset
    if source == target:
        raise ValueError("source and target classes must differ")
    if max(source, target) >= data.num_classes:
        raise ValueError(f"classes must be < {data.num_classes}")
    candidates = np.flatnonzero(data.train.y.numpy() == source)
    count = choose_budget(budget, len(candidates))
    poison_idx = np.sort(ctx.rng.choice(candidates, size=count, replace=False))
    apply, facts = make_trigger()
    train = data.train.clone()
    pidx = torch.from_numpy(poison_idx)
    train.x[pidx] = apply(train.x[pidx])
    train.y[pidx] = target
    test_src = data.test.y == source
    triggered = ImageSet(
        apply(data.test.x[test_src]), torch.full((int(test_src.sum()),), target, dtype=torch.long)
    )
    return PoisonedData(train, poison_idx, triggered, target, source, {"poison_count": count, **facts})


class RelabelParams(Params):
    """Base of dirty-label attacks' parameters (``source`` and ``target`` fields): they must differ."""

    @field_validator("target", check_fields=False)
    @classmethod
    def _target_is_not_source(cls, target: int, info: ValidationInfo) -> int:
        if target == info.data.get("source"):
            raise ValueError(
                f"target is the source class ({target}): relabelled poisons would not change label; "
                "pick a target class other than the source"
            )
        return target
