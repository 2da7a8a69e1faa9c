"""CF, SSD, SCRUB and bad teacher on the BadNet digits victim with the oracle forget set."""

from __future__ import annotations

import numpy as np
import torch
from conftest import make_trainer

from deltabench.components import UnlearningContext
from deltabench.metrics import poison_success_rate
from deltabench.unlearners.bad_teacher import BadTeacher
from deltabench.unlearners.basic import Retrain
from deltabench.unlearners.cf import CatastrophicForgetting
from deltabench.unlearners.scrub import Scrub
from deltabench.unlearners.ssd import SelectiveSynapticDampening, importances


def _ctx(victim, forget: np.ndarray | None = None, seed: int = 0) -> UnlearningContext:
    forget = victim.poisoned.poison_indices if forget is None else forget
    model = make_trainer(victim.dataset, seed).new_model()
    model.load_state_dict(victim.model.state_dict())
    return UnlearningContext(
        model=model.eval(),
        train=victim.poisoned.train,
        forget=forget.copy(),
        retain=np.setdiff1d(np.arange(len(victim.poisoned.train)), forget),
        num_classes=victim.dataset.num_classes,
        rng=np.random.default_rng(seed),
        trainer=make_trainer(victim.dataset, seed),
    )


# "Removes the backdoor": at most 10% of the triggered test 8s (5 of 52) still reach the target;
# the victim sends more than 90% there. The measured spreads below stay under it with margin.
REMOVED = 0.10


def _psr(model, victim) -> float:
    return poison_success_rate(model, victim.poisoned.triggered_test)


def _changed(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_victim_is_poisoned(badnet_victim):
    assert _psr(badnet_victim.model, badnet_victim) > 0.9


def test_eu_on_oracle_set_removes_the_backdoor(badnet_victim):
    assert _psr(Retrain().unlearn(_ctx(badnet_victim)), badnet_victim) < 0.05


def test_cf_on_oracle_set_removes_the_backdoor(badnet_victim):
    """CF with 30 epochs (the quick suite's setting) on the true poisons' complement: measured PSR
    0-3.8% over 15 runs (5 victims x 3 CF seeds, docs/detectors-and-unlearners.md); the recipe's own
    length leaves 0-25% (4 of 15 below 5%), so it is not the setting for a known answer."""
    assert _psr(CatastrophicForgetting(epochs=30).unlearn(_ctx(badnet_victim)), badnet_victim) <= REMOVED


def test_cf_trains_on_empty_forget_set(badnet_victim):
    out = CatastrophicForgetting(epochs=1).unlearn(_ctx(badnet_victim, forget=np.empty(0, np.int64)))
    assert _changed(out, badnet_victim.model)


def test_ssd_importances_are_mean_squared_batch_gradients(badnet_victim):
    """Known answer written out with autograd: two batches of 5 -> (g1^2 + g2^2) / 2 per weight."""
    model = _ctx(badnet_victim).model
    data = badnet_victim.poisoned.train.subset(np.arange(10))
    params = [p for _, p in model.named_parameters()]
    squares = []
    for half in (np.arange(5), np.arange(5, 10)):
        batch = data.subset(half)
        loss = torch.nn.functional.cross_entropy(model.eval()(batch.x), batch.y)
        squares.append([g.pow(2) for g in torch.autograd.grad(loss, params)])
    got = importances(model, data, batch_size=5)
    for (name, _), a, b in zip(model.named_parameters(), *squares, strict=True):
        torch.testing.assert_close(got[name], (a + b) / 2, rtol=1e-4, atol=1e-12)


def test_ssd_dampens_only_forget_dominated_weights(badnet_victim):
    alpha, lam = 10.0, 1.0
    ctx = _ctx(badnet_victim)
    before = {n: p.detach().clone() for n, p in ctx.model.named_parameters()}
    f_imp = importances(ctx.model, ctx.train.subset(ctx.forget), 512)
    r_imp = importances(ctx.model, ctx.train.subset(ctx.retain), 512)
    out = SelectiveSynapticDampening(alpha=alpha, lam=lam).unlearn(ctx)
    selected = 0
    for n, p in out.named_parameters():
        where = f_imp[n] > alpha * r_imp[n]
        selected += int(where.sum())
        assert torch.equal(p[~where], before[n][~where]), n  # no forget dominance: untouched
        expected = before[n][where] * (lam * r_imp[n][where] / f_imp[n][where]).clamp(max=1)
        torch.testing.assert_close(p[where], expected)
    assert selected > 0
    assert _psr(out, badnet_victim) <= REMOVED  # measured 0-1.9% (docs/detectors-and-unlearners.md)


def test_ssd_with_empty_forget_set_returns_victim(badnet_victim):
    ctx = _ctx(badnet_victim, forget=np.empty(0, np.int64))
    out = SelectiveSynapticDampening().unlearn(ctx)
    assert not _changed(out, badnet_victim.model)


def test_scrub_runs_its_schedule_and_removes_the_backdoor(badnet_victim):
    scrub = Scrub()
    out = scrub.unlearn(_ctx(badnet_victim))
    assert scrub.steps_taken == {"max": 1, "min": 39}
    assert _changed(out, badnet_victim.model)
    assert _psr(out, badnet_victim) <= REMOVED  # measured 0% on 3 victims (docs)
    rounds = Scrub(steps=10, max_steps=2, min_steps=3)
    rounds.unlearn(_ctx(badnet_victim))
    assert rounds.steps_taken == {"max": 4, "min": 6}  # 2+3, 2+3


def test_scrub_and_bad_teacher_keep_victim_on_empty_forget_set(badnet_victim):
    for un in (Scrub(), BadTeacher()):
        out = un.unlearn(_ctx(badnet_victim, forget=np.empty(0, np.int64)))
        assert not _changed(out, badnet_victim.model)


def test_bad_teacher_runs_40_steps_and_removes_the_backdoor(badnet_victim):
    badt = BadTeacher()
    out = badt.unlearn(_ctx(badnet_victim))
    assert badt.steps_taken == 40
    assert _changed(out, badnet_victim.model)
    assert _psr(out, badnet_victim) <= REMOVED  # measured 0-5.8% on 3 victims, batch 128 or 512 (docs)
