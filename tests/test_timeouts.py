"""The suite's ``stage_timeout``: a hanging component fails its own cells and the suite goes on."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import hanging_plugin
import pandas as pd
import pytest
import yaml
from tiny_suite import tiny_suite

from deltabench.config import suite_from_dict
from deltabench.registry import load_registry
from deltabench.runner import run_suite
from deltabench.timeouts import StageTimeoutError, expire, time_limited

ROOT = Path(__file__).resolve().parent.parent


def _sleep_loop() -> None:
    while True:
        time.sleep(1)


def _swallowing_loop() -> None:
    while True:  # a component that catches every Exception cannot swallow the time limit
        with contextlib.suppress(Exception):
            time.sleep(1)


@pytest.mark.parametrize("hang", [_sleep_loop, lambda: threading.Event().wait(), _swallowing_loop])
def test_a_python_level_hang_is_stopped_and_the_alarm_left_as_it_was(hang):
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(StageTimeoutError, match=r"^detect stage timed out after 0\.2 s"):
        time_limited(hang, "detect", "key", 0.2)
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_stage_within_its_limit_returns_its_value():
    assert time_limited(lambda: 7, "victim", "key", 30.0) == 7
    assert time_limited(lambda: 8, "victim", "key", None) == 8
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_an_expired_stage_fails_at_once_without_running():
    ran = []
    expire({"stuck"})
    try:
        with pytest.raises(StageTimeoutError, match="timed out after 5 s"):
            time_limited(lambda: ran.append(1), "detect", "stuck", 5.0)
        assert time_limited(lambda: 9, "detect", "other", 5.0) == 9
    finally:
        expire(())
    assert ran == []


def tiny(tmp_path: Path, **changes) -> dict:
    return tiny_suite(tmp_path, name="hang", detectors=["oracle"], unlearners=["none"]) | changes


def assert_only_hanging_cells_failed(rows: pd.DataFrame, hanging: list[str], limit: str) -> None:
    bad = rows[rows["detector"].isin(hanging)]
    assert len(bad) and (bad["status"] == "failed").all()
    assert bad["error"].str.contains(f"detect stage timed out after {limit} s").all(), bad["error"].tolist()
    good = rows[~rows["detector"].isin(hanging)]
    assert set(good["detector"]) == {"oracle", "spectral"} and (good["status"] == "ok").all()


def test_serial_run_fails_only_the_hanging_cells_and_goes_on(tmp_path):
    registry = load_registry(entry_points=False, extra_plugins=(hanging_plugin,))
    run_suite(suite_from_dict(tiny(tmp_path), registry), registry=registry)  # victim cached, no limit
    suite = tiny(tmp_path, detectors=["hang-sleep", "hang-wait", "spectral"], stage_timeout=3)
    summary = run_suite(suite_from_dict(suite, registry), registry=registry)
    rows = pd.read_csv(summary.output)
    assert len(rows) == 4 and summary.failed == 2  # {oracle, 2 hanging, spectral} x {none}
    assert_only_hanging_cells_failed(rows, ["hang-sleep", "hang-wait"], "3")


def install_hanging_plugin(site: Path) -> dict[str, str]:
    """The hanging detectors as an installed distribution with an entry point, so that worker
    processes (which load installed plugins themselves) find them; returns the environment."""
    shutil.copy(Path(hanging_plugin.__file__), site / "hanging_plugin.py")
    info = site / "deltabench_hanging_test-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: deltabench-hanging-test\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[deltabench]\nhanging = hanging_plugin\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.slow
def test_worker_pool_fails_only_the_hanging_cells_even_where_the_alarm_cannot_reach(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    env = install_hanging_plugin(site)
    registry = load_registry(entry_points=False, extra_plugins=(hanging_plugin,))
    base = tiny(tmp_path, seeds=[0, 1])
    run_suite(suite_from_dict(base, registry), registry=registry)  # victims cached, no limit
    suite = {
        **base,
        "detectors": ["hang-sleep", "hang-unreachable", "spectral"],
        "stage_timeout": 3,
        "executor": {"name": "processes", "params": {"workers": 2}},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    done = subprocess.run(
        [sys.executable, "-m", "deltabench", "run", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stderr[-3000:]  # 1: some cells failed
    rows = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(rows) == 8 and rows["cell_id"].is_unique  # 2 seeds x {oracle, 2 hanging, spectral}
    assert_only_hanging_cells_failed(rows, ["hang-sleep", "hang-unreachable"], "3")
