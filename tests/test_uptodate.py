"""The rerun check: a finished suite's rerun is skipped without torch, and only when nothing a run
reads has changed since its last complete run (every other case goes the full path)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_suite import tiny_suite

from deltabench import uptodate
from deltabench.locking import hold_output_lock
from deltabench.outputs import MANIFEST_FILE

pytestmark = pytest.mark.skipif(
    uptodate.gpu_possible(), reason="a GPU may be present: the check always declines"
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A folder holding a tiny suite (relative output and cache) after one complete run."""
    folder = tmp_path_factory.mktemp("finished")
    suite = tiny_suite(
        folder,
        output="out",
        cache="cache",
        models=[{"name": "small-cnn", "params": {"width": 4, "hidden": 8}}],
        training={"epochs": 1, "translate": 0, "hflip": False},
        unlearners=["none"],
        references=False,
    )
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    subprocess.run(
        [sys.executable, "-m", "deltabench", "run", "suite.yaml"], cwd=folder, check=True, capture_output=True
    )
    return folder


@pytest.fixture
def copy(finished, tmp_path, monkeypatch) -> Path:
    """A private copy of the finished folder, as the working directory."""
    folder = tmp_path / "copy"
    shutil.copytree(finished, folder, copy_function=shutil.copy2)  # keeps mtimes: the report stays newer
    monkeypatch.chdir(folder)
    return folder


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "out" / MANIFEST_FILE).read_text())


def _write_manifest(folder: Path, manifest: dict) -> None:
    (folder / "out" / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_a_rerun_of_a_finished_suite_is_skipped_without_importing_torch(finished):
    code = (
        "import sys\n"
        "from deltabench.cli import app\n"
        "try:\n    app(['run', 'suite.yaml'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'pandas' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=finished, capture_output=True, text=True, check=True
    )
    assert "1 rows (0 computed, 1 reused, 0 failed)" in out.stdout
    assert "unchanged since its last complete run" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_the_finished_copy_is_recognised(copy):
    assert uptodate.finished_rows(Path("suite.yaml")) == (1, Path("out") / "results.csv")


def _edit_suite(folder: Path) -> None:
    path = folder / "suite.yaml"
    path.write_text(path.read_text() + "# a comment changes the file, so the check declines\n")


def _edit_csv(folder: Path) -> None:
    path = folder / "out" / "results.csv"
    path.write_text(path.read_text().replace(",ok,", ",ok ,", 1))


def _failed_row(folder: Path) -> None:
    """A failed cell (which a rerun retries), with the manifest's CSV hash updated to match."""
    from deltabench.file_digest import sha256_file

    path = folder / "out" / "results.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[0]["status"] = "failed"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    manifest = _manifest(folder)
    manifest["csv_sha256"] = sha256_file(path)
    _write_manifest(folder, manifest)


def _other_stamp(folder: Path) -> None:
    manifest = _manifest(folder)
    manifest["runs"][-1]["stamp"] = "0" * 16  # other code, plugins or versions
    _write_manifest(folder, manifest)


def _no_stamp(folder: Path) -> None:
    manifest = _manifest(folder)
    manifest["runs"][-1].pop("stamp")  # a manifest written before stamps existed
    _write_manifest(folder, manifest)


def _interrupted(folder: Path) -> None:
    manifest = _manifest(folder)
    manifest["runs"][-1]["completed"] = False
    _write_manifest(folder, manifest)


def _stale_report(folder: Path) -> None:
    import os

    report = folder / "out" / "leaderboard.md"
    old = report.stat().st_mtime_ns - 10**9
    os.utime(report, ns=(old, old))


def _submission(folder: Path) -> None:
    shutil.copy(folder / "out" / "results.csv", folder / "out" / "results-someone.csv")


def _shard(folder: Path) -> None:
    shutil.copy(folder / "out" / "results.csv", folder / "out" / "results.shard-0-of-2.csv")


def _no_report(folder: Path) -> None:
    (folder / "out" / "leaderboard.md").unlink()


@pytest.mark.parametrize(
    "change",
    [
        _edit_suite,
        _edit_csv,
        _failed_row,
        _other_stamp,
        _no_stamp,
        _interrupted,
        _stale_report,
        _submission,
        _shard,
        _no_report,
    ],
)
def test_the_check_declines_whenever_a_rerun_could_compute_or_write_something(copy, change):
    change(copy)
    assert uptodate.finished_rows(Path("suite.yaml")) is None


def test_without_a_report_a_missing_leaderboard_does_not_matter(copy):
    _no_report(copy)
    assert uptodate.finished_rows(Path("suite.yaml"), report=False) == (1, Path("out") / "results.csv")


def test_the_check_declines_while_another_run_holds_the_folder(copy):
    with hold_output_lock(Path("out") / "results.csv"):
        assert uptodate.finished_rows(Path("suite.yaml")) is None
    assert uptodate.finished_rows(Path("suite.yaml")) is not None


def test_the_stamp_changes_with_any_file_of_the_package(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    (package / "site").mkdir(parents=True)
    (package / "stages.py").write_text("x = 1\n")
    (package / "site" / "site.js").write_text("let x = 1;\n")
    monkeypatch.setattr(uptodate, "_PACKAGE", package)
    before = uptodate.run_stamp()
    (package / "site" / "site.js").write_text("let x = 2;\n")
    assert uptodate.run_stamp() != before


def test_the_full_path_still_decides_after_a_declined_check(copy):
    """A declined check loses nothing: the full run recomputes the failed cell and writes a stamp."""
    _failed_row(copy)
    out = subprocess.run(
        [sys.executable, "-m", "deltabench", "run", "suite.yaml"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "1 computed, 0 reused" in out.stdout
    assert uptodate.finished_rows(Path("suite.yaml")) == (1, Path("out") / "results.csv")
