"""Spectral signatures (both forms), activation clustering and the frequency analyzer on BadNet digits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch
from conftest import make_trainer
from sklearn.metrics import roc_auc_score

from deltabench.components import DetectionContext
from deltabench.detectors.activation_clustering import ActivationClustering
from deltabench.detectors.frequency_analyzer import FrequencyAnalyzer, dct2, synthetic_triggers
from deltabench.detectors.spectral import SpectralSignatures, paper_code_scores
from deltabench.features import penultimate_features
from deltabench.metrics import detection_metrics


def _ctx(victim, seed: int = 0) -> DetectionContext:
    return DetectionContext(
        model=victim.model,
        train=victim.poisoned.train,
        affected=victim.affected,
        num_classes=victim.dataset.num_classes,
        rng=np.random.default_rng(seed),
        trainer=make_trainer(victim.dataset, seed),
    )


def _poison_share_of_target(victim) -> float:
    p = victim.poisoned
    return len(p.poison_indices) / int((p.train.y == p.target_class).sum())


def test_spectral_standard_recall_when_eps_matches_poison_share(badnet_victim):
    eps = _poison_share_of_target(badnet_victim)  # ~0.32: half the 8s relabelled to 5
    det = SpectralSignatures(expected_poison_rate=eps).detect(_ctx(badnet_victim))
    m = detection_metrics(det.flagged, badnet_victim.poisoned.poison_indices)
    # Measured 0.75 here and 0.70-0.82 on other digits victims: the 0.8 goal is not always met
    # (see docs/detectors-and-unlearners.md); flagging 1.5 eps of class 5 at random gives ~0.49.
    assert m["recall"] >= 0.7, m
    # with the default eps = 0.05 it removes 1.5 * 5% of each class
    default = SpectralSignatures().detect(_ctx(badnet_victim))
    sizes = np.bincount(badnet_victim.poisoned.train.y.numpy())
    assert default.flagged.size == sum(int(round(1.5 * 0.05 * n)) for n in sizes)


def test_spectral_paper_code_scores_are_projection_norms(badnet_victim):
    feats = penultimate_features(badnet_victim.model, badnet_victim.poisoned.train.x)
    # keeping every direction, the projection norm is the feature vector's own norm
    all_dirs = paper_code_scores(feats, sv_threshold=0.0)
    np.testing.assert_allclose(all_dirs, feats.double().norm(dim=1).numpy(), rtol=1e-6)
    # keeping only the top direction, it is |<f, v1>|
    _, s, vh = torch.linalg.svd(feats.double(), full_matrices=False)
    top = paper_code_scores(feats, sv_threshold=float((s[0] + s[1]) / 2))
    np.testing.assert_allclose(top, (feats.double() @ vh[0]).abs().numpy(), rtol=1e-6)
    det = SpectralSignatures(
        form="paper-code", sv_threshold=0.0, contribution_threshold=float(np.median(all_dirs))
    )
    flagged = det.detect(_ctx(badnet_victim)).flagged
    np.testing.assert_array_equal(flagged, np.flatnonzero(all_dirs > np.median(all_dirs)))


def test_activation_clustering_finds_badnet_poisons(badnet_victim):
    det = ActivationClustering().detect(_ctx(badnet_victim))
    m = detection_metrics(det.flagged, badnet_victim.poisoned.poison_indices)
    assert m["recall"] >= 0.8, m
    # the smaller cluster of every class is flagged, so never more than half the set
    assert m["flagged"] <= len(badnet_victim.poisoned.train) / 2


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_activation_clustering_ica_flags_smaller_clusters(badnet_victim):
    # ICA(10) recall is unstable on digits (0.07 on this victim, 0.98-1.0 on others): only structure
    det = ActivationClustering(reduction="ica").detect(_ctx(badnet_victim))
    labels = badnet_victim.poisoned.train.y.numpy()
    for c in range(10):
        members = np.flatnonzero(labels == c)
        assert 0 < np.isin(members, det.flagged).sum() <= members.size / 2


def test_activation_clustering_share_threshold_can_spare_classes(badnet_victim):
    ctx = _ctx(badnet_victim)
    every = ActivationClustering().detect(ctx)
    strict = ActivationClustering(max_cluster_share=0.05).detect(_ctx(badnet_victim))
    assert set(strict.flagged) <= set(every.flagged)
    assert strict.flagged.size < every.flagged.size


def test_dct_matches_scipy():
    x = torch.rand(4, 3, 8, 6)
    ref = scipy.fft.dctn(x.numpy(), axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(dct2(x).numpy(), ref, atol=1e-5)


def test_frequency_analyzer_separates_triggered_from_clean(badnet_victim):
    ctx = _ctx(badnet_victim)
    fa = FrequencyAnalyzer()
    model = fa.train_detector(ctx)
    # held-out images: clean test digits vs synthetically triggered copies of them
    test_x = badnet_victim.dataset.test.x
    triggered = synthetic_triggers(test_x, torch.Generator().manual_seed(123))
    p_clean = fa.probabilities(model, test_x, ctx.device)
    p_trig = fa.probabilities(model, triggered, ctx.device)
    labels = np.r_[np.zeros(len(p_clean)), np.ones(len(p_trig))]
    assert roc_auc_score(labels, np.r_[p_clean, p_trig]) > 0.8
    # and on the real BadNet training set, poisons score higher than clean points
    det = fa.detect(_ctx(badnet_victim))
    is_poison = np.zeros(len(badnet_victim.poisoned.train), bool)
    is_poison[badnet_victim.poisoned.poison_indices] = True
    assert roc_auc_score(is_poison, det.scores["p_triggered"]) > 0.6
    np.testing.assert_array_equal(det.flagged, np.flatnonzero(det.scores["p_triggered"] >= 0.5))
