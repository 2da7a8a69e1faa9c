"""``deltabench compare``: pairing, significance with enough pairs, none with three, the CI exit code."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from deltabench.cli import app
from deltabench.compare import compare_components, compare_runs

QUICK = Path(__file__).resolve().parent.parent / "leaderboards" / "quick" / "results.csv"


def _eight_seeds() -> pd.DataFrame:
    """The published BadNet rows re-labelled as 8 seeds (seeds 0-2 repeated), to have enough pairs."""
    rows = pd.read_csv(QUICK)
    rows = rows[rows["attack"] == "badnet"]
    parts = [rows.assign(seed=rows["seed"] + 3 * k) for k in range(3)]
    frame = pd.concat(parts, ignore_index=True)
    return frame[frame["seed"] < 8]


def test_a_run_against_itself_differs_nowhere():
    rows = pd.read_csv(QUICK)
    result = compare_runs(rows, rows)
    assert result.groups and not result.regressions
    assert all(not g.significant() and g.victims_differ == 0 for g in result.groups)
    assert sum(g.pairs for g in result.groups) == (rows["status"] == "ok").sum()


def test_a_consistent_regression_is_significant_and_fails_the_check(tmp_path):
    a = _eight_seeds()
    b = a.copy()
    hit = b["unlearner"] == "eu"
    b.loc[hit, "unlearned_psr"] = 1.0  # EU no longer removes the backdoor anywhere
    b.loc[hit, "success"] = False
    b = b.drop(b[(b["detector"] == "spectral") & (b["seed"] == 7)].index)  # a missing cell
    b.loc[b.index[:3], "victim_clean_acc"] += 0.01  # another machine's victims
    result = compare_runs(a, b)
    eu = {g.key[1]: g for g in result.groups if g.key[2] == "eu"}
    oracle = eu["oracle"]
    assert oracle.pairs == 8 and "unlearned_psr" in oracle.worse() and "success" in oracle.worse()
    assert oracle.differences["unlearned_psr"].estimate == 1.0
    assert not [g for g in result.groups if g.key[2] == "cf" and g.significant()]
    assert any("only in A" in line and "spectral" in line for line in result.unpaired)
    assert sum(g.victims_differ for g in result.groups) == 3
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    runner = CliRunner()
    out = runner.invoke(app, ["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--fail-if-worse"])
    assert out.exit_code == 1, out.output
    assert "worse: badnet/oracle/eu" in out.output
    same = runner.invoke(
        app, ["compare", str(tmp_path / "a.csv"), str(tmp_path / "a.csv"), "--fail-if-worse"]
    )
    assert same.exit_code == 0 and "Significant differences: 0 of" in same.output


def test_two_detectors_of_one_run_three_victims_are_never_significant():
    rows = pd.read_csv(QUICK)
    result = compare_components(rows, "detector", "influence-threshold", "delta-influence")
    # every victim of an attack pairs (3 seeds; fewer where the attack did not take, e.g. a brew)
    victims = rows[rows["status"] == "ok"].groupby("attack")["seed"].nunique()
    assert {g.key[0] for g in result.groups} == set(victims.index)
    assert all(g.pairs == victims[g.key[0]] for g in result.groups)
    assert set(victims) <= {1, 2, 3}
    assert not any(g.significant() for g in result.groups)  # sign-flip p >= 0.25 with <= 3 pairs
    precision = [g for g in result.groups if g.key[0] == "witches-brew"][0].differences["precision"]
    assert precision.estimate > 0.2  # Δ-Influence's precision is far higher on every victim


def test_compare_errors_are_one_line(tmp_path):
    runner = CliRunner()
    out = runner.invoke(app, ["compare", str(QUICK), "--detector", "nope", "--against", "oracle"])
    assert out.exit_code == 2 and "no detector labelled 'nope'" in out.output
    out = runner.invoke(app, ["compare", str(tmp_path)])
    assert out.exit_code == 2 and "no leaderboard CSV" in out.output
