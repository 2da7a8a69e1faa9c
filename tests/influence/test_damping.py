"""The engine's damping presets: 'paper' is kronfluence 1.0.1's absolute default, 'heuristic' ours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kronfluence.arguments import ScoreArguments
from torch import nn

from deltabench.influence import InfluenceEngine, InfluenceSettings
from deltabench.influence.engine import PAPER_DAMPING
from deltabench.models import ImageClassifier


def test_paper_damping_is_kronfluences_default():
    # The paper's code passes no score arguments: its damping is ScoreArguments' default.
    assert ScoreArguments().damping_factor == PAPER_DAMPING == 1e-8
    assert InfluenceSettings(damping="paper").damping_value == 1e-8
    assert InfluenceSettings().damping_value is None  # heuristic: 0.1 x the mean eigenvalue
    assert InfluenceSettings(damping=0.25).damping_value == 0.25


@pytest.fixture(scope="module")
def head(digits):
    """Softmax regression on the digits' pixels (one Linear layer), trained briefly."""
    torch.manual_seed(0)
    model = ImageClassifier(nn.Flatten(), 64, 10, digits.mean, digits.std)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(50):
        opt.zero_grad()
        nn.functional.cross_entropy(model(digits.train.x), digits.train.y).backward()
        opt.step()
    return model.eval()


def _gradients(model, data, queries) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example gradients of a linear head, by hand: outer(dL/dlogits, [features, 1]) for the
    training cross-entropy, and for the queries' -margin (d/dlogits = softmax over the other classes
    minus the one-hot of the label)."""
    with torch.no_grad():
        a = torch.cat([model.features(data.x), torch.ones(len(data), 1)], 1).double()
        p = torch.softmax(model(data.x).double(), 1)
        g = torch.einsum("nc,nj->ncj", p - nn.functional.one_hot(data.y, 10), a).reshape(len(data), -1)
        aq = torch.cat([model.features(queries.x), torch.ones(len(queries), 1)], 1).double()
        others = model(queries.x).double().scatter(1, queries.y[:, None], float("-inf"))
        dq = torch.softmax(others, 1) - nn.functional.one_hot(queries.y, 10)
        gq = torch.einsum("nc,nj->ncj", dq, aq).reshape(len(queries), -1)
    return g, gq


@pytest.mark.parametrize("damping", ["paper", "heuristic", 0.5])
def test_damping_reaches_the_kronfluence_backend(head, digits, damping):
    """The diagonal strategy under the empirical Fisher, by hand: F = mean_i g_i^2 per parameter and
    score[q, i] = sum_k g_q,k g_i,k / (F_k + d), with d the preset (heuristic: 0.1 x mean F_k).
    Parameters no training example moves (the digits' blank border pixels) have g = 0 and add 0."""
    train = digits.train.subset(np.arange(40))
    queries = digits.test.subset(np.arange(12))
    settings = InfluenceSettings(backend="diagonal", damping=damping, use_empirical_fisher=True)
    got = InfluenceEngine(head, train, settings).scores(queries)
    g, gq = _gradients(head, train, queries)
    fisher = g.pow(2).mean(0)
    d = settings.damping_value
    d = 0.1 * float(fisher.mean()) if d is None else d
    want = ((gq / (fisher + d)) @ g.T).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    if damping == "paper":  # the two presets give answers this test tells apart
        heuristic = ((gq / (fisher + 0.1 * float(fisher.mean()))) @ g.T).numpy()
        assert np.abs(want - heuristic).max() > 0.2 * np.abs(want).max()
