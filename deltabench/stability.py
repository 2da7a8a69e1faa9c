"""Do a leaderboard's verdicts hold up? Compare two disjoint sets of victims, verdict by verdict.

A leaderboard states two kinds of verdict, and both are checked:

- **success rate** of every (dataset, model, attack, detector, unlearner) group: the share of its
  victims with PSR < 5 %. It *differs* between two sets of victims when Boschloo's exact two-sided
  test (``stats.two_sample_p``) rejects equal rates at the 5 % level.
- **detector ordering** per (dataset, model, attack, unlearner): within one set, detector X is
  *ordered above* Y when X has more successes and the same test rejects equal rates; otherwise
  the pair is *tied*. An ordering *flips* when one set orders X above Y and the other Y above X.
  An ordering significant in one set and tied in the other is reported apart, not counted: the
  difference between "significant" and "not significant" is not itself significant.

The detectors of one set share its victims, so their flags are paired; the test treats them as
independent, which is conservative when a victim that is hard for one detector is hard for the
others (positively correlated flags), and keeps one test for every verdict. The two sets come from
splitting one run's victims by seed (:func:`split_by_seed`), or from two runs of the same suite
(another machine, another thread count): the question and the rule are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

import pandas as pd

from .rows import SETTING, ok_rows, success_flags
from .stats import CONFIDENCE, two_sample_p

__all__ = [
    "RateVerdict",
    "OrderVerdict",
    "StabilityReport",
    "split_by_seed",
    "shared_victims",
    "compare_verdicts",
    "render_stability",
]

SPLITS = ("parity", "halves")
Split = Literal["parity", "halves"]
Ordering = Literal["above", "below", "tied"]


@dataclass(frozen=True)
class RateVerdict:
    """One group's success count in sets A and B and the test of equal rates."""

    key: tuple[str, ...]
    successes: tuple[int, int]
    victims: tuple[int, int]
    p_value: float

    @property
    def differs(self) -> bool:
        return self.p_value < 1 - CONFIDENCE


@dataclass(frozen=True)
class OrderVerdict:
    """How detector ``first`` stands against ``second`` in sets A and B (``above``: more successes)."""

    key: tuple[str, ...]
    first: str
    second: str
    a: Ordering
    b: Ordering

    @property
    def flips(self) -> bool:
        return {self.a, self.b} == {"above", "below"}

    @property
    def one_set_only(self) -> bool:
        return (self.a == "tied") != (self.b == "tied")


@dataclass
class StabilityReport:
    """Every verdict of two sets of victims; ``changed`` is the number the goal wants at 0."""

    a_name: str
    b_name: str
    rates: list[RateVerdict]
    orders: list[OrderVerdict]
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(v.differs for v in self.rates) + sum(v.flips for v in self.orders)


def split_by_seed(frame: pd.DataFrame, how: Split = "parity") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two disjoint sets of victims: even and odd seeds (``parity``), or the lower and upper half of
    the sorted seeds (``halves``). Seeds decide victims, so no victim is in both sets."""
    if how not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got '{how}'")
    seeds = sorted(frame["seed"].unique())
    if len(seeds) < 2:
        raise ValueError(f"need at least 2 seeds to split, have {len(seeds)}")
    first = {s for s in seeds if int(s) % 2 == 0} if how == "parity" else set(seeds[: len(seeds) // 2])
    chosen = frame["seed"].isin(first)
    return frame[chosen], frame[~chosen]


def shared_victims(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two runs cut to the (dataset, model, attack, seed) settings both ran, so that a run of a few
    seeds is compared with the same seeds of a larger one, not with other victims."""
    keys = [*SETTING, "seed"]
    both = a[keys].drop_duplicates().merge(b[keys].drop_duplicates())
    return a.merge(both, on=keys), b.merge(both, on=keys)


def _counts(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    ok = ok_rows(frame)
    rows = ok.assign(_success=success_flags(ok["success"]))
    return rows.groupby(by)["_success"].agg(successes="sum", victims="size")


def _ordering(k1: int, n1: int, k2: int, n2: int) -> Ordering:
    if two_sample_p(k1, n1, k2, n2) >= 1 - CONFIDENCE or k1 * n2 == k2 * n1:
        return "tied"
    return "above" if k1 * n2 > k2 * n1 else "below"


def compare_verdicts(
    a: pd.DataFrame,
    b: pd.DataFrame,
    a_name: str = "A",
    b_name: str = "B",
    *,
    order_unlearners: tuple[str, ...] = ("eu",),
) -> StabilityReport:
    """Test every success-rate verdict, and every detector ordering under ``order_unlearners``."""
    group = [*SETTING, "detector", "unlearner"]
    ca, cb = _counts(a, group), _counts(b, group)
    notes = []
    for side, f in (("A", a), ("B", b)):
        failed = int((f["status"] != "ok").sum())
        if failed:
            notes.append(f"{side}: {failed} rows not ok, left out")
    for side, only in (("A", ca.index.difference(cb.index)), ("B", cb.index.difference(ca.index))):
        if len(only):
            notes.append(f"only in {side}: {', '.join('/'.join(map(str, k)) for k in only)}")
    both = ca.merge(cb, left_index=True, right_index=True, suffixes=("_a", "_b"))
    rates = [
        RateVerdict(
            tuple(str(k) for k in key),
            (int(r.successes_a), int(r.successes_b)),
            (int(r.victims_a), int(r.victims_b)),
            two_sample_p(int(r.successes_a), int(r.victims_a), int(r.successes_b), int(r.victims_b)),
        )
        for key, r in both.iterrows()
    ]
    orders = []
    frame = both.reset_index()
    for key, rows in frame[frame["unlearner"].isin(order_unlearners)].groupby(
        [*SETTING, "unlearner"], sort=False
    ):
        by_detector = rows.set_index("detector")
        for first, second in combinations(by_detector.index, 2):
            x, y = by_detector.loc[first], by_detector.loc[second]
            orders.append(
                OrderVerdict(
                    tuple(str(k) for k in key), str(first), str(second),
                    _ordering(int(x.successes_a), int(x.victims_a), int(y.successes_a), int(y.victims_a)),
                    _ordering(int(x.successes_b), int(x.victims_b), int(y.successes_b), int(y.victims_b)),
                )
            )  # fmt: skip
    return StabilityReport(a_name, b_name, rates, orders, notes)


def render_stability(report: StabilityReport) -> str:
    """Markdown: the count, then every verdict that changed and every one-set-only ordering."""
    level = f"{1 - CONFIDENCE:.2f}"
    lines = [
        f"# Stability: {report.a_name} vs {report.b_name}",
        "",
        f"Verdicts that differ significantly: **{report.changed}** "
        f"({sum(v.differs for v in report.rates)} of {len(report.rates)} success rates, "
        f"{sum(v.flips for v in report.orders)} of {len(report.orders)} detector orderings flipped).",
        "",
        f"Success rate (PSR < 5 %): Boschloo's exact two-sided test, p < {level}. Ordering: X above Y "
        f"in a set when X has more successes there and the same test gives p < {level}; a flip is X "
        "above Y in one set and below in the other.",
    ]
    changed = [v for v in report.rates if v.differs]
    if changed:
        lines += ["", "Success rates that differ:"]
        lines += [
            f"- {'/'.join(v.key)}: {v.successes[0]}/{v.victims[0]} vs {v.successes[1]}/{v.victims[1]} "
            f"(p = {v.p_value:.3g})"
            for v in changed
        ]
    for title, chosen in (
        ("Orderings that flip:", [v for v in report.orders if v.flips]),
        (
            "Orderings significant in one set only (not counted):",
            [v for v in report.orders if v.one_set_only],
        ),
    ):
        if chosen:
            lines += ["", title]
            lines += [f"- {'/'.join(v.key)}: {v.first} vs {v.second}: {v.a} / {v.b}" for v in chosen]
    if report.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"
