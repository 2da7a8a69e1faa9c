"""BadNet (Gu et al. 2017) as in the paper: a fixed pixel trigger and flipped labels."""

from __future__ import annotations

import torch
from pydantic import Field, field_validator

from ..artifacts import PoisonedData
from ..components import Attack, AttackContext, DatasetInfo, ParamProblem, class_problems
from ..hookspecs import hookimpl
from ._relabel import RelabelParams, choose_budget, relabel_poison

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
