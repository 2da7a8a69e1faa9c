"""The runner: caching, resume, failure isolation, reproducibility."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tiny_suite import tiny_suite

from deltabench import Detector, Executor, Unlearner, hookimpl
from deltabench.config import suite_from_dict
from deltabench.registry import default_registry, load_registry
from deltabench.runner import RESULTS_FILE, run_suite


def artifact_times(cache: Path, stage: str) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in (cache / stage).glob("*.safetensors")}


def test_rerun_computes_nothing_and_adding_a_detector_trains_no_victim(tmp_path):
    registry = default_registry()
    first = run_suite(suite_from_dict(tiny_suite(tmp_path), registry), registry=registry)
    assert first.rows == 4 and first.computed == 4 and first.failed == 0  # {oracle, spectral} x {none, eu}
    rows = pd.read_csv(first.output)
    assert set(rows["status"]) == {"ok"}
    cache = tmp_path / "cache"
    victims = artifact_times(cache, "victim")
    unlearned = artifact_times(cache, "unlearn")

    again = run_suite(suite_from_dict(tiny_suite(tmp_path), registry), registry=registry)
    assert again.computed == 0 and again.reused == 4
    pd.testing.assert_frame_equal(pd.read_csv(again.output), rows)
    assert artifact_times(cache, "unlearn") == unlearned

    more = tiny_suite(
        tmp_path, detectors=["spectral", {"name": "spectral", "params": {"expected_poison_rate": 0.3}}]
    )
    grown = run_suite(suite_from_dict(more, registry), registry=registry)
    assert grown.computed == 2 and grown.rows == 6
    labels = set(pd.read_csv(grown.output)["detector"])  # the two settings stay apart in the leaderboard
    assert labels == {"oracle", "spectral", "spectral (expected_poison_rate=0.3)"}
    assert artifact_times(cache, "victim") == victims  # no victim retrained


def test_fresh_recomputes_every_cell_with_the_same_numbers(tmp_path):
    registry = default_registry()
    first = run_suite(suite_from_dict(tiny_suite(tmp_path), registry), registry=registry)
    before = pd.read_csv(first.output)
    again = run_suite(suite_from_dict(tiny_suite(tmp_path), registry), registry=registry, fresh=True)
    assert again.computed == again.rows == 4 and again.reused == 0
    after = pd.read_csv(again.output)
    cols = ["cell_id", "flagged", "victim_psr", "unlearned_psr", "unlearned_clean_acc"]
    pd.testing.assert_frame_equal(after[cols], before[cols])


def test_rows_and_stages_of_other_core_code_are_recomputed(tmp_path, monkeypatch: pytest.MonkeyPatch):
    import deltabench.stages as stages

    registry = default_registry()
    run_suite(suite_from_dict(tiny_suite(tmp_path), registry), registry=registry)
    victims = artifact_times(tmp_path / "cache", "victim")
    monkeypatch.setattr(stages, "core_digest", lambda: "edited-core")  # as after an edit of training.py
    again = run_suite(suite_from_dict(tiny_suite(tmp_path), registry), registry=registry)
    assert again.computed == again.rows == 4 and again.reused == 0
    assert len(artifact_times(tmp_path / "cache", "victim")) == 2 * len(victims)  # retrained, not reused


def test_rows_record_config_seed_versions_and_revision(tmp_path):
    registry = default_registry()
    summary = run_suite(suite_from_dict(tiny_suite(tmp_path), registry), registry=registry)
    row = pd.read_csv(summary.output).iloc[0]
    assert row["seed"] == 0 and row["dataset"] == "digits"
    assert '"budget": 0.5' in row["attack_params"]
    assert '"epochs": 2' in row["training"]
    assert "torch" in row["versions"] and row["code_revision"]
    for col in ("attack_s", "victim_s", "detect_s", "unlearn_s", "victim_peak_mb"):
        assert row[col] >= 0


def test_same_suite_and_seed_give_the_same_numbers(tmp_path):
    registry = default_registry()
    numbers = ["victim_clean_acc", "victim_psr", "flagged", "true_poisons_flagged", "unlearned_psr"]
    runs = []
    for name in ("a", "b"):
        suite = tiny_suite(tmp_path / name)
        runs.append(pd.read_csv(run_suite(suite_from_dict(suite, registry), registry=registry).output))
    pd.testing.assert_frame_equal(runs[0][numbers], runs[1][numbers])


class Exploding(Detector):
    """Always raises: a broken third-party detector."""

    name = "exploding"

    def detect(self, ctx):
        raise RuntimeError("boom in detect")


class ExplodingUnlearner(Unlearner):
    """Always raises: a broken third-party unlearner."""

    name = "exploding-unlearner"

    def unlearn(self, ctx):
        raise ValueError("boom in unlearn")


def test_a_crashing_plugin_fails_only_its_own_cells(tmp_path):
    @hookimpl
    def register_detectors(register):
        register(Exploding)

    @hookimpl
    def register_unlearners(register):
        register(ExplodingUnlearner)

    plugin = types.SimpleNamespace(
        register_detectors=register_detectors, register_unlearners=register_unlearners
    )
    registry = load_registry(entry_points=False, extra_plugins=(plugin,))
    suite = tiny_suite(
        tmp_path, detectors=["exploding", "spectral"], unlearners=["exploding-unlearner", "eu"]
    )
    summary = run_suite(suite_from_dict(suite, registry), registry=registry)
    rows = pd.read_csv(summary.output)
    assert len(rows) == 3 * 3  # {oracle, exploding, spectral} x {none, exploding-unlearner, eu}
    bad_det = rows[rows["detector"] == "exploding"]
    assert (bad_det["status"] == "failed").all()
    assert bad_det["error"].str.contains("RuntimeError: boom in detect").all()
    bad_unl = rows[(rows["unlearner"] == "exploding-unlearner") & (rows["detector"] != "exploding")]
    assert (bad_unl["status"] == "failed").all() and bad_unl["error"].str.contains("boom in unlearn").all()
    good = rows[(rows["detector"] != "exploding") & (rows["unlearner"] != "exploding-unlearner")]
    assert len(good) == 4 and (good["status"] == "ok").all()


def test_costliest_attacks_start_first_and_rows_keep_suite_order(tmp_path):
    started: list[str] = []

    class Recording(Executor):
        name = "recording"

        def map(self, fn, units):
            # phase 1 hands over victims (UpstreamUnit), phase 2 (victim, detector) jobs
            started.extend(getattr(unit, "setting", unit).attack.label for unit in units)
            for i, unit in enumerate(units):
                yield i, fn(unit)

    @hookimpl
    def register_executors(register):
        register(Recording)

    registry = load_registry(
        entry_points=False, extra_plugins=(types.SimpleNamespace(register_executors=register_executors),)
    )
    suite = tiny_suite(
        tmp_path,
        attacks=[
            {"name": "badnet"},
            {"name": "witches-brew", "params": {"steps": 1, "surrogate_epochs": 1, "restarts": 1}},
        ],
        detectors=["oracle"],
        unlearners=["none"],
        executor={"name": "recording"},
    )
    summary = run_suite(suite_from_dict(suite, registry), registry=registry)
    # Witches' Brew costs ~20 victims' training: its victim starts first, then its detection
    assert started[:2] == ["witches-brew", "badnet"] and started[-2:] == ["witches-brew", "badnet"]
    assert list(pd.read_csv(summary.output)["attack"]) == ["badnet", "witches-brew"]


def test_missing_dataset_folder_is_a_recorded_cell_failure(tmp_path):
    pytest.importorskip("deltabench.data.cifar")
    registry = default_registry()
    suite = tiny_suite(
        tmp_path, datasets=[{"name": "cifar10", "params": {"root": str(tmp_path / "nowhere")}}]
    )
    summary = run_suite(suite_from_dict(suite, registry), registry=registry)
    rows = pd.read_csv(summary.output)
    assert (rows["status"] == "failed").all()
    assert rows["error"].str.contains("nowhere").all()


@pytest.mark.slow
def test_killed_run_resumes_with_every_row_exactly_once(tmp_path):
    suite = tiny_suite(tmp_path, seeds=[0, 1, 2, 3], training={"epochs": 3, "translate": 0, "hflip": False})
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = Path(suite["output"]) / RESULTS_FILE
    cmd = [sys.executable, "-m", "deltabench", "run", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:  # wait for the first finished victim
        if out.exists() and len(pd.read_csv(out)) >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make the suite longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = pd.read_csv(out)
    assert 4 <= len(partial) < 16
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    rows = pd.read_csv(out)
    assert len(rows) == 16 and rows["cell_id"].is_unique
    assert set(partial["cell_id"]) <= set(rows["cell_id"])
    merged = rows.set_index("cell_id").loc[partial["cell_id"], "unlearned_psr"].to_numpy()
    assert (merged == partial["unlearned_psr"].to_numpy()).all()  # finished rows kept as they were


def test_shards_split_the_victims_and_a_plain_run_gathers_them(tmp_path):
    registry = default_registry()
    suite = tiny_suite(tmp_path, seeds=[0, 1], unlearners=["none"])
    shards = [run_suite(suite_from_dict(suite, registry), registry=registry, shard=(i, 2)) for i in range(2)]
    seeds = [set(pd.read_csv(s.output)["seed"]) for s in shards]
    assert seeds == [{0}, {1}] and all(s.rows == 2 for s in shards)
    gathered = run_suite(suite_from_dict(suite, registry), registry=registry)
    assert gathered.computed == 0 and gathered.rows == 4
    rows = pd.read_csv(gathered.output)
    assert len(rows) == 4 and rows["cell_id"].is_unique
    from deltabench.leaderboard import load_results

    assert len(load_results(tmp_path / "out")) == 4  # results.csv, not results + shards


def test_local_and_processes_give_the_same_rows_with_a_plugin_only_the_parent_registered(tmp_path):
    import parent_only_plugin

    registry = load_registry(entry_points=False, extra_plugins=(parent_only_plugin,))
    frames = {}
    for executor in ("local", "processes"):
        suite = tiny_suite(
            tmp_path / executor,
            detectors=["half-oracle", "blind", "spectral"],
            executor={"name": executor, "params": {"workers": 1}} if executor == "processes" else executor,
        )
        summary = run_suite(suite_from_dict(suite, registry), registry=registry)
        frames[executor] = pd.read_csv(summary.output)
    rows = frames["processes"]
    assert (rows["status"] == "ok").all(), rows["error"].dropna().tolist()
    half = rows[rows["detector"] == "half-oracle"].iloc[0]
    assert half["precision"] == 1.0 and half["true_poisons_flagged"] == half["n_poisons"] // 2
    assert (rows.loc[rows["detector"] == "blind", "flagged"] == 0).all()
    # everything but the measured cost and the provenance is the same, bit for bit: each stage runs
    # with the suite's thread count (1) under either executor
    cost = [c for c in rows if c.endswith(("_s", "_peak_mb"))]
    pd.testing.assert_frame_equal(frames["local"].drop(columns=cost), rows.drop(columns=cost))
