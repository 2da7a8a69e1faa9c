"""BadNet (Gu et al. 2017) as in the paper: a fixed pixel trigger and flipped labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator

from ..artifacts import ImageSet, PoisonedData
from ..components import Attack, AttackContext, DatasetInfo, ParamProblem, Params, class_problems
from ..hookspecs import hookimpl

__all__ = ["BadNet", "RelabelParams", "stamp_trigger", "choose_budget", "relabel_poison"]

# The paper's trigger: an X-like pattern of 4 pixels inside the bottom-right 3x3 corner, given as
# (row, col) offsets from the bottom-right pixel. On CIFAR-10 (32x32) these are (28,30), (30,30),
# (29,29), (30,28), i.e. offsets from (31, 31) of (-3,-1), (-1,-1), (-2,-2), (-1,-3).
PAPER_TRIGGER = [(-3, -1), (-1, -1), (-2, -2), (-1, -3)]


def stamp_trigger(x: torch.Tensor, pixels: list[tuple[int, int]], value: float) -> torch.Tensor:
    """A copy of images ``x`` with ``value`` written at the given (row, col) offsets from the
    bottom-right corner, on every channel."""
    out = x.clone()
    h, w = out.shape[-2:]
    for dr, dc in pixels:
        out[..., h - 1 + dr, w - 1 + dc] = value
    return out


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


class BadNet(Attack):
    """Stamp a pixel trigger on source-class training images and relabel them to the target."""

    name = "badnet"

    class Params(RelabelParams):
        source: int = Field(8, ge=0, description="class the poisons are taken from (ship=8 on CIFAR-10)")
        target: int = Field(5, ge=0, description="class the trigger should cause (dog=5 on CIFAR-10)")
        budget: float = Field(
            0.5,
            gt=0,
            description="poisons: a fraction (<1) of the source class's training images, or a count",
        )
        pixels: list[tuple[int, int]] = Field(
            PAPER_TRIGGER,
            description="trigger pixels as (row, col) offsets from the bottom-right corner",
        )
        value: float = Field(
            1.0,
            ge=0,
            le=1,
            description="trigger pixel value (paper: 0 on CIFAR; bright on black-background digits)",
        )

        @field_validator("pixels")
        @classmethod
        def _inside(cls, pixels: list[tuple[int, int]]) -> list[tuple[int, int]]:
            if any(dr > 0 or dc > 0 for dr, dc in pixels):
                raise ValueError(
                    "offsets count back from the bottom-right pixel (0, 0): make every row and column "
                    "offset 0 or negative"
                )
            return pixels

    def check_dataset(self, data: DatasetInfo) -> list[ParamProblem]:
        p = self.params
        problems = class_problems(data, source=p.source, target=p.target)
        _, h, w = data.image_shape
        outside = [(dr, dc) for dr, dc in p.pixels if dr <= -h or dc <= -w]
        if outside:
            problems.append(
                ParamProblem(
                    "pixels",
                    f"offset {list(outside[0])} lies outside the {h}x{w} images of {data.name}; "
                    f"keep row offsets above -{h} and column offsets above -{w}",
                )
            )
        return problems

    def poison(self, ctx: AttackContext) -> PoisonedData:
        p = self.params
        return relabel_poison(
            ctx, p.source, p.target, p.budget, lambda: (lambda x: stamp_trigger(x, p.pixels, p.value), {})
        )


@hookimpl
def register_attacks(register) -> None:
    register(BadNet)
