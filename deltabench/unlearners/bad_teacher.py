"""Bad teacher (BadT; Chundawat, Tarun, Mandal and Kankanhalli 2023)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..components import Unlearner, UnlearningContext
from ..hookspecs import hookimpl
from ..training import channels_last
from ._steps import Batches, CodeOptimizerParams, code_optimizer, frozen


class BadTeacher(Unlearner):
    """BadT: distil from the victim on retained points and from a random network on flagged ones.

    As in the code the Δ-Influence authors ran: batches are drawn from the whole training set with
    each point marked flagged or not; the target distribution is the random ("incompetent")
    teacher's softmax for flagged points and the victim copy's for the rest, at temperature 1; the
    loss is ``kl_div(log_softmax(student), target)`` with PyTorch's default elementwise-mean
    reduction (i.e. divided by batch x classes, as the code). 40 optimiser steps, SGD momentum 0.9,
    weight decay 5e-4, lr 0.025 decaying linearly (see ``_steps.code_optimizer``). Batch 128 (ours:
    the code used 512 on 50k CIFAR images, 0.4 epochs in 40 steps; on the 1.3k digits 512 would be
    16 passes and cost 3x more). Batches are augmented with the recipe's translation / flips; the
    student is in train mode. The random teacher comes from ``ctx.trainer.new_model()`` (same
    architecture, torch's seeded RNG). An empty forget set returns the victim unchanged.
    """

    name = "bad-teacher"
    version = "2"  # 2: channels-last steps (same maths, different float rounding)

    class Params(CodeOptimizerParams):
        steps: int = Field(40, ge=1, description="optimiser steps")
        temperature: float = Field(1.0, gt=0, description="KL temperature")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.steps_taken = 0

    def unlearn(self, ctx: UnlearningContext) -> nn.Module:
        self.steps_taken = 0
        if len(ctx.forget) == 0:
            return ctx.model
        p = self.params
        rec = ctx.trainer.recipe
        student = ctx.model
        good, bad = copy.deepcopy(student), ctx.trainer.new_model()
        frozen(good, bad)
        marks = torch.zeros(len(ctx.train))
        marks[torch.as_tensor(ctx.forget, dtype=torch.long)] = 1.0
        batches = Batches(ctx.train, p.batch_size, ctx.trainer.generator, rec.translate, rec.hflip)
        opt, sched = code_optimizer(student, p.lr, p.weight_decay, p.momentum, p.steps)
        with channels_last(student, good, bad):
            student.train()
            t = p.temperature
            for _ in range(p.steps):
                x, _, flagged = batches.next(ctx.device, extra=marks)
                with torch.no_grad():
                    w = flagged[:, None]
                    target = w * F.softmax(bad(x) / t, 1) + (1 - w) * F.softmax(good(x) / t, 1)
                # elementwise mean, as kl_div's legacy default "mean" that the code used (without its warning)
                loss = F.kl_div(F.log_softmax(student(x) / t, 1), target, reduction="sum") / target.numel()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                self.steps_taken += 1
        return student.eval()


@hookimpl
def register_unlearners(register) -> None:
    register(BadTeacher)
