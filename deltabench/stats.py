"""Intervals and paired tests: the one place the leaderboard, ``compare`` and the site get them.

Means over victims carry a Student-t 95 % interval (victims are few, 3-10, where a percentile
bootstrap is too narrow); success counts carry a Wilson score interval (sound at 0/n and n/n,
where the normal approximation collapses to a point); differences between paired cells carry a
paired-bootstrap interval, judged significant by an exact sign-flip permutation test (the
percentile bootstrap alone is far too narrow at 3-5 pairs: with 3 pairs no test at the 5 % level
can reject, and the permutation test says so), and success flags an exact McNemar test. Success
counts of two independent samples (two halves of a run's victims, two runs) are compared with
Boschloo's exact test: as exact as Fisher's, and uniformly more powerful, which makes "no
significant difference" the harder claim to earn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .lazy import lazy_module

sps = lazy_module("scipy.stats")  # ~1 s of imports that every registry load (not only reports) would pay

__all__ = [
    "Interval",
    "mean_interval",
    "wilson_interval",
    "paired_bootstrap",
    "mcnemar_exact",
    "McNemar",
    "two_sample_p",
    "CONFIDENCE",
]

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate and its two-sided interval (``low``/``high`` are NaN when ``n`` < 2)."""

    estimate: float
    low: float
    high: float
    n: int

    def excludes(self, value: float) -> bool:
        """Whether ``value`` lies outside the interval (a significant difference from it)."""
        return bool(self.low > value or self.high < value)

    def clipped(self, low: float, high: float) -> Interval:
        """The interval cut to a quantity's range (a t-interval of shares can pass 0 or 1)."""
        if math.isnan(self.low):
            return self
        return Interval(self.estimate, max(self.low, low), min(self.high, high), self.n)

    def format(self, scale: float = 1.0, digits: int = 1) -> str:
        """``"12.3 [10.1, 14.5]"``, or the bare estimate when there is no interval."""
        if math.isnan(self.estimate):
            return "-"
        est = f"{self.estimate * scale:.{digits}f}"
        if math.isnan(self.low):
            return est
        return f"{est} [{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]"


def mean_interval(values: np.ndarray | list[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean with a Student-t interval; NaNs are dropped. Zero spread gives a zero-width interval."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Share of successes with the Wilson score interval."""
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)


def paired_bootstrap(
    a: np.ndarray | list[float],
    b: np.ndarray | list[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """Mean of ``b - a`` over pairs with a percentile interval from resampling the pairs.

    Pairs where either side is NaN are dropped. The resampling is seeded so a report is
    reproducible.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    diff = (b - a)[keep]
    n = int(diff.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(diff.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(mean, float(low), float(high), n)


@dataclass(frozen=True)
class McNemar:
    """Discordant pairs of two paired success flags and the exact two-sided p-value."""

    only_a: int
    only_b: int
    p_value: float


def mcnemar_exact(a: np.ndarray | list[bool], b: np.ndarray | list[bool]) -> McNemar:
    """Exact McNemar test (a two-sided sign test on the pairs where exactly one side succeeds)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(sps.binomtest(only_a, discordant, 0.5).pvalue)
    return McNemar(only_a, only_b, p)


def sign_flip_p(a: np.ndarray | list[float], b: np.ndarray | list[float], *, seed: int = 0) -> float:
    """Two-sided p-value of the paired permutation test that ``b - a`` has mean 0.

    Every sign pattern is enumerated for up to 16 pairs (exact); beyond, 100,000 seeded random
    patterns. Pairs with a NaN side are dropped; no pairs, or all differences 0, give 1.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = (b - a)[~(np.isnan(a) | np.isnan(b))]
    n = diff.size
    observed = abs(diff.sum())
    if n == 0 or observed == 0:
        return 1.0
    if n <= 16:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1, 1], size=(100_000, n))
    sums = np.abs(signs @ diff)
    return float(np.mean(sums >= observed - 1e-12 * max(1.0, observed)))


@lru_cache(maxsize=4096)
def two_sample_p(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-sided p-value of Boschloo's exact test that two independent samples share a success rate.

    Cached: a stability report asks the same few small tables many times, and each costs ~0.1 s.
    An empty sample, or two samples that are both all-success or all-failure, give 1.
    """
    for k, n in ((successes_a, n_a), (successes_b, n_b)):
        if not 0 <= k <= n:
            raise ValueError(f"successes must lie in [0, n], got {k} of {n}")
    if n_a == 0 or n_b == 0 or successes_a + successes_b in (0, n_a + n_b):
        return 1.0
    table = [[successes_a, successes_b], [n_a - successes_a, n_b - successes_b]]
    return float(min(1.0, sps.boschloo_exact(table, alternative="two-sided").pvalue))
