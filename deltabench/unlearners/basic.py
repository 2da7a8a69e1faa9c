"""The reference unlearner (``none``) and exact unlearning by retraining (EU)."""

from __future__ import annotations

from torch import nn

from ..components import Params, Unlearner, UnlearningContext
from ..hookspecs import hookimpl


class KeepVictim(Unlearner):
    """Does nothing: the victim itself, the reference row."""

    name = "none"
    reference = True

    def unlearn(self, ctx: UnlearningContext) -> nn.Module:
        return ctx.model


class Retrain(Unlearner):
    """Exact unlearning (EU): retrain from scratch on the training set minus the flagged points."""

    name = "eu"

    class Params(Params):
        pass

    def unlearn(self, ctx: UnlearningContext) -> nn.Module:
        return ctx.trainer.fit_new(ctx.train.subset(ctx.retain), desc="eu retrain")


@hookimpl
def register_unlearners(register) -> None:
    register(KeepVictim)
    register(Retrain)
