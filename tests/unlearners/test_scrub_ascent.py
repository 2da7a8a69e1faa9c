"""SCRUB as the paper's code runs it: ascent on CE + alpha KL, one pass over the forget set per round."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_trainer

from deltabench.components import UnlearningContext
from deltabench.training import TrainingRecipe
from deltabench.unlearners.scrub import Scrub

PLAIN = TrainingRecipe(epochs=1, translate=0, hflip=False)  # no augmentation: batches are known


def _ctx(victim, forget: np.ndarray) -> UnlearningContext:
    model = make_trainer(victim.dataset).new_model()
    model.load_state_dict(victim.model.state_dict())
    return UnlearningContext(
        model=model.eval(),
        train=victim.poisoned.train,
        forget=forget,
        retain=np.setdiff1d(np.arange(len(victim.poisoned.train)), forget),
        num_classes=victim.dataset.num_classes,
        rng=np.random.default_rng(0),
        trainer=make_trainer(victim.dataset, recipe=PLAIN),
    )


def test_rounds_take_one_pass_over_the_forget_set(badnet_victim):
    # 300 forget points at batch 128: ceil(300 / 128) = 3 ascent steps per round. With min_steps
    # pass (the code's rule) the 957 retained points are ceil(957 / 128) = 8 descent steps, so
    # 40 steps = 3 + 8, 3 + 8, 3 + 8, 3 + 4: 12 ascent and 28 descent steps.
    forget = np.arange(300)
    scrub = Scrub(min_steps="pass")
    scrub.unlearn(_ctx(badnet_victim, forget))
    assert len(badnet_victim.poisoned.train) - 300 == 957
    assert scrub.steps_taken == {"max": 12, "min": 28}
    # default: the descent phase takes all remaining steps after the first pass over F
    default = Scrub()
    default.unlearn(_ctx(badnet_victim, forget))
    assert default.steps_taken == {"max": 3, "min": 37}


@pytest.mark.parametrize("max_loss", ["ce+kl", "kl"])
def test_an_ascent_step_climbs_the_chosen_loss(badnet_victim, max_loss):
    """One plain SGD step (no momentum, no decay, lr 0.025 at step 0) on a forget set of one batch,
    by hand: theta + lr * grad(loss), with loss = CE + alpha * KL * T^2 (the code) or KL * T^2
    (the SCRUB paper), KL against the frozen victim in eval mode, the student in train mode."""
    poisons = badnet_victim.poisoned.poison_indices
    assert poisons.size <= 128  # one batch: its order does not change the mean loss
    ctx = _ctx(badnet_victim, poisons.copy())
    scrub = Scrub(steps=1, max_loss=max_loss, momentum=0.0, weight_decay=0.0)
    start = copy.deepcopy(ctx.model)
    out = scrub.unlearn(ctx)
    assert scrub.steps_taken == {"max": 1, "min": 0}

    student, teacher = copy.deepcopy(start).train(), copy.deepcopy(start).eval()
    x, y = ctx.train.x[poisons], ctx.train.y[poisons]
    logits = student(x)
    with torch.no_grad():
        p_t = F.softmax(teacher(x) / 4.0, dim=1)
    kl = F.kl_div(F.log_softmax(logits / 4.0, dim=1), p_t, reduction="batchmean") * 16.0
    loss = F.cross_entropy(logits, y) + 0.001 * kl if max_loss == "ce+kl" else kl
    grads = torch.autograd.grad(loss, list(student.parameters()))
    for got, p0, g in zip(out.parameters(), start.parameters(), grads, strict=True):
        torch.testing.assert_close(got.detach(), p0.detach() + 0.025 * g, atol=2e-6, rtol=1e-4)
