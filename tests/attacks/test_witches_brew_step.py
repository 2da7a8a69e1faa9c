"""Witches' Brew's step size: lr_rule paper is forest's rule 2, tau * pbatch / 512 in normalised units."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_trainer

from deltabench.attacks.witches_brew import WitchesBrew
from deltabench.components import AttackContext


@pytest.mark.parametrize(
    ("params", "pixel_step"),
    [
        # forest's rule 2: 0.1 * 512 / 512 / 1 = 0.1 normalised units = 0.1 * std pixels per step
        (dict(lr_rule="paper", batch_size=512), lambda std: 0.1 * std),
        # the same rule at pbatch 128 and an ensemble of 2: 0.1 * 128 / 512 / 2 = 0.0125 units
        (dict(lr_rule="paper", batch_size=128, ensemble=2), lambda std: 0.0125 * std),
        # ours: 0.1 x eps pixels whatever the batch
        (dict(lr_rule="eps", batch_size=512), lambda std: 0.1 * 0.5),
    ],
)
def test_first_signed_adam_step_has_the_rule_s_size(digits, params, pixel_step):
    """Adam's first step moves every coordinate with a non-zero gradient by exactly lr (bias-corrected
    m / sqrt(v) = sign(g)), so after one step |delta - delta_init| is the rule's step in pixel units
    wherever no bound clips it (eps 0.5 keeps the l_inf bound out of the way)."""
    attack = WitchesBrew(eps=0.5, steps=1, restarts=1, augment=False, **params)
    ctx = AttackContext(digits, np.random.default_rng(0), make_trainer(digits))
    surrogate = ctx.trainer.new_model().eval()
    x_p = digits.train.x[digits.train.y == 3][:40]
    y_p = torch.full((len(x_p),), 3)
    loss = F.cross_entropy(surrogate(digits.test.x[:1]), torch.tensor([3]))
    target_grad = [g.detach() for g in torch.autograd.grad(loss, list(surrogate.parameters()))]
    init = (torch.randn(x_p.shape, generator=torch.Generator().manual_seed(5)) * 0.5).clamp(-0.5, 0.5)
    init = (x_p + init).clamp(0, 1) - x_p  # the brew's initialisation, drawn from the same seed
    delta, _ = attack._brew(
        [surrogate], x_p, y_p, [target_grad], ctx, torch.Generator().manual_seed(5), retrain=None
    )
    moved = (delta - init).abs()
    margin = 1e-5  # clipped coordinates end on a bound (up to float rounding): left out
    inside = (delta.abs() < 0.5 - margin) & (x_p + delta > margin) & (x_p + delta < 1 - margin)
    inside &= (x_p + init > margin) & (x_p + init < 1 - margin)
    steps = moved[inside & (moved > 1e-4)]  # the rest: zero gradient, moved only by float rounding
    assert steps.numel() > 100
    want = pixel_step(digits.std[0])
    torch.testing.assert_close(steps, torch.full_like(steps, want), atol=1e-5, rtol=1e-4)


def test_the_brew_backward_reaches_delta_alone_with_the_full_gradient():
    """``backward(inputs=[delta])``: the same delta gradient as a plain backward, and nothing
    accumulated in the surrogates' weights (on a GPU that is a ResNet's worth of memory per step)."""
    from types import SimpleNamespace

    from deltabench.attacks.witches_brew import _param_grad

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(144, 3))
    x, y = torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1])
    target = [g.detach() for g in _param_grad(model, F.cross_entropy(model(x[:1]), y[1:2]), False)]
    attack, ctx = WitchesBrew(augment=False), SimpleNamespace(trainer=SimpleNamespace(recipe=None))
    grads = []
    for inputs in (None, True):
        delta = torch.zeros_like(x).requires_grad_(True)
        loss = attack._matching_loss([model], x + delta, y, [target], ctx, None)
        loss.backward(inputs=[delta] if inputs else None)
        grads.append(delta.grad.clone())
        if inputs:
            assert all(p.grad is None for p in model.parameters())
        model.zero_grad(set_to_none=True)
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0
