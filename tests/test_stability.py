"""``deltabench stability``: hand-made victims where the answer is known; a significant change is
counted, a change the test cannot tell from noise is not."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from deltabench.cli import app
from deltabench.stability import compare_verdicts, render_stability, shared_victims, split_by_seed
from deltabench.stats import two_sample_p

SEEDS = range(12)


def _rows(successes: dict[tuple[str, str], set[int]], seeds: range = SEEDS) -> pd.DataFrame:
    """One ok row per (detector, unlearner) and seed of a BadNet run; success on the given seeds."""
    return pd.DataFrame(
        [
            {"dataset": "digits", "model": "small-cnn", "attack": "badnet", "detector": detector,
             "unlearner": unlearner, "seed": seed, "status": "ok", "success": seed in good}
            for (detector, unlearner), good in successes.items()
            for seed in seeds
        ]
    )  # fmt: skip


EVEN, ODD = set(range(0, 12, 2)), set(range(1, 12, 2))


def test_boschloo_p_values():
    assert two_sample_p(5, 5, 0, 5) == pytest.approx(1 / 512)  # the most extreme 5 vs 5 table
    assert two_sample_p(3, 5, 2, 5) > 0.5
    assert two_sample_p(4, 4, 6, 6) == 1.0 and two_sample_p(0, 0, 1, 3) == 1.0
    with pytest.raises(ValueError):
        two_sample_p(6, 5, 0, 5)


def test_split_by_seed_gives_disjoint_sets():
    frame = _rows({("oracle", "eu"): set(SEEDS)})
    even, odd = split_by_seed(frame, "parity")
    assert set(even["seed"]) == EVEN and set(odd["seed"]) == ODD
    low, high = split_by_seed(frame, "halves")
    assert set(low["seed"]) == set(range(6)) and set(high["seed"]) == set(range(6, 12))
    with pytest.raises(ValueError):
        split_by_seed(frame, "random")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        split_by_seed(frame[frame["seed"] == 0])


def test_a_significant_rate_change_is_counted_and_a_noisy_one_is_not():
    frame = _rows(
        {
            ("oracle", "eu"): EVEN,  # 6/6 on even seeds, 0/6 on odd: p = 0.0005
            ("spectral", "eu"): {0, 2, 4, 6, 1, 3, 5},  # 4/6 vs 3/6
            ("oracle", "none"): set(),
        }
    )
    report = compare_verdicts(*split_by_seed(frame))
    changed = {v.key[3:] for v in report.rates if v.differs}
    assert changed == {("oracle", "eu")}
    assert report.changed == 1  # the orderings do not flip: spectral is tied with oracle on both sides
    assert "oracle/eu: 6/6 vs 0/6" in render_stability(report)


def test_an_ordering_flip_is_counted_only_when_significant_on_both_sides():
    flipped = _rows({("oracle", "eu"): EVEN, ("spectral", "eu"): ODD})
    report = compare_verdicts(*split_by_seed(flipped))
    (order,) = report.orders
    assert (order.a, order.b) == ("above", "below") and order.flips
    assert report.changed == 3  # two rates and the ordering

    # Nominally reversed (5/6 vs 3/6, then 3/6 vs 5/6) but significant on neither side: not counted.
    noisy = _rows({("oracle", "eu"): {0, 2, 4, 6, 8, 1, 3, 5}, ("spectral", "eu"): {0, 2, 4, 1, 3, 5, 7, 9}})
    report = compare_verdicts(*split_by_seed(noisy))
    assert report.changed == 0 and not report.orders[0].one_set_only

    # Significant on one side only (6/6 vs 0/6, p = 0.0005, then 6/6 vs 3/6, p = 0.068), and
    # spectral's 0/6 vs 3/6 is not significant either: reported apart, not counted.
    one_side = _rows({("oracle", "eu"): set(SEEDS), ("spectral", "eu"): {1, 3, 5}})
    report = compare_verdicts(*split_by_seed(one_side))
    assert report.changed == 0 and report.orders[0].one_set_only
    assert "one set only" in render_stability(report)


def test_orderings_are_checked_only_for_the_named_unlearners():
    frame = _rows({("oracle", "none"): EVEN, ("spectral", "none"): ODD})
    assert not compare_verdicts(*split_by_seed(frame)).orders
    assert len(compare_verdicts(*split_by_seed(frame), order_unlearners=("none",)).orders) == 1


def test_two_runs_and_the_cli(tmp_path):
    a = _rows({("oracle", "eu"): set(SEEDS), ("spectral", "eu"): EVEN})
    b = a.copy()
    b.loc[b["detector"] == "oracle", "success"] = False  # the second run's oracle never succeeds
    b.loc[b.index[0], "status"] = "failed"
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    report = compare_verdicts(a, b)
    assert report.changed == 2  # oracle's rate (12/12 vs 0/11), and oracle above spectral, then below
    assert report.rates[0].victims == (12, 11) and any("not ok" in n for n in report.notes)
    runner = CliRunner()
    out = runner.invoke(
        app, ["stability", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--fail-if-changed"]
    )
    assert out.exit_code == 1 and "**2**" in out.output, out.output
    # Within A, spectral succeeds on the even seeds only: 3/6 in each half, 6/6 against 0/6 by parity.
    halves = runner.invoke(
        app, ["stability", str(tmp_path / "a.csv"), "--split", "halves", "--fail-if-changed"]
    )
    assert halves.exit_code == 0 and "lower seeds vs upper seeds" in halves.output, halves.output
    parity = runner.invoke(app, ["stability", str(tmp_path / "a.csv"), "--fail-if-changed"])
    assert parity.exit_code == 1 and "spectral/eu: 6/6 vs 0/6" in parity.output, parity.output
    bad = runner.invoke(app, ["stability", str(tmp_path / "a.csv"), "--split", "random"])
    assert bad.exit_code == 2 and "parity" in bad.output


def test_two_runs_are_cut_to_the_seeds_both_ran(tmp_path):
    full = _rows({("oracle", "eu"): set(range(4))})  # 4/12 over all seeds, 4/4 on seeds 0-3
    few = _rows({("oracle", "eu"): set(range(4))}, seeds=range(4))
    a, b = shared_victims(full, few)
    assert set(a["seed"]) == set(range(4)) and len(a) == len(b) == 4
    assert compare_verdicts(full, few).changed == 1  # 4/12 vs 4/4, had the runs not been cut
    full.to_csv(tmp_path / "full.csv", index=False)
    few.to_csv(tmp_path / "few.csv", index=False)
    out = CliRunner().invoke(app, ["stability", str(tmp_path / "full.csv"), str(tmp_path / "few.csv")])
    assert out.exit_code == 0 and "**0**" in out.output, out.output
