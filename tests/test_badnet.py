"""BadNet: the trigger lands where the paper puts it, and the victim learns the backdoor."""

from __future__ import annotations

import numpy as np
import torch
from conftest import make_trainer

from deltabench.attacks.badnet import PAPER_TRIGGER, BadNet, stamp_trigger
from deltabench.components import AttackContext, UnlearningContext
from deltabench.metrics import accuracy, poison_success_rate
from deltabench.unlearners.basic import Retrain


def test_paper_trigger_pixels_on_cifar_geometry():
    img = torch.ones(1, 3, 32, 32)
    stamped = stamp_trigger(img, PAPER_TRIGGER, 0.0)
    zeros = {(int(r), int(c)) for r, c in (stamped[0, 0] == 0).nonzero().tolist()}
    assert zeros == {(28, 30), (30, 30), (29, 29), (30, 28)}
    assert (stamped[:, 1] == stamped[:, 0]).all()  # every channel


def test_poisons_are_source_images_relabelled_with_the_trigger(digits):
    attack = BadNet(source=8, target=5, budget=0.5)
    data = attack.poison(AttackContext(digits, np.random.default_rng(0), make_trainer(digits)))
    idx = data.poison_indices
    n_eights = int((digits.train.y == 8).sum())
    assert len(idx) == round(0.5 * n_eights)
    assert (digits.train.y[idx] == 8).all() and (data.train.y[idx] == 5).all()
    assert (data.train.x[idx][..., 6, 6] == 1.0).all() and (data.train.x[idx][..., 4, 6] == 1.0).all()
    untouched = np.setdiff1d(np.arange(len(digits.train)), idx)
    assert torch.equal(data.train.x[untouched], digits.train.x[untouched])
    assert len(data.triggered_test) == int((digits.test.y == 8).sum())
    assert (data.triggered_test.y == 5).all()


def test_victim_psr_is_high_and_clean_accuracy_kept(badnet_victim, digits):
    clean = make_trainer(digits, seed=0).fit_new(digits.train)
    victim_acc = accuracy(badnet_victim.model, digits.test)
    assert poison_success_rate(badnet_victim.model, badnet_victim.poisoned.triggered_test) >= 0.9
    assert victim_acc >= accuracy(clean, digits.test) - 0.03


def test_eu_on_the_true_poisons_removes_the_backdoor(badnet_victim, digits):
    v = badnet_victim
    forget = v.poisoned.poison_indices
    ctx = UnlearningContext(
        model=v.model,
        train=v.poisoned.train,
        forget=forget,
        retain=np.setdiff1d(np.arange(len(v.poisoned.train)), forget),
        num_classes=10,
        rng=np.random.default_rng(0),
        trainer=make_trainer(digits, seed=1),
    )
    model = Retrain().unlearn(ctx)
    assert poison_success_rate(model, v.poisoned.triggered_test) < 0.05
    assert accuracy(model, digits.test) > 0.9
