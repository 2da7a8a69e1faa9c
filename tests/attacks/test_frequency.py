"""The smooth-trigger attack: a band-limited, bounded trigger that backdoors a digits victim."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_trainer, train_victim

from deltabench.attacks.frequency import FrequencyTrigger, apply_trigger, dct_matrix, low_pass_mask
from deltabench.components import AttackContext
from deltabench.metrics import poison_success_rate

FAST = dict(steps=40, surrogate_epochs=4)


def poison(digits, seed=0, **params):
    attack = FrequencyTrigger(**{**FAST, **params})
    return attack.poison(AttackContext(digits, np.random.default_rng(seed), make_trainer(digits, seed)))


def test_dct_matrix_is_orthonormal():
    d = dct_matrix(8)
    assert torch.allclose(d @ d.T, torch.eye(8), atol=1e-5)


def test_apply_trigger_modes_stay_in_pixel_range():
    x = torch.rand(5, 3, 8, 8) * 0.5 + 0.2
    t = torch.full((3, 8, 8), 0.6)
    pix = apply_trigger(x, t, "pixel", (0.5,) * 3, (0.25,) * 3)
    assert torch.allclose(pix, (x + 0.6).clamp(0, 1))
    paper = apply_trigger(x, t, "rescale", (0.5,) * 3, (0.25,) * 3)
    # Per-image min-max rescale: every image spans exactly [0, 1]; a constant trigger then cancels.
    assert torch.allclose(paper.amin(dim=(1, 2, 3)), torch.zeros(5), atol=1e-6)
    assert torch.allclose(paper.amax(dim=(1, 2, 3)), torch.ones(5), atol=1e-6)
    lo, hi = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(paper, (x - lo) / (hi - lo), atol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_trigger_is_low_frequency_bounded_and_seeded(digits, norm):
    eps = 0.1 if norm == "linf" else 0.5
    a = poison(digits, seed=3, norm=norm, eps=eps, cutoff=0.3)
    b = poison(digits, seed=3, norm=norm, eps=eps, cutoff=0.3)
    c = poison(digits, seed=4, norm=norm, eps=eps, cutoff=0.3)
    trig = a.info["trigger"]
    size = trig.abs().max() if norm == "linf" else trig.norm()
    assert float(size) <= eps + 1e-5 and float(size) > 0.5 * eps
    d = dct_matrix(8)
    spectrum = d @ trig[0] @ d.T
    outside = spectrum * (1 - low_pass_mask(8, 8, 0.3))
    assert float(outside.abs().max()) < 1e-5 * float(spectrum.abs().max())
    # Determinism: the same seed gives the same trigger and poisons; another seed does not.
    assert torch.equal(a.info["trigger"], b.info["trigger"]) and torch.equal(a.train.x, b.train.x)
    assert np.array_equal(a.poison_indices, b.poison_indices)
    assert not torch.equal(a.info["trigger"], c.info["trigger"])


def test_poisons_are_relabelled_source_images(digits):
    data = poison(digits, source=8, target=5, budget=0.25)
    src = np.flatnonzero(digits.train.y.numpy() == 8)
    assert data.poison_indices.size == round(0.25 * src.size)
    assert set(data.poison_indices) <= set(src)
    assert (data.train.y[data.poison_indices] == 5).all()
    clean = np.setdiff1d(np.arange(len(digits.train)), data.poison_indices)
    assert torch.equal(data.train.x[clean], digits.train.x[clean])
    assert torch.equal(data.train.y[clean], digits.train.y[clean])
    assert len(data.triggered_test) == int((digits.test.y == 8).sum())
    assert (data.triggered_test.y == 5).all()


def test_smooth_trigger_backdoors_the_victim_and_not_a_clean_model(digits):
    data = poison(digits, source=8, target=5, budget=0.4, eps=0.1, steps=100, surrogate_epochs=None)
    victim = train_victim(digits, data, seed=0)
    clean = make_trainer(digits, seed=1).fit_new(digits.train)
    assert poison_success_rate(victim.model, data.triggered_test) >= 0.8
    assert poison_success_rate(clean, data.triggered_test) <= 0.1
