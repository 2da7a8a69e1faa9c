"""The documented way to add a detector works: install plugins/deltabench-highloss, use it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tiny_suite import tiny_suite

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "plugins" / "deltabench-highloss"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """An environment in which the example plugin is pip-installed (into a private folder)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(PLUGIN)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(ROOT), env.get("PYTHONPATH", "")])
    return env


def test_plugins_lists_the_example_with_its_distribution(plugin_env):
    out = subprocess.run(
        [sys.executable, "-m", "deltabench", "plugins"],
        env=plugin_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if "high-loss" in line)
    assert line.startswith("detector") and "[deltabench-highloss 0.1.0]" in line
    assert "fraction = 0.05" in out.stdout
    assert any(
        line.startswith("detector  spectral") or "spectral" in line for line in out.stdout.splitlines()
    )


def test_a_suite_runs_with_the_example_detector(plugin_env, tmp_path):
    suite = tiny_suite(
        tmp_path,
        name="plugin",
        attacks=["badnet"],
        detectors=[{"name": "high-loss", "params": {"fraction": 0.1}}],
        unlearners=["none"],
        references=False,
    )
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = subprocess.run(
        [sys.executable, "-m", "deltabench", "run", str(path)], env=plugin_env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    row = pd.read_csv(tmp_path / "out" / "results.csv").iloc[0]
    assert row["detector"] == "high-loss" and row["status"] == "ok"
    assert row["flagged"] == round(0.1 * row["n_train"])
    report = (tmp_path / "out" / "leaderboard.md").read_text()  # the plugin's own section, no core change
    section = report.split("## High-loss: share flagged and recall, per attack")[1]
    badnet = next(line for line in section.splitlines() if line.startswith("| badnet"))
    assert f"{row['flagged'] / row['n_train']:.3f}" in badnet and f"{row['recall']:.3f}" in badnet
