"""The influence engine against a closed form, its one-pass property, its cache and TRAK backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from deltabench.artifacts import ImageSet
from deltabench.influence import InfluenceEngine, InfluenceSettings, clear_engine_cache, get_engine
from deltabench.influence.measurement import margin
from deltabench.models import ImageClassifier


@pytest.fixture(scope="module")
def logreg(digits):
    """Multinomial logistic regression on raw digit pixels: one Linear layer (650 parameters)."""
    torch.manual_seed(0)
    model = ImageClassifier(nn.Flatten(), 64, 10, digits.mean, digits.std)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=200, line_search_fn="strong_wolfe")
    x, y = digits.train.x, digits.train.y

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y) + 1e-3 * model.head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model.eval()


def closed_form(model, train: ImageSet, queries: ImageSet, damping, empirical: bool = False):
    """Influence of a softmax-regression head written out by hand, in float64 numpy.

    With features a (plus a constant 1 for the bias) and logits W a~, the per-example gradient of
    any loss is outer(dL/dlogits, a~); the Gauss-Newton Hessian of the cross-entropy, averaged over
    the training set, is mean_i kron(diag(p_i) - p_i p_i^T, a~_i a~_i^T).
    """
    with torch.no_grad():
        a_tr = model.features(train.x).double().numpy()
        a_q = model.features(queries.x).double().numpy()
        logits_tr = model(train.x).double().numpy()
        logits_q = model(queries.x).double().numpy()
    a_tr = np.hstack([a_tr, np.ones((len(a_tr), 1))])
    a_q = np.hstack([a_q, np.ones((len(a_q), 1))])
    p = np.exp(logits_tr - logits_tr.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot_tr = np.eye(10)[train.y.numpy()]
    g_tr = np.einsum("nc,nj->ncj", p - onehot_tr, a_tr).reshape(len(a_tr), -1)
    # d(-margin)/dlogits = softmax over the other classes (0 at y) minus the one-hot of y
    yq = queries.y.numpy()
    other = logits_q.copy()
    other[np.arange(len(yq)), yq] = -np.inf
    q = np.exp(other - other.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    g_q = np.einsum("nc,nj->ncj", q - np.eye(10)[yq], a_q).reshape(len(a_q), -1)
    if damping is None:  # identity preconditioner: the plain gradient dot product
        return g_q @ g_tr.T
    if empirical:  # empirical Fisher: mean outer product of the per-example loss gradients
        hess = g_tr.T @ g_tr / len(g_tr)
    else:
        h_out = np.einsum("nc,cd->ncd", p, np.eye(10)) - np.einsum("nc,nd->ncd", p, p)
        hess = np.einsum("ncd,nj,nk->cjdk", h_out, a_tr, a_tr).reshape(650, 650) / len(a_tr)
    lam = 0.1 * np.linalg.eigvalsh(hess).mean() if damping == "heuristic" else damping
    return g_q @ np.linalg.solve(hess + lam * np.eye(650), g_tr.T)


@pytest.fixture(scope="module")
def queries(digits):
    rng = np.random.default_rng(0)
    idx = rng.choice(len(digits.test), 8, replace=False)
    q = digits.test.subset(idx)
    return ImageSet(q.x, torch.as_tensor(rng.integers(0, 10, 8)))  # any labels: margins of all kinds


def corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_margin_matches_definition():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    y = torch.tensor([0, 2])
    want = torch.tensor([2 - np.log(np.exp(1) + 1), 1 - np.log(1 + np.exp(3))], dtype=torch.float32)
    assert torch.allclose(margin(logits, y), want)


def test_identity_equals_gradient_dot_product(logreg, digits, queries):
    engine = InfluenceEngine(
        logreg, digits.train, InfluenceSettings(backend="identity", factor_batch_size=512)
    )
    got = engine.scores(queries)
    want = closed_form(logreg, digits.train, queries, damping=None)
    assert corr(got, want) > 0.999
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3 * np.abs(want).max())


def test_exact_backend_matches_closed_form(logreg, digits, queries):
    engine = InfluenceEngine(logreg, digits.train, InfluenceSettings(backend="exact"))
    got = engine.scores(queries)
    want = closed_form(logreg, digits.train, queries, damping="heuristic")
    assert corr(got, want) > 0.999


@pytest.mark.parametrize("strategy", ["ekfac", "kfac"])
def test_kfac_family_exact_for_one_training_example(logreg, digits, strategy):
    """Where K-FAC is exact: one Linear layer, one training example, empirical Fisher. That
    example's Fisher g g^T = (d d^T) kron (a a^T) IS a Kronecker product (K-FAC's only
    approximation is E[d d^T kron a a^T] ~ E[d d^T] kron E[a a^T]), and g is an eigenvector of both
    factors' eigenbasis, so EK-FAC's eigenvalue correction is exact too. Damping on both sides is
    kronfluence's heuristic, 0.1 x the mean eigenvalue."""
    settings = InfluenceSettings(backend=strategy, use_empirical_fisher=True)
    train = digits.train.subset([3])
    many = digits.test.subset(np.arange(40))
    got = InfluenceEngine(logreg, train, settings).scores(many)
    want = closed_form(logreg, train, many, damping="heuristic", empirical=True)
    assert corr(got, want) >= 0.99
    np.testing.assert_allclose(got, want, rtol=0.02, atol=0.02 * np.abs(want).max())


def test_ekfac_tracks_exact_inverse_hessian_on_full_data(logreg, digits, queries):
    """On the whole training set EK-FAC is an approximation (the Fisher is a sum of Kronecker
    products, not one): measured correlation with the exact damped Gauss-Newton inverse 0.73 (KFAC
    0.72). The floor here guards against sign or layout errors, which give ~0 or negative."""
    settings = InfluenceSettings(backend="ekfac", factor_batch_size=512, train_batch_size=512)
    got = InfluenceEngine(logreg, digits.train, settings).scores(queries)
    want = closed_form(logreg, digits.train, queries, damping="heuristic")
    assert corr(got, want) >= 0.6


def test_all_queries_in_one_pass(badnet_victim):
    v = badnet_victim
    n = len(v.poisoned.train)
    engine = InfluenceEngine(v.model, v.poisoned.train, InfluenceSettings(backend="ekfac"))
    many = v.poisoned.triggered_test.subset(np.arange(12))
    batch = engine.scores(many)
    assert engine.train_examples_last_score == n  # twelve queries, the training set walked once
    single = np.stack([engine.scores(many.subset([j]))[0] for j in range(3)])
    assert engine.train_examples_last_score == n
    # equal up to rounding: float32 sums over all parameters depend on the query batch's shape
    # (measured up to 5e-4 of the largest score); another query's scores differ by O(1) of it
    np.testing.assert_allclose(batch[:3], single, rtol=0, atol=1e-2 * np.abs(single).max())
    assert np.abs(single[0] - single[1]).max() > 0.1 * np.abs(single).max()


def test_engine_cache_reuses_factors_and_sees_new_weights(badnet_victim):
    clear_engine_cache()
    v = badnet_victim
    settings = InfluenceSettings(backend="identity")
    e1 = get_engine(v.model, v.poisoned.train, settings)
    assert get_engine(v.model, v.poisoned.train, settings) is e1
    changed = type(v.model)(v.model.body, 64, 10, (0.0,), (1.0,))
    changed.load_state_dict(v.model.state_dict())
    with torch.no_grad():
        changed.head.bias.add_(1.0)
    assert get_engine(changed, v.poisoned.train, settings) is not e1
    # the victim itself is untouched (kronfluence wraps layers of a private copy)
    assert set(v.model.state_dict()) == set(changed.state_dict())
    clear_engine_cache()


def test_trak_matches_hand_computation_with_its_projection(badnet_victim):
    """traker 0.3.2 frees a single-block projection matrix; queries must be projected with the same
    matrix as the training set. Recompute TRAK by hand with the projector's matrix:
    ``(q P) ((Phi P)^T (Phi P))^-1 (Phi P)^T (1 - p)`` over margin gradients of all parameters; traker
    differs only by a constant factor (its gradient normalisation), and the self-scores over
    ``1 - p`` are hat-matrix leverages in (0, 1]."""
    v = badnet_victim
    model = v.model.eval()
    train = v.poisoned.train.subset(np.arange(400))
    first = train.subset(np.arange(20))
    engine = InfluenceEngine(model, train, InfluenceSettings(backend="trak", proj_dim=128))
    got = engine.scores(first)
    proj = engine._backend.traker.projector.proj_matrix.double()
    params = {k: p.detach() for k, p in model.named_parameters()}

    def out(p, x, y):
        return margin(functional_call(model, p, (x[None],)), y[None]).sum()

    def features(data):
        g = vmap(grad(out), in_dims=(None, 0, 0))(params, data.x, data.y)
        return torch.cat([g[k].reshape(len(data), -1) for k in params], 1).double() @ proj

    phi, q = features(train), features(first)
    with torch.no_grad():
        p_true = torch.softmax(model(train.x).double(), 1).gather(1, train.y[:, None]).squeeze(1)
    want = (q @ torch.linalg.inv(phi.T @ phi) @ phi.T * (1 - p_true)).numpy()
    assert corr(got, want) > 0.999
    leverage = np.diag(want[:, :20]) / (1 - p_true[:20].numpy())
    assert (leverage > 0).all() and (leverage <= 1 + 1e-6).all()
    np.testing.assert_allclose(engine.scores(first), got, rtol=1e-5)


@pytest.mark.parametrize("backend", ["kfac", "diagonal", "identity"])
def test_other_strategies_rank_poisons_above_clean(badnet_victim, backend):
    """Every kronfluence strategy must see that the poisons support the affected prediction."""
    v = badnet_victim
    s = InfluenceEngine(v.model, v.poisoned.train, InfluenceSettings(backend=backend)).scores(v.affected)[0]
    pi = v.poisoned.poison_indices
    clean = np.setdiff1d(np.arange(len(s)), pi)
    assert np.median(s[pi]) > 0 > np.median(s[clean]) or np.median(s[pi]) > 10 * abs(np.median(s[clean]))
