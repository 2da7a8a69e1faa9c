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
from deltabench.detectors.spectral import (
    SpectralSignatures,
    paper_code_scores,
    skew_signed_scores,
    spectral_scores,
    top_projection,
    tran_code_scores,
)
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


def test_spectral_scores_known_answer():
    """Hand-made features whose centred top singular direction is e1, around a common offset."""
    offset = torch.tensor([5.0, 2.0, 1.0])
    cross = torch.tensor([[3.0, 0, 0], [-3, 0, 0], [0, 1, 0], [0, -1, 0]]) + offset
    np.testing.assert_allclose(spectral_scores(cross), [9, 9, 0, 0], atol=1e-9)  # centred, squared
    np.testing.assert_allclose(np.abs(top_projection(cross)), [3, 3, 0, 0], atol=1e-9)
    np.testing.assert_allclose(tran_code_scores(cross), [8, 2, 5, 5], atol=1e-9)  # |+-3 + 5|: uncentred
    # four points at -1 and one at +4 along e1 (mean 0): the tail is the lone point, whichever sign
    # the SVD gives the direction, and squaring ranks it first too
    skewed = torch.tensor([[-1.0, 0.5], [-1, -0.5], [-1, 0.5], [-1, -0.5], [4, 0]])
    for pts in (skewed + torch.tensor([3.0, 1.0]), -skewed):
        np.testing.assert_allclose(skew_signed_scores(pts), [-1, -1, -1, -1, 4], atol=1e-9)
        np.testing.assert_allclose(spectral_scores(pts), [1, 1, 1, 1, 16], atol=1e-9)


def _recall(victim, **params) -> float:
    eps = _poison_share_of_target(victim)  # ~0.32: half the 8s relabelled to 5
    det = SpectralSignatures(expected_poison_rate=eps, **params).detect(_ctx(victim))
    return detection_metrics(det.flagged, victim.poisoned.poison_indices)["recall"]


# Known answers on the victim are asserted over the five victims of ``badnet_victims`` (the
# fixture's poisons, torch seeds 0-4): one victim is one draw of what another CPU or thread count
# trains. Spreads quoted below are over 23 victims: torch seeds 0-8 of the fixture's poisons under
# 1 thread and 0-4 under 2, 7 other poison draws under 1 thread and 2 under 2 (same contexts as
# the tests). The chance that another machine's five fail an assertion is computed from the share
# of those 23 that miss its bound, as if the five were independent draws.


def test_spectral_standard_recall_when_eps_matches_poison_share(badnet_victims, badnet_victim):
    # Squared score, eps = the poison share of class 5: recall 0.46-0.89 (0.80 / 0.80 / 0.46 /
    # 0.80 / 0.64 here under 1 thread, 0.80 / 0.79 / 0.49 / 0.77 / 0.56 under 2); below 0.55 on 2
    # of 23. Flagging 1.5 eps of class 5 at random gives 0.49 +- 0.05. Asserted: >= 0.55 on at
    # least 3 of the 5 (fails with ~0.6% chance; random flagging passes it with ~1%). The squared
    # score misses >= 0.8 on some seeds at every budget on digits, and smaller poison shares (Tran
    # et al.'s 5-10%) do worse, not better: see test_spectral_top_direction_is_right_squaring_costs_recall.
    recalls = np.array([_recall(v) for v in badnet_victims])
    assert (recalls >= 0.55).sum() >= 3, recalls
    # with the default eps = 0.05 it removes 1.5 * 5% of each class
    default = SpectralSignatures().detect(_ctx(badnet_victim))
    sizes = np.bincount(badnet_victim.poisoned.train.y.numpy())
    assert default.flagged.size == sum(int(round(1.5 * 0.05 * n)) for n in sizes)


def test_spectral_top_direction_is_right_squaring_costs_recall(badnet_victims):
    # At ~32% of class 5 the top singular direction separates poisons from clean 5s almost perfectly
    # (signed projection), but squaring ranks the clean 5s far on the other side of the mean as high
    # as the poisons. The skew-signed score (ours, non-default) keeps the sign, when the skew points
    # it the right way.
    # Measured over the 23 victims: signed AUC 0.79-1.00, below 0.85 on 2 (the fixture's poisons
    # with torch seed 2, under 1 and 2 threads); signed minus squared AUC 0.08-0.30 on every one.
    # On each of the 15 victims with signed AUC >= 0.95 the skew gives the direction's sign without
    # labels (skew-signed AUC = signed AUC) and skew-signed recall is 0.93-1.00 against 0.64-0.89
    # for the squared score; below 0.95 the skew picks the wrong side on 4 of 8 (AUC 0.06-0.21).
    # Asserted: signed AUC > 0.85 on at least 3 of the 5 (~0.6% chance to fail); signed - squared
    # AUC >= 0.05 on each; at least one with signed AUC >= 0.95 (4 here), and on each such victim
    # the skew's orientation right, recall >= 0.85 and above the squared score's.
    signed_aucs, clean_cut = [], 0
    for victim in badnet_victims:
        p = victim.poisoned
        members = np.flatnonzero(p.train.y.numpy() == p.target_class)
        feats = penultimate_features(victim.model, p.train.x)[members]
        is_poison = np.isin(members, p.poison_indices)
        proj = top_projection(feats)
        signed_auc = max(roc_auc_score(is_poison, proj), 1 - roc_auc_score(is_poison, proj))
        squared_auc = roc_auc_score(is_poison, proj**2)
        assert signed_auc - squared_auc >= 0.05, (signed_auc, squared_auc)
        signed_aucs.append(signed_auc)
        if signed_auc >= 0.95:
            clean_cut += 1
            assert roc_auc_score(is_poison, skew_signed_scores(feats)) > 0.9  # oriented without labels
            r_signed, r_sq = _recall(victim, score="skew-signed"), _recall(victim)
            assert r_signed >= 0.85 and r_signed > r_sq, (r_signed, r_sq)
    assert sum(a > 0.85 for a in signed_aucs) >= 3, signed_aucs
    assert clean_cut >= 1
    # the signed and squared detections flag the same number of points
    eps = _poison_share_of_target(badnet_victims[0])
    sizes = [
        SpectralSignatures(expected_poison_rate=eps, score=score).detect(_ctx(badnet_victims[0])).flagged.size
        for score in ("squared", "skew-signed")
    ]
    assert sizes[0] == sizes[1]


def test_spectral_released_code_score_finds_an_easy_badnet(badnet_victims):
    # Tran et al.'s released code: the centred top direction, the uncentred absolute projection
    # (known answer: test_spectral_scores_known_answer).
    # On the high-rate BadNet (32% of class 5) it does better than the squared score: recall
    # 0.75-1.00 on 20 of the 23 victims (0.98 / 1.00 / 0.77 / 1.00 / 1.00 here under 1 thread),
    # 0.02-0.26 on 3 where the offset's sign puts the clean side first (torch seed 4 of the
    # fixture's poisons under 2 threads is one: 0.26). Asserted: >= 0.7 on at least 2 of the 5
    # (all but one missing: ~0.1% chance; random flagging gives 0.49 +- 0.05).
    recalls = np.array([_recall(v, score="tran-code") for v in badnet_victims])
    assert (recalls >= 0.7).sum() >= 2, recalls


def test_spectral_paper_code_scores_are_projection_norms(badnet_victim):
    feats = penultimate_features(badnet_victim.model, badnet_victim.poisoned.train.x)
    # keeping every direction, the projection norm is the feature vector's own norm
    all_dirs = paper_code_scores(feats, sv_threshold=0.0)
    np.testing.assert_allclose(all_dirs, feats.double().norm(dim=1).numpy(), rtol=1e-6)
    # keeping only the top direction, it is |<f, v1>|
    _, s, vh = torch.linalg.svd(feats.double(), full_matrices=False)
    top = paper_code_scores(feats, sv_threshold=float((s[0] + s[1]) / 2))
    np.testing.assert_allclose(top, (feats.double() @ vh[0]).abs().numpy(), rtol=1e-6)
    # flagged: the points whose feature norm (the identity above) exceeds the threshold, here the
    # median norm, so the upper half
    norms = feats.double().norm(dim=1).numpy()
    cut = float(np.median(norms))
    det = SpectralSignatures(form="paper-code", sv_threshold=0.0, contribution_threshold=cut)
    flagged = det.detect(_ctx(badnet_victim)).flagged
    tol = 1e-6 * cut
    assert set(np.flatnonzero(norms > cut + tol)) <= set(flagged) <= set(np.flatnonzero(norms > cut - tol))
    assert abs(flagged.size - len(norms) // 2) <= 1


def test_activation_clustering_finds_badnet_poisons(badnet_victims):
    # PCA(3) recall: 0.79-0.98 on 19 of the 23 victims; 0.02-0.13 on 4 (the fixture's poisons
    # with torch seed 2 under 1 and 2 threads, seed 5 under 1, seed 4 under 2: there the poisons
    # form no cluster of their own); 0.97 / 0.97 / 0.13 / 0.97 / 0.98 here under 1 thread, 0.97 /
    # 0.95 / 0.13 / 0.97 / 0.02 under 2. Asserted: >= 0.75 on at least 2 of the 5 (~0.4% chance
    # to fail; flagging ~40% of the set at random gives ~0.4), and never more than half the set.
    recalls = []
    for victim in badnet_victims:
        m = detection_metrics(
            ActivationClustering().detect(_ctx(victim)).flagged, victim.poisoned.poison_indices
        )
        recalls.append(m["recall"])
        # the smaller cluster of every class is flagged, so never more than half the set
        assert m["flagged"] <= len(victim.poisoned.train) / 2
    assert sum(r >= 0.75 for r in recalls) >= 2, recalls


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
    """Held out: clean test digits against synthetically triggered copies (measured AUC 0.95).

    Not asserted: its ranking of the BadNet poisons in the training set (AUC 0.60-0.78 on three
    victims, and 0.63-0.78 for a white 2x2 corner block, a trigger of the kind it is trained on):
    its "clean" class is the poisoned training set itself, so it is trained to call the poisons
    clean, and the AUC is too close to chance for a known answer (docs/detectors-and-unlearners.md).
    """
    ctx = _ctx(badnet_victim)
    fa = FrequencyAnalyzer()
    model = fa.train_detector(ctx)
    test_x = badnet_victim.dataset.test.x
    triggered = synthetic_triggers(test_x, torch.Generator().manual_seed(123))
    p_clean = fa.probabilities(model, test_x, ctx.device)
    p_trig = fa.probabilities(model, triggered, ctx.device)
    labels = np.r_[np.zeros(len(p_clean)), np.ones(len(p_trig))]
    assert roc_auc_score(labels, np.r_[p_clean, p_trig]) > 0.8
    # detect = the same training (same seeds) + the training set's p(triggered) >= threshold
    det = fa.detect(_ctx(badnet_victim))
    p_train = fa.probabilities(model, badnet_victim.poisoned.train.x, ctx.device)
    np.testing.assert_allclose(det.scores["p_triggered"], p_train, rtol=0, atol=1e-4)
    surely, possibly = p_train >= 0.5 + 1e-4, p_train >= 0.5 - 1e-4
    assert set(np.flatnonzero(surely)) <= set(det.flagged) <= set(np.flatnonzero(possibly))
    assert 0 < det.flagged.size < len(p_train)


def test_the_dct_of_a_training_set_in_chunks_is_the_dct_of_the_whole_set():
    from deltabench.detectors.frequency_analyzer import dct2_in_chunks

    x = torch.rand(70, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    # other batch shapes may take other BLAS kernels on another CPU: equal up to float32 rounding
    # (sums of 12 products), not bit for bit
    torch.testing.assert_close(dct2_in_chunks(x, chunk=16), dct2(x), rtol=1e-6, atol=1e-6)
