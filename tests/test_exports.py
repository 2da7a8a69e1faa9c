"""Leaderboard exports: JSON, CSV and LaTeX parse back and carry the markdown's numbers."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest
from tiny_results import tiny_results
from typer.testing import CliRunner

from deltabench.cli import app
from deltabench.exports import export

KEYS = ["dataset", "attack", "detector"]


def _md_table(text: str, heading: str) -> pd.DataFrame:
    """The pipe table under ``## heading`` of the markdown report, cells as strings."""
    block = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return pd.DataFrame(cells[2:], columns=cells[0])


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


@pytest.fixture(scope="module")
def md() -> pd.DataFrame:
    return _md_table(export(tiny_results(), "md", "T"), "Detection").set_index(KEYS)


def test_json_carries_the_markdown_numbers(md):
    doc = json.loads(export(tiny_results(), "json", "T"))
    records = doc["tables"]["detection"]
    assert len(records) == md.size  # one record per numeric cell
    for r in records:
        shown = md.loc[(r["dataset"], r["attack"], r["detector"]), r["column"]]
        assert r["text"] == shown
        digits = 0 if r["column"] in ("flagged", "true poisons") else 1
        expected = [round(r["estimate"], digits), round(r["low"], digits), round(r["high"], digits)]
        assert _numbers(shown) == pytest.approx(expected)
    recall = next(r for r in records if r["detector"] == "delta-influence" and r["column"] == "recall %")
    assert recall["estimate"] == pytest.approx(100 * 14 / 15) and recall["n"] == 3  # (5 + 5 + 4) / 15
    grid = {(r["detector"], r["column"]): r for r in doc["tables"]["figure3"]}
    assert grid[("oracle", "badnet")]["mark"] == "✓" and grid[("delta-influence", "badnet")]["mark"] == "✗"


def test_csv_is_the_json_records_in_one_table():
    doc = json.loads(export(tiny_results(), "json", "T"))
    table = pd.read_csv(io.StringIO(export(tiny_results(), "csv", "T")))
    assert set(table["table"]) == {"figure3", "victims", "detection", "unlearning"}
    det = table[table["table"] == "detection"].reset_index(drop=True)
    assert det["text"].tolist() == [r["text"] for r in doc["tables"]["detection"]]
    assert det["estimate"].tolist() == pytest.approx([r["estimate"] for r in doc["tables"]["detection"]])
    shares = table[(table["table"] == "unlearning") & (table["column"] == "successes")]
    assert set(shares["k"].astype(int)) == {0, 2, 3} and set(shares["n"].astype(int)) == {3}


def test_latex_rows_are_the_markdown_rows(md):
    tex = export(tiny_results(), "latex", "T")
    block = tex.split(r"\label{tab:detection}", 1)[1]
    body = block.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0]
    rows = [line.removesuffix(r" \\").split(" & ") for line in body.strip().splitlines()]
    unescape = {r"\%": "%", r"\_": "_", r"\&": "&"}
    for row in rows:
        for old, new in unescape.items():
            row[:] = [cell.replace(old, new) for cell in row]
        assert md.loc[tuple(row[:3])].tolist() == row[3:]
    assert len(rows) == len(md)
    assert r"\checkmark" in tex and "✓" not in tex  # marks become LaTeX symbols


def test_cli_formats_and_one_line_errors(tmp_path):
    tiny_results().to_csv(tmp_path / "results.csv", index=False)
    ok = CliRunner().invoke(app, ["leaderboard", str(tmp_path), "--format", "json", "--write"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "leaderboard.json").read_text())["title"] == f"Leaderboard: {tmp_path.name}"
    out = tmp_path / "summary.tex"
    assert (
        CliRunner().invoke(app, ["leaderboard", str(tmp_path), "--format", "latex", "-o", str(out)]).exit_code
        == 0
    )
    assert out.read_text().count(r"\begin{tabular}") == 4
    bad = CliRunner().invoke(app, ["leaderboard", str(tmp_path), "--format", "xml"])
    assert (
        bad.exit_code == 2
        and bad.output.strip() == "error: --format: unknown format 'xml'; pick one of md, csv, json, latex"
    )
    shard = CliRunner().invoke(app, ["leaderboard", str(tmp_path), "--format", "csv", "--write"])
    assert shard.exit_code == 2 and len(shard.output.strip().splitlines()) == 1
