"""Δ-Influence and the threshold baselines on the BadNet digits victim, and the query transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_trainer

from deltabench.components import DetectionContext
from deltabench.detectors.delta_influence import DeltaInfluence, auxiliary_queries, collapse_flags
from deltabench.detectors.influence_threshold import InfluenceThreshold, TrakThreshold, threshold_flags
from deltabench.influence import InfluenceSettings, get_engine
from deltabench.influence.transforms import DETERMINISTIC, apply_transform, available_transforms, blur_kernel
from deltabench.metrics import detection_metrics
from deltabench.registry import default_registry
from deltabench.training import predict

# Influence scores are float32 sums over all parameters; scoring the same query in a query batch of
# another size (or on another CPU, or with another thread count) changes them by rounding: measured
# up to 5e-4 of the largest |delta| on one CPU. Different queries change them by O(1) of it.
ROUNDING = 1e-2


def ctx_for(victim, seed: int = 0) -> DetectionContext:
    return DetectionContext(
        victim.model, victim.poisoned.train, victim.affected, 10, np.random.default_rng(seed), victim.trainer
    )


def fresh_ctx(victim, affected=None, clean_holdout: bool = False) -> DetectionContext:
    """A context with freshly seeded generators: two detections from it draw the same queries."""
    ctx = DetectionContext(
        victim.model,
        victim.poisoned.train,
        victim.affected if affected is None else affected,
        10,
        np.random.default_rng(0),
        make_trainer(victim.dataset, 0),
    )
    if clean_holdout:
        ctx.clean_holdout = victim.dataset.test
    return ctx


def rounding_tolerance(delta: np.ndarray) -> float:
    return ROUNDING * float(np.abs(delta).max())


def undecided(delta: np.ndarray, th: float, n_tolerate: int, tol: float) -> np.ndarray:
    """Points whose collapse flag could flip if every delta moved by at most ``tol``."""
    need = delta.shape[0] - n_tolerate
    surely = (delta < th - tol).sum(0) >= need
    possibly = (delta < th + tol).sum(0) >= need
    return np.flatnonzero(possibly & ~surely)


def assert_same_flags_up_to_rounding(a: np.ndarray, b: np.ndarray, delta: np.ndarray, n_tolerate: int = 2):
    """Flag sets of two detections on the same queries: equal except where rounding could decide."""
    differ = np.setxor1d(a, b)
    assert set(differ) <= set(undecided(delta, 0.0, n_tolerate, rounding_tolerance(delta))), differ


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
    assert delta_detection.scores["delta_matrix"].shape == (30, len(badnet_victim.poisoned.train))


def test_deltas_are_influence_changes_on_the_drawn_queries(badnet_victim):
    """Recomputed outside the detector: draw the auxiliary queries from the same seeds, score the
    affected point and the queries with the engine in separate calls, flag by the paper's rule
    (count of delta < 0 >= T - n_tolerate). The detector scores them in one batch, so its numbers
    equal these up to rounding, and its flags except where rounding decides."""
    v = badnet_victim
    det = DeltaInfluence(T=30).detect(fresh_ctx(v))
    aux, names = auxiliary_queries(
        v.affected, 10, 30, "MM", np.random.default_rng(0), make_trainer(v.dataset, 0).generator
    )
    np.testing.assert_array_equal(det.scores["aux_labels"], aux.y.numpy())
    assert list(det.scores["aux_transforms"]) == names
    engine = get_engine(v.model, v.poisoned.train, InfluenceSettings())  # the detector's settings
    old, new = engine.scores(v.affected)[0], engine.scores(aux)
    delta = new - old
    tol = rounding_tolerance(delta)
    np.testing.assert_allclose(det.scores["old_matrix"][0], old, rtol=0, atol=tol)
    np.testing.assert_allclose(det.scores["delta_matrix"], delta, rtol=0, atol=tol)
    np.testing.assert_array_equal(  # the reported matrices line up: delta = new - old
        det.scores["delta_matrix"], det.scores["new_matrix"] - det.scores["old_matrix"][0]
    )
    flags = np.flatnonzero((delta < 0).sum(0) >= 30 - 2)
    assert_same_flags_up_to_rounding(det.flagged, flags, delta)
    assert flags.size > 0


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


def _ranks_above(scores: np.ndarray, flagged: np.ndarray, tol: float) -> bool:
    """Every flagged point scores at least as high as every other one (up to ``tol``)."""
    rest = np.setdiff1d(np.arange(len(scores)), flagged)
    return float(scores[flagged].min()) >= float(scores[rest].max()) - tol


def test_influence_threshold_ranks_poisons_first(badnet_victim):
    """The flags are the top-k / above-th points of the EK-FAC influence on the affected point,
    computed here with the engine directly; the poisons dominate the top k."""
    v = badnet_victim
    pi = v.poisoned.poison_indices
    old = get_engine(v.model, v.poisoned.train, InfluenceSettings()).scores(v.affected)[0]
    tol = ROUNDING * float(np.abs(old).max())
    det = InfluenceThreshold(top_k=len(pi)).detect(ctx_for(v))
    np.testing.assert_allclose(det.scores["old"], old, rtol=0, atol=tol)
    assert det.flagged.size == len(pi) and _ranks_above(old, det.flagged, tol)
    base_rate = len(pi) / len(old)
    # precision / base rate: 8.1 here; 4.7-10.5 over torch seeds 0-4 of the fixture's poisons under
    # 1 and 2 threads (the old bound of 5 sat inside that); the top k drawn at random gives 1
    assert detection_metrics(det.flagged, pi)["precision"] > 3 * base_rate
    th = InfluenceThreshold(th=10.0).detect(ctx_for(v))
    above, below = old > 10.0 + tol, old > 10.0 - tol
    assert set(np.flatnonzero(above)) <= set(th.flagged) <= set(np.flatnonzero(below))
    assert 0 < th.flagged.size < len(old)


def test_trak_threshold_runs_on_trak_scores(badnet_victim):
    """The flags are the top 10% of the TRAK scores on the affected point, computed here with the
    engine (whose TRAK scores test_influence_engine checks by hand). How well TRAK ranks the poisons
    is not asserted: measured AUC 0.60 on this victim, too close to chance for a known answer."""
    v = badnet_victim
    old = get_engine(v.model, v.poisoned.train, InfluenceSettings(backend="trak")).scores(v.affected)[0]
    tol = ROUNDING * float(np.abs(old).max())
    det = TrakThreshold(percentile=90).detect(ctx_for(v))
    np.testing.assert_allclose(det.scores["old"], old, rtol=0, atol=tol)
    assert abs(det.flagged.size - 0.1 * len(old)) <= 2 and _ranks_above(old, det.flagged, tol)


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
    n = len(v.poisoned.train)
    assert union.scores["delta_matrix"].shape == (20, n)
    assert union.scores["old_matrix"].shape == (2, n)
    # the same draws; the same query batch, so the same scores (up to rounding on any machine)
    np.testing.assert_array_equal(union.scores["aux_labels"], inter.scores["aux_labels"])
    np.testing.assert_array_equal(union.scores["aux_transforms"], inter.scores["aux_transforms"])
    delta = union.scores["delta_matrix"]
    np.testing.assert_allclose(inter.scores["delta_matrix"], delta, rtol=0, atol=rounding_tolerance(delta))
    # point-major: rows 0-9 are the first point's queries against its own old scores
    old, new = union.scores["old_matrix"], union.scores["new_matrix"]
    np.testing.assert_array_equal(delta, new - np.repeat(old, 10, axis=0))
    for det, merge in ((union, np.any), (inter, np.all)):  # each point's paper rule, then the merge
        d = det.scores["delta_matrix"]
        per_point = np.stack([collapse_flags(d[10 * j : 10 * (j + 1)], 0.0, 2)[1] for j in range(2)])
        np.testing.assert_array_equal(det.flagged, np.flatnonzero(merge(per_point, axis=0)))
    assert set(inter.flagged) <= set(union.flagged)
    assert detection_metrics(union.flagged, v.poisoned.poison_indices)["recall"] >= 0.95


def test_class_control_keeps_the_poisons_and_spares_clean_target_class_points(badnet_victim):
    v = badnet_victim
    n = len(v.poisoned.train)

    def detect(**params):
        return DeltaInfluence(T=30, **params).detect(fresh_ctx(v, clean_holdout=True))

    base, controlled = detect(), detect(control=8)
    # The controls are drawn after the auxiliary queries, so both detections draw the same queries;
    # the controlled one scores them in a larger query batch, so its deltas equal the paper rule's
    # up to rounding (not bit for bit: the engine's float sums depend on the batch shape).
    np.testing.assert_array_equal(base.scores["aux_labels"], controlled.scores["aux_labels"])
    np.testing.assert_array_equal(base.scores["aux_transforms"], controlled.scores["aux_transforms"])
    delta = controlled.scores["delta_matrix"]
    np.testing.assert_allclose(delta, base.scores["delta_matrix"], rtol=0, atol=rounding_tolerance(delta))
    # On its own deltas the control only removes flags from the paper rule's ...
    paper = collapse_flags(delta, 0.0, 2)[1]
    explained = controlled.scores["explained_by_class"][0]
    np.testing.assert_array_equal(controlled.flagged, np.flatnonzero(paper & ~explained))
    # ... hence, against the uncontrolled detection, it adds none that rounding does not decide.
    unsure = undecided(base.scores["delta_matrix"], 0.0, 2, rounding_tolerance(delta))
    assert set(controlled.flagged) - set(base.flagged) <= set(unsure)
    assert_same_flags_up_to_rounding(np.flatnonzero(paper), base.flagged, base.scores["delta_matrix"])
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
        return DeltaInfluence(T=30, control=8, **params).detect(fresh_ctx(v, clean_holdout=True))

    raw, calibrated = detect(), detect(control_score="class-median")
    # same queries and controls (one rng draw order): only the threshold differs
    control_mean = calibrated.scores["control_mean"]
    np.testing.assert_allclose(
        raw.scores["control_mean"], control_mean, rtol=0, atol=rounding_tolerance(control_mean)
    )
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
    # one affected point: pooling its deltas is the same rule (the same query batch, hence the
    # same scores on any one machine)
    pooled = detect(control_score="class-median", combine="pooled")
    np.testing.assert_array_equal(pooled.flagged, calibrated.flagged)


def test_class_control_needs_clean_holdout_data(badnet_victim):
    ctx = ctx_for(badnet_victim)
    with pytest.raises(ValueError, match="clean_holdout"):
        DeltaInfluence(T=3, control=4).detect(ctx)
    ctx.clean_holdout = badnet_victim.dataset.test.subset(np.arange(5))
    with pytest.raises(ValueError, match="classified correctly"):
        DeltaInfluence(T=3, control=40).detect(ctx)


def test_too_few_control_images_name_the_clean_holdout():
    """The error says which data ran short in the context's own word (``clean_holdout``)."""
    from deltabench.artifacts import ImageSet
    from deltabench.detectors.delta_influence import class_controls

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    images = ImageSet(torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.long))
    ctx = DetectionContext(
        model=model,
        train=images,
        affected=images.subset([0]),
        num_classes=2,
        rng=np.random.default_rng(0),
        trainer=None,  # not used to pick controls
        clean_holdout=images,
    )
    with pytest.raises(ValueError, match=r"the clean holdout \(ctx.clean_holdout\) has [0-3]$"):
        class_controls(ctx, per_point=4)
