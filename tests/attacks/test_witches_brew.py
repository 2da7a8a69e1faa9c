"""Witches' Brew: clean-label, bounded poisons of the intended class that match the target gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_trainer, train_victim

from deltabench.attacks.witches_brew import WitchesBrew, gradient_matching_loss
from deltabench.components import AttackContext

FAST = dict(steps=12, restarts=1, surrogate_epochs=4)


def brew(digits, seed=0, **params):
    attack = WitchesBrew(**{**FAST, **params})
    return attack.poison(AttackContext(digits, np.random.default_rng(seed), make_trainer(digits, seed)))


def test_gradient_matching_loss_known_values():
    g = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    assert float(gradient_matching_loss(g, g)) == pytest.approx(0.0, abs=1e-6)
    assert float(gradient_matching_loss(g, [-t for t in g])) == pytest.approx(2.0, abs=1e-6)
    assert float(gradient_matching_loss(g, [torch.tensor([2.0, -1.0]), torch.tensor([[0.0]])])) == (
        pytest.approx(1.0, abs=1e-6)
    )


def test_poisons_are_clean_label_bounded_and_budgeted(digits):
    eps = 16 / 255
    data = brew(digits, seed=1, eps=eps, budget=40, intended_class=3)
    idx = data.poison_indices
    assert idx.size == 40 and (digits.train.y[idx] == 3).all()
    assert torch.equal(data.train.y, digits.train.y)  # labels unchanged everywhere
    diff = data.train.x - digits.train.x
    assert float(diff.abs().max()) <= eps + 1e-6
    assert float(data.train.x.min()) >= 0 and float(data.train.x.max()) <= 1
    changed = np.flatnonzero(diff.flatten(1).abs().amax(1).numpy() > 0)
    assert set(changed) <= set(idx) and changed.size > 0.9 * idx.size
    # The triggered test set is the single target, labelled with the intended class.
    t = data.info["target_index"]
    assert len(data.triggered_test) == 1 and int(data.triggered_test.y[0]) == 3
    assert torch.equal(data.triggered_test.x[0], digits.test.x[t])
    assert data.target_class == 3 and data.source_class == int(digits.test.y[t]) != 3


def test_default_budget_is_a_tenth_capped_by_the_class(digits):
    data = brew(digits, seed=0, steps=1, intended_class=2)
    assert data.poison_indices.size == min(round(0.1 * len(digits.train)), int((digits.train.y == 2).sum()))


def test_brewing_aligns_the_gradients_and_is_deterministic(digits):
    a = brew(digits, seed=2, restarts=2, steps=24, eps=64 / 255)
    b = brew(digits, seed=2, restarts=2, steps=24, eps=64 / 255)
    assert torch.equal(a.train.x, b.train.x) and np.array_equal(a.poison_indices, b.poison_indices)
    assert a.info["target_index"] == b.info["target_index"]
    assert a.info["matching_loss"] == min(a.info["restart_losses"]) and len(a.info["restart_losses"]) == 2
    # Clean intended-class images already pull the head the same way; brewing must align it more.
    # 24 signed-Adam steps on 4-epoch surrogates at eps 64/255: measured 0.75 of the clean loss on
    # seed 2 under 1 and 2 threads; 0.43-0.83 over seeds 0-9 under 1 thread, 0.44-0.75 over seeds
    # 0-7 under 2 (mean 0.59), so 0.9 sits 0.07 above the worst of 18 brews. At the default 16/255
    # only 0.92, too near 1.
    assert a.info["matching_loss"] < 0.9 * a.info["clean_matching_loss"]
    c = brew(digits, seed=3)
    assert c.info["target_index"] != a.info["target_index"] or not torch.equal(c.train.x, a.train.x)


@pytest.mark.slow
def test_full_brew_moves_a_retrained_victim_towards_the_intended_class(digits):
    """The full 250-step brew (the digits setting of docs/attacks.md, attacker-chosen low-margin
    target): a victim retrained from scratch on the poisons gives the target far more
    intended-class probability than a clean model.

    One brew-and-retrain trial is chaotic in float rounding (it changes with the CPU and the thread
    count; pinning one thread does not make it the same on another CPU), so the assertions are those
    with margin in the measured trials: matching loss 0.06-0.15 against 0.24-0.72 for the
    unperturbed poisons; victim p(intended) 0.79-0.97 against 0.03-0.21 for seed-matched clean
    models (5 of 5 script trials, docs/attacks.md). Whether the prediction flips is not asserted:
    the attack took in 11 of 13 recorded trials (script and runner), so one trial can miss it.
    """
    params = dict(
        eps=64 / 255, pairing="runner-up", ensemble=3, restarts=1, steps=250, target_selection="low-margin"
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # for speed only: the 250-step brew's small convolutions crawl on 2 threads
    try:
        data = WitchesBrew(**params).poison(
            AttackContext(digits, np.random.default_rng(4), make_trainer(digits, 1004))
        )
    finally:
        torch.set_num_threads(threads)
    victim = train_victim(digits, data, seed=4).model
    clean = make_trainer(digits, seed=5).fit_new(digits.train)
    target = data.triggered_test.x

    def p_intended(model):
        with torch.no_grad():
            return float(torch.softmax(model(target), 1)[0, data.target_class])

    assert data.info["matching_loss"] < 0.5 * data.info["clean_matching_loss"]
    assert p_intended(victim) > p_intended(clean) + 0.3


@pytest.mark.parametrize("intended_class", [None, 4])
def test_low_margin_selection_picks_a_target_the_surrogate_barely_classifies(digits, intended_class):
    """``target_selection: low-margin`` draws the target among the correctly classified test images
    with the smallest surrogate margin over the rival (runner-up, or the given intended class)."""
    seed, fraction = 3, 0.05
    params = dict(steps=1, pairing="runner-up", target_selection="low-margin", margin_fraction=fraction)
    data = brew(digits, seed=seed, intended_class=intended_class, **params)
    # The surrogate is the first model the attack's trainer fits: rebuild it from the same seed.
    surrogate = make_trainer(digits, seed).fit_new(digits.train, epochs=FAST["surrogate_epochs"]).eval()
    with torch.no_grad():
        logits = surrogate(digits.test.x)
    y = digits.test.y
    correct = logits.argmax(1) == y
    others = logits.scatter(1, y[:, None], float("-inf"))
    rival = others.argmax(1) if intended_class is None else torch.full_like(y, intended_class)
    margin = logits.gather(1, y[:, None])[:, 0] - logits.gather(1, rival[:, None])[:, 0]
    eligible = correct & (y != intended_class) if intended_class is not None else correct
    t = data.info["target_index"]
    assert bool(eligible[t])
    assert data.target_class == int(rival[t])
    # Within the lowest `fraction` of the eligible margins (a uniform draw would be so with p = 0.05).
    assert int((margin[eligible] < margin[t]).sum()) < round(fraction * int(eligible.sum()))


def test_retraining_variant_retrains_the_surrogates_on_the_current_poisons(digits):
    """``retrain_rounds: 2`` with an ensemble of 2: two clean surrogates, then twice two surrogates
    trained from scratch on the training set carrying the poisons brewed so far (and nothing else)."""
    seen = []

    class RecordingTrainer(type(make_trainer(digits, 0))):
        def fit_new(self, data, **kwargs):
            seen.append(data.x.clone())
            return super().fit_new(data, **kwargs)

    base = make_trainer(digits, 5)
    trainer = RecordingTrainer(base._build_model, base.recipe, base.device, base.generator)
    eps = 32 / 255
    attack = WitchesBrew(**{**FAST, "surrogate_epochs": 2, "steps": 6}, eps=eps, ensemble=2, retrain_rounds=2)
    data = attack.poison(AttackContext(digits, np.random.default_rng(5), trainer))
    assert len(seen) == 2 + 2 * 2
    idx = torch.from_numpy(data.poison_indices)
    rest = torch.ones(len(digits.train), dtype=torch.bool)
    rest[idx] = False
    assert all(torch.equal(x, digits.train.x) for x in seen[:2])
    for x in seen[2:]:
        assert torch.equal(x[rest], digits.train.x[rest])
        moved = (x[idx] - digits.train.x[idx]).abs()
        assert float(moved.max()) <= eps + 1e-6 and float(moved.amax((1, 2, 3)).gt(0).float().mean()) > 0.9
    # The rounds come at steps 2 and 4: the second retraining sees further-brewed poisons.
    assert not torch.equal(seen[2][idx], seen[4][idx])
    assert torch.equal(seen[2], seen[3]) and torch.equal(seen[4], seen[5])
    assert float((data.train.x - digits.train.x).abs().max()) <= eps + 1e-6
