"""Intervals and paired tests against hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deltabench.stats import Interval, mcnemar_exact, mean_interval, paired_bootstrap, wilson_interval


def test_t_interval_known_answer():
    iv = mean_interval([1.0, 2.0, 3.0, float("nan")])  # mean 2, sd 1, t(0.975, 2) = 4.3027
    half = 4.302653 / math.sqrt(3)
    assert iv.n == 3 and iv.estimate == pytest.approx(2.0)
    assert (iv.low, iv.high) == pytest.approx((2 - half, 2 + half), abs=1e-5)
    assert mean_interval([0.5, 0.5]).low == pytest.approx(0.5)  # no spread, no width
    one = mean_interval([0.3])
    assert one.estimate == 0.3 and math.isnan(one.low) and one.format(100) == "30.0"


def test_wilson_known_answers():
    # z^2 / (n + z^2) with z = 1.95996: the upper end of 0/3 and the lower end of 3/3
    edge = 1.959964**2 / (3 + 1.959964**2)
    none, all_ = wilson_interval(0, 3), wilson_interval(3, 3)
    assert none.low == 0.0 and none.high == pytest.approx(edge, abs=1e-6)
    assert all_.high == 1.0 and all_.low == pytest.approx(1 - edge, abs=1e-6)
    half = wilson_interval(5, 10)
    assert (half.low, half.high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert half.format(100, 0) == "50 [24, 76]"


def test_paired_bootstrap_is_seeded_and_centred_on_the_mean_difference():
    rng = np.random.default_rng(1)
    a = rng.normal(size=40)
    b = a + 1.0 + rng.normal(scale=0.1, size=40)
    iv = paired_bootstrap(a, b)
    assert iv.estimate == pytest.approx(float(np.mean(b - a)))
    assert iv.low < iv.estimate < iv.high and iv.excludes(0.0)
    assert paired_bootstrap(a, b) == iv  # same seed, same interval
    constant = paired_bootstrap([0.0, 1.0, 2.0], [0.5, 1.5, 2.5])
    assert (constant.low, constant.high) == pytest.approx((0.5, 0.5))
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1.0], [1.0, 2.0])


def test_mcnemar_exact_known_answer():
    a = [True] * 6 + [False, True]
    b = [False] * 6 + [False, True]
    test = mcnemar_exact(a, b)
    assert (test.only_a, test.only_b) == (6, 0)
    assert test.p_value == pytest.approx(2 * 0.5**6)  # two-sided binomial on 6 discordant pairs
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0


def test_clipped_interval_stays_in_range():
    iv = mean_interval([0.95, 1.0, 1.0]).clipped(0.0, 1.0)
    assert iv.high == 1.0 and iv.low < 0.95 and iv.estimate == pytest.approx(0.98333, abs=1e-4)


def test_interval_excludes():
    assert Interval(0.1, 0.05, 0.2, 3).excludes(0.0)
    assert not Interval(0.1, -0.05, 0.2, 3).excludes(0.0)
