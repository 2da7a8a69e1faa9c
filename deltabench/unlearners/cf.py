"""Catastrophic forgetting (CF): keep training the victim on the retained points only."""

from __future__ import annotations

import numpy as np
from pydantic import Field
from torch import nn

from ..components import Params, Unlearner, UnlearningContext
from ..hookspecs import hookimpl


class CatastrophicForgetting(Unlearner):
    """CF: fine-tune the victim on the training set minus the flagged points, with the recipe.

    The paper's code ran the full 40-epoch recipe from the victim's weights, schedule restarted.

    ``epochs`` overrides the recipe's epoch count (the schedule scales with it). ``retain_fraction``
    < 1 fine-tunes on a random subset of the retained points (cheaper; ours, not in the paper). An
    empty flagged set still fine-tunes: CF never looks at the forget set.
    """

    name = "cf"

    class Params(Params):
        epochs: int | None = Field(None, ge=1, description="fine-tuning epochs; null = the recipe's")
        retain_fraction: float = Field(
            1.0, gt=0, le=1, description="share of the retained points to fine-tune on (random subset)"
        )

    def unlearn(self, ctx: UnlearningContext) -> nn.Module:
        retain = ctx.retain
        if self.params.retain_fraction < 1 and len(retain):
            keep = max(1, int(round(self.params.retain_fraction * len(retain))))
            retain = np.sort(ctx.rng.choice(retain, size=keep, replace=False))
        return ctx.trainer.fit(ctx.model, ctx.train.subset(retain), epochs=self.params.epochs, desc="cf")


@hookimpl
def register_unlearners(register) -> None:
    register(CatastrophicForgetting)
