"""Δ-Influence and the threshold baselines on the BadNet digits victim, and the query transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_trainer

from deltabench.components import DetectionContext
from deltabench.detectors.delta_influence import DeltaInfluence, auxiliary_queries, collapse_flags
from deltabench.detectors.influence_threshold import InfluenceThreshold, TrakThreshold, threshold_flags
from deltabench.influence.transforms import DETERMINISTIC, apply_transform, available_transforms, blur_kernel
from deltabench.metrics import detection_metrics
from deltabench.registry import default_registry
from deltabench.training import predict


def ctx_for(victim, seed: int = 0) -> DetectionContext:
    return DetectionContext(
        victim.model, victim.poisoned.train, victim.affected, 10, np.random.default_rng(seed), victim.trainer
    )


@pytest.fixture(scope="module")
def delta_detection(badnet_victim):
    return DeltaInfluence(T=30).detect(ctx_for(badnet_victim))


def test_influence_collapse_on_badnet(badnet_victim, delta_detection):
    pi = badnet_victim.poisoned.poison_indices
    delta = delta_detection.scores["delta_matrix"]
    clean = np.setdiff1d(np.arange(delta.shape[1]), pi)
    poison_median = np.median(delta[:, pi], axis=1)
    clean_median = np.median(delta[:, clean], axis=1)
    assert (poison_median < 0).mean() >= 0.95
    # clean points: no consistent trend, tiny next to the poisons' collapse
    assert np.abs(np.median(clean_median)) < 0.05 * np.abs(np.median(poison_median))


def test_delta_influence_recall_and_precision(badnet_victim, delta_detection):
    m = detection_metrics(delta_detection.flagged, badnet_victim.poisoned.poison_indices)
    base_rate = len(badnet_victim.poisoned.poison_indices) / len(badnet_victim.poisoned.train)
    assert m["recall"] >= 0.95
    assert m["precision"] > 3 * base_rate
    s = delta_detection.scores
    assert s["delta_matrix"].shape == (30, len(badnet_victim.poisoned.train))
    np.testing.assert_array_equal(np.flatnonzero(s["collapse_count"] >= 30 - 2), delta_detection.flagged)


def test_collapse_rule_known_answer():
    delta = np.array([[-1.0, -1.0, 1.0], [-1.0, 2.0, 1.0], [-1.0, -3.0, -1.0], [-0.5, -1.0, 1.0]])
    counts, flags = collapse_flags(delta, th=0.0, n_tolerate=1)
    np.testing.assert_array_equal(counts, [4, 3, 1])
    np.testing.assert_array_equal(flags, [True, True, False])
    _, strict = collapse_flags(delta, th=0.0, n_tolerate=0)
    np.testing.assert_array_equal(strict, [True, False, False])


def test_auxiliary_query_variants(badnet_victim):
    aff = badnet_victim.affected
    target = int(aff.y[0])
    for variant in ("MM", "MI", "ML"):
        aux, names = auxiliary_queries(
            aff, 10, 40, variant, np.random.default_rng(0), torch.Generator().manual_seed(0)
        )
        assert len(aux) == 40
        assert aux.x.min() >= 0 and aux.x.max() <= 1
        if variant == "MI":
            assert (aux.y == target).all()
        else:
            assert (aux.y != target).all()
        if variant == "ML":
            assert torch.equal(aux.x, aff.x.expand_as(aux.x)) and set(names) == {"none"}
        else:
            assert "swap_rg" not in names and len(set(names)) >= 5


def test_auxiliary_queries_never_repeat_a_deterministic_query(badnet_victim):
    # 50 draws over 6 transforms x 9 labels repeat an (invert or hflip, label) pair on most seeds;
    # identical queries would count one delta several times against n_tolerate.
    aff = badnet_victim.affected.subset([0])
    repeats = {}
    for distinct in (True, False):
        total = 0
        for seed in range(10):
            aux, names = auxiliary_queries(
                aff, 10, 50, "MM", np.random.default_rng(seed), torch.Generator().manual_seed(0), distinct
            )
            pairs = [(n, int(y)) for n, y in zip(names, aux.y, strict=True) if n in DETERMINISTIC]
            total += len(pairs) - len(set(pairs))
            if distinct:  # equal images with equal labels never occur twice
                flat = torch.cat([aux.x.flatten(1), aux.y[:, None].float()], 1)
                assert len(torch.unique(flat, dim=0)) == 50
        repeats[distinct] = total
    assert repeats[True] == 0 and repeats[False] > 5, repeats


def test_transforms_change_images_and_keep_range():
    x = torch.rand(3, 32, 32)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    for name in available_transforms(3):
        y = apply_transform(name, x, rng, gen)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
        assert not torch.allclose(y, x), name
    assert available_transforms(1) == [n for n in available_transforms(3) if n != "swap_rg"]
    assert torch.allclose(apply_transform("invert", x, rng, gen), 1 - x)
    assert blur_kernel(9, 32) == 9 and blur_kernel(5, 8) == 3 and blur_kernel(9, 8) == 3


def test_threshold_rules_known_answer():
    s = np.array([5.0, 20.0, -3.0, 11.0, 10.0])
    np.testing.assert_array_equal(threshold_flags(s, 10.0), [1, 3])
    np.testing.assert_array_equal(threshold_flags(s, 10.0, top_k=2), [1, 3])
    np.testing.assert_array_equal(threshold_flags(s, 0.0, percentile=50), [1, 3])
    with pytest.raises(ValueError):
        InfluenceThreshold(top_k=3, percentile=90)


def test_influence_threshold_ranks_poisons_first(badnet_victim):
    pi = badnet_victim.poisoned.poison_indices
    det = InfluenceThreshold(top_k=len(pi)).detect(ctx_for(badnet_victim))
    old = det.scores["old"]
    np.testing.assert_array_equal(det.flagged, np.sort(np.argsort(-old)[: len(pi)]))
    base_rate = len(pi) / len(old)
    assert detection_metrics(det.flagged, pi)["precision"] > 5 * base_rate
    th = InfluenceThreshold(th=10.0).detect(ctx_for(badnet_victim))
    np.testing.assert_array_equal(th.flagged, np.flatnonzero(old > 10.0))


def test_trak_threshold_runs_on_trak_scores(badnet_victim):
    det = TrakThreshold(percentile=90).detect(ctx_for(badnet_victim))
    old = det.scores["old"]
    assert np.isfinite(old).all() and old.std() > 0
    np.testing.assert_array_equal(det.flagged, np.flatnonzero(old > np.percentile(old, 90)))


def test_detectors_registered():
    reg = default_registry()
    for name in ("delta-influence", "influence-threshold", "trak-threshold"):
        assert reg.get("detector", name).name == name


def test_several_affected_points_combine(badnet_victim):
    v = badnet_victim
    hits = np.flatnonzero(predict(v.model, v.poisoned.triggered_test.x).numpy() == v.poisoned.target_class)
    two = v.poisoned.triggered_test.subset(hits[:2])

    def ctx():  # same seeds each time, so both detections draw the same auxiliary queries
        return DetectionContext(
            v.model, v.poisoned.train, two, 10, np.random.default_rng(0), make_trainer(v.dataset, 0)
        )

    union = DeltaInfluence(T=10, combine="union").detect(ctx())
    inter = DeltaInfluence(T=10, combine="intersection").detect(ctx())
    assert union.scores["delta_matrix"].shape == (20, len(v.poisoned.train))
    assert union.scores["old_matrix"].shape == (2, len(v.poisoned.train))
    np.testing.assert_array_equal(union.scores["delta_matrix"], inter.scores["delta_matrix"])
    assert set(inter.flagged) <= set(union.flagged)
    assert detection_metrics(union.flagged, v.poisoned.poison_indices)["recall"] >= 0.95


def test_class_control_keeps_the_poisons_and_spares_clean_target_class_points(badnet_victim):
    v = badnet_victim
    n = len(v.poisoned.train)

    def detect(**params):
        ctx = DetectionContext(
            v.model, v.poisoned.train, v.affected, 10, np.random.default_rng(0), make_trainer(v.dataset, 0)
        )
        ctx.reference = v.dataset.test
        return DeltaInfluence(T=30, **params).detect(ctx)

    base, controlled = detect(), detect(control=8)
    # same auxiliary queries, so the control can only remove flags, never add one
    np.testing.assert_array_equal(base.scores["delta_matrix"], controlled.scores["delta_matrix"])
    assert set(controlled.flagged) <= set(base.flagged)
    explained = controlled.scores["explained_by_class"][0]
    np.testing.assert_array_equal(controlled.flagged, np.setdiff1d(base.flagged, np.flatnonzero(explained)))
    assert controlled.scores["control_mean"].shape == (1, n)

    poisons = v.poisoned.poison_indices
    target = v.poisoned.target_class
    clean_target = np.setdiff1d(np.flatnonzero(v.poisoned.train.y.numpy() == target), poisons)
    assert detection_metrics(controlled.flagged, poisons)["recall"] >= 0.95
    base_clean = np.intersect1d(base.flagged, clean_target).size
    kept_clean = np.intersect1d(controlled.flagged, clean_target).size
    assert base_clean >= 40  # the paper's rule takes a large share of the 127 clean 5s ...
    assert kept_clean <= 0.2 * base_clean  # ... the control gives most of them back


def test_class_median_control_calibrates_the_ratio_on_the_class(badnet_victim):
    v = badnet_victim

    def detect(**params):
        ctx = DetectionContext(
            v.model, v.poisoned.train, v.affected, 10, np.random.default_rng(0), make_trainer(v.dataset, 0)
        )
        ctx.reference = v.dataset.test
        return DeltaInfluence(T=30, control=8, **params).detect(ctx)

    raw, calibrated = detect(), detect(control_score="class-median")
    # same queries and controls (one rng draw order): only the threshold differs
    np.testing.assert_array_equal(raw.scores["control_mean"], calibrated.scores["control_mean"])
    assert "control_threshold" not in raw.scores  # the default's output is unchanged
    old, cm = calibrated.scores["old_matrix"][0], calibrated.scores["control_mean"][0]
    labels = v.poisoned.train.y.numpy()
    target = v.poisoned.target_class
    members = (labels == target) & (old > 0)
    threshold = 0.5 * np.median(cm[members] / old[members])  # written out, not the detector's helper
    assert calibrated.scores["control_threshold"][0] == pytest.approx(threshold, rel=1e-6)
    paper = np.flatnonzero(collapse_flags(calibrated.scores["delta_matrix"], 0.0, 2)[1])
    np.testing.assert_array_equal(
        calibrated.flagged, np.setdiff1d(paper, np.flatnonzero(cm > threshold * old))
    )

    # the class's own median puts the cut between the poisons and the clean members of the class
    poisons = v.poisoned.poison_indices
    clean_target = np.setdiff1d(np.flatnonzero(labels == target), poisons)
    ratio = cm / old
    assert ratio[np.intersect1d(paper, poisons)].max() < threshold
    assert threshold < np.median(ratio[np.intersect1d(paper, clean_target)])
    assert detection_metrics(calibrated.flagged, poisons)["recall"] == 1.0
    kept_clean = np.intersect1d(calibrated.flagged, clean_target).size
    assert kept_clean <= 0.2 * np.intersect1d(paper, clean_target).size
    # one affected point: pooling its deltas is the same rule
    pooled = detect(control_score="class-median", combine="pooled")
    np.testing.assert_array_equal(pooled.flagged, calibrated.flagged)


def test_class_control_needs_reference_data(badnet_victim):
    ctx = ctx_for(badnet_victim)
    with pytest.raises(ValueError, match="reference"):
        DeltaInfluence(T=3, control=4).detect(ctx)
    ctx.reference = badnet_victim.dataset.test.subset(np.arange(5))
    with pytest.raises(ValueError, match="classified correctly"):
        DeltaInfluence(T=3, control=40).detect(ctx)
