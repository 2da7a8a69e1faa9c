"""The corpus of bad suites in tests/bad_suites/: each is one mistake a user makes, and the real CLI
must answer it with exactly one `error: <file>: <key>: <problem>; <fix>` line on stderr and exit
code 2, before anything runs. The first line of each file reads `# expect: <fragment of that line>`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from deltabench.cli import app

CORPUS = Path(__file__).parent / "bad_suites"
CASES = sorted(CORPUS.glob("*.yaml"))
SUITES = sorted((Path(__file__).parents[1] / "suites").glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("ascii")
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: ...'"
    return first.removeprefix("# expect: ")


def _one_error_line(result, path: Path) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}"), lines[0]
    return lines[0]


def test_the_corpus_holds_at_least_40_distinct_mistakes():
    assert len(CASES) >= 40
    assert len({_expected(p) for p in CASES}) >= 40


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_validate_gives_one_line_with_file_key_and_fix(path):
    result = CliRunner().invoke(app, ["validate", str(path)])
    line = _one_error_line(result, path)
    assert _expected(path) in line, line
    assert result.stdout == ""


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_run_stops_at_the_same_line_and_computes_nothing(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default output leaderboards/<name> and cache .deltabench/ land here
    result = CliRunner().invoke(app, ["run", str(path)])
    assert _expected(path) in _one_error_line(result, path)
    assert list(tmp_path.iterdir()) == []  # no output folder, no cache, no escaped leaderboard


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_on_a_machine_without_one(tmp_path):
    path = tmp_path / "suite.yaml"
    text = (CORPUS / "device-not-on-this-machine.yaml").read_text().replace("cuda:64", "cuda")
    path.write_text(text)
    line = _one_error_line(CliRunner().invoke(app, ["validate", str(path)]), path)
    assert "device: 'cuda' but torch finds no CUDA GPU on this machine; use `device: auto`" in line


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has an Apple GPU")
def test_mps_on_a_machine_without_one(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text((CORPUS / "device-not-on-this-machine.yaml").read_text().replace("cuda:64", "mps"))
    line = _one_error_line(CliRunner().invoke(app, ["validate", str(path)]), path)
    assert "device: 'mps' but torch finds no Apple GPU" in line


def test_every_problem_of_a_file_gets_its_own_line(tmp_path):
    data = yaml.safe_load((CORPUS / "badnet-source-is-target.yaml").read_text())
    data["detectors"] = [{"name": "delta-influence", "params": {"T": 3, "n_tolerate": 3}}]
    data["output"] = "/dev/null/out"
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    keys = [line.split(": ")[2] for line in result.stderr.splitlines()]
    # parameters first; the machine (folders, device, datasets) is checked once they parse
    assert keys == ["attacks[0].params.target", "detectors[0].params.n_tolerate"]
    data["attacks"], data["detectors"] = ["badnet"], ["spectral"]
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert [line.split(": ")[2] for line in result.stderr.splitlines()] == ["output"]


def test_validate_takes_several_files_and_reports_each():
    result = CliRunner().invoke(app, ["validate", *map(str, SUITES), str(CORPUS / "seed-twice.yaml")])
    assert result.exit_code == 2
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [str(p) for p in SUITES]
    assert result.stderr.count("error: ") == 1


def test_shipped_suites_validate_with_the_cli():
    """The paper suites say `download: true`: missing files are fetched by the run, so they pass."""
    result = CliRunner().invoke(app, ["validate", *map(str, SUITES)])
    assert result.exit_code == 0, result.output
    assert result.stdout.count(": ok (") == len(SUITES) >= 6
