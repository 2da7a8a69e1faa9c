"""CF, SSD, SCRUB and bad teacher on the BadNet digits victim with the oracle forget set."""

from __future__ import annotations

import numpy as np
import pytest
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
# the victims send more than 90% there.
REMOVED = 0.10


def _psr(model, victim) -> float:
    return poison_success_rate(model, victim.poisoned.triggered_test)


def _changed(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_victim_is_poisoned(badnet_victim):
    assert _psr(badnet_victim.model, badnet_victim) > 0.9


def test_eu_on_oracle_set_removes_the_backdoor(badnet_victim):
    assert _psr(Retrain().unlearn(_ctx(badnet_victim)), badnet_victim) < 0.05


# PSR with the oracle forget set on the five victims of ``badnet_victims`` (the fixture's poisons,
# torch seeds 0-4; one victim is one draw of what another CPU or thread count trains). Measured
# over 23 victims (torch seeds 0-8 of the fixture's poisons under 1 thread, 0-4 under 2; 7 other
# poison draws under 1 thread, 2 under 2), with the same contexts as here:
# - CF, 30 epochs (the quick suite's setting; its recipe's 15 epochs leave 0-25%, docs): 0-7.7%.
#   Asserted: every victim <= 15%, the mean of the five <= 10%.
# - SCRUB: 0-5.8%. Asserted: every victim <= 10%.
# - bad teacher (40 steps): 0-19.2%, median 9.6%: it removes most of the backdoor, not reliably
#   all but 10% of it. Asserted: every victim <= 30% (5 images above the worst).
# - SSD (alpha 10, lam 1): 0-9.6% on 21 victims, 92% and 100% on 2 (torch seed 1 of the fixture's
#   poisons under 1 thread is one; 0% under 2). Asserted: at least 3 of the 5 <= 10% (~0.7%
#   chance that another machine's five fail it).
# An unlearner that leaves the victim as it was keeps PSR > 90% on every victim and fails each.
ORACLE_REMOVAL = {  # name: (unlearner, bound on every victim, bound on the mean, victims <= 10%)
    "cf": (lambda: CatastrophicForgetting(epochs=30), 0.15, REMOVED, 0),
    "scrub": (Scrub, REMOVED, REMOVED, 3),
    "bad-teacher": (BadTeacher, 0.30, 0.30, 0),
    "ssd": (SelectiveSynapticDampening, 1.0, 1.0, 3),
}


@pytest.mark.parametrize("name", sorted(ORACLE_REMOVAL))
def test_unlearners_on_the_oracle_set_remove_the_backdoor(badnet_victims, name):
    make, each, mean, removed_on = ORACLE_REMOVAL[name]
    assert all(_psr(v.model, v) > 0.9 for v in badnet_victims)
    psr = np.array([_psr(make().unlearn(_ctx(v)), v) for v in badnet_victims])
    assert psr.max() <= each and psr.mean() <= mean and (psr <= REMOVED).sum() >= removed_on, psr


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


def test_ssd_with_empty_forget_set_returns_victim(badnet_victim):
    ctx = _ctx(badnet_victim, forget=np.empty(0, np.int64))
    out = SelectiveSynapticDampening().unlearn(ctx)
    assert not _changed(out, badnet_victim.model)


def test_scrub_runs_its_schedule(badnet_victim):
    scrub = Scrub()
    out = scrub.unlearn(_ctx(badnet_victim))
    assert scrub.steps_taken == {"max": 1, "min": 39}
    assert _changed(out, badnet_victim.model)
    rounds = Scrub(steps=10, max_steps=2, min_steps=3)
    rounds.unlearn(_ctx(badnet_victim))
    assert rounds.steps_taken == {"max": 4, "min": 6}  # 2+3, 2+3


def test_scrub_and_bad_teacher_keep_victim_on_empty_forget_set(badnet_victim):
    for un in (Scrub(), BadTeacher()):
        out = un.unlearn(_ctx(badnet_victim, forget=np.empty(0, np.int64)))
        assert not _changed(out, badnet_victim.model)


def test_bad_teacher_runs_40_steps(badnet_victim):
    badt = BadTeacher()
    out = badt.unlearn(_ctx(badnet_victim))
    assert badt.steps_taken == 40
    assert _changed(out, badnet_victim.model)
