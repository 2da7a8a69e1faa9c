"""Executors on existing engines (Ray, submitit) give the rows of the local executor, and resume.

Every run here uses its own cache folder, so each executor computes every stage itself; result
columns (everything but the timing and memory columns) must equal those of a local run with the
same torch thread count.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch
import yaml
from tiny_suite import tiny_suite

from deltabench import Detection, Detector, Requirement, hookimpl
from deltabench.config import suite_from_dict
from deltabench.exceptions import SuiteError
from deltabench.registry import default_registry, load_registry
from deltabench.runner import RESULTS_FILE, Job, plan_jobs, run_job, run_suite

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason='Ray is not installed (pip install "deltabench[ray]")'
)
needs_submitit = pytest.mark.skipif(
    importlib.util.find_spec("submitit") is None,
    reason='submitit is not installed (pip install "deltabench[slurm]")',
)

SEEDS = [0, 1, 2]


def engine_suite(folder: Path, executor: dict, seeds: list[int] | None = None) -> dict:
    """The tiny suite of these tests: one epoch on digits, BadNet, spectral + oracle, eu + none."""
    return tiny_suite(
        folder,
        name="engines",
        seeds=seeds or SEEDS[:2],
        training={"epochs": 1, "batch_size": 32, "translate": 0, "hflip": False},
        executor=executor,
    )


def result_columns(frame: pd.DataFrame, seeds: list[int] | None = None) -> pd.DataFrame:
    """The rows by cell, without the columns that measure time or memory, nor the code revision
    (provenance, which a commit made while the test runs would change)."""
    if seeds is not None:
        frame = frame[frame["seed"].isin(seeds)]
    keep = [c for c in frame.columns if not c.endswith(("_s", "_peak_mb")) and c != "code_revision"]
    return frame[keep].sort_values("cell_id").reset_index(drop=True)


def run_in_process(folder: Path, executor: dict, seeds: list[int] | None = None) -> pd.DataFrame:
    registry = default_registry()
    summary = run_suite(suite_from_dict(engine_suite(folder, executor, seeds), registry), registry=registry)
    return pd.read_csv(summary.output)


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory) -> pd.DataFrame:
    """The uninterrupted local run of all three seeds, one torch thread as in every executor here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = run_in_process(tmp_path_factory.mktemp("local"), {"name": "local"}, SEEDS)
    finally:
        torch.set_num_threads(threads)
    assert (rows["status"] == "ok").all(), rows[["status", "error"]]
    return rows


def assert_same_results(rows: pd.DataFrame, local_rows: pd.DataFrame, seeds: list[int]) -> None:
    assert (rows["status"] == "ok").all(), rows[["status", "error"]]
    assert rows["cell_id"].is_unique and len(rows) == 4 * len(seeds)
    pd.testing.assert_frame_equal(result_columns(rows), result_columns(local_rows, seeds))


# --------------------------------------------------------------------------- optional dependencies


def test_an_executor_whose_package_is_missing_fails_validation_in_one_line(tmp_path):
    for name, message in [
        ("ray", "executor 'ray' needs Ray: pip install \"deltabench[ray]\""),
        ("slurm", "executor 'slurm' needs submitit: pip install \"deltabench[slurm]\""),
    ]:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(engine_suite(tmp_path, {"name": name})))
        hidden = "ray" if name == "ray" else "submitit"
        code = (
            f"import sys; sys.modules[{hidden!r}] = None  # as if it were not installed\n"
            "from deltabench.cli import main\n"
            f"sys.argv = ['deltabench', 'run', {str(path)!r}]\n"
            "main()\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2
        assert done.stderr.strip() == f"error: {path}: executor.name: {message}"
        assert not (tmp_path / "out").exists()  # nothing ran


def test_any_component_can_declare_an_optional_dependency(tmp_path):
    class NeedsAbsentPackage(Detector):
        """Flags nothing (it only exists to need a package that is not installed)."""

        name = "needs-absent"
        requires = (Requirement("deltabench_no_such_package", "NoSuch", "deltabench-nosuch"),)

        def detect(self, ctx):  # pragma: no cover - validation stops the suite first
            return Detection(flagged=[])

    @hookimpl
    def register_detectors(register):
        register(NeedsAbsentPackage)

    registry = load_registry(
        entry_points=False, extra_plugins=(types.SimpleNamespace(register_detectors=register_detectors),)
    )
    suite = engine_suite(tmp_path, {"name": "local"})
    suite["detectors"] = ["spectral", "needs-absent"]
    with pytest.raises(SuiteError) as err:
        suite_from_dict(suite, registry, "s.yaml")
    assert err.value.problems == [
        "s.yaml: detectors[1].name: detector 'needs-absent' needs NoSuch: pip install \"deltabench-nosuch\""
    ]


def test_the_executor_blocks_of_the_docs_validate(tmp_path):
    """docs/scaling.md and the README name real executors with real parameter names."""
    root = Path(__file__).resolve().parent.parent
    blocks = [
        yaml.safe_load(block)
        for block in re.findall(r"```yaml\n(.*?)```", (root / "docs" / "scaling.md").read_text(), re.S)
    ]
    executors = [block["executor"] for block in blocks if "executor" in block]
    executors += [
        yaml.safe_load(line)
        for line in re.findall(r"`executor: (\{.*?\})`", (root / "README.md").read_text(), re.S)
    ]
    assert {e["name"] for e in executors} >= {"ray", "slurm", "processes"}
    registry = default_registry()
    for executor in executors:
        parsed = suite_from_dict(engine_suite(tmp_path, executor), registry, "docs")
        assert parsed.executor.name == executor["name"]


# --------------------------------------------------------------------------- submitit (slurm)


@needs_submitit
def test_slurm_executor_on_submitits_debug_cluster_gives_the_local_rows(tmp_path, local_rows):
    executor = {
        "name": "slurm",
        "params": {"cluster": "debug", "folder": str(tmp_path / "logs"), "poll_s": 0.1},
    }
    threads = torch.get_num_threads()
    rows = run_in_process(tmp_path, executor)
    assert torch.get_num_threads() == threads  # the task restored the caller's thread count
    assert_same_results(rows, local_rows, SEEDS[:2])


@needs_submitit
@pytest.mark.slow
def test_slurm_executor_on_submitits_local_cluster_gives_the_local_rows(tmp_path, local_rows):
    executor = {
        "name": "slurm",
        "params": {
            "cluster": "local",
            "folder": str(tmp_path / "logs" / "%j"),
            "poll_s": 0.2,
            "timeout_min": 20,
        },
    }
    rows = run_in_process(tmp_path, executor)
    assert_same_results(rows, local_rows, SEEDS[:2])
    # one array task per work unit: 2 victims (phase 1), then 2 victims x 2 detectors (phase 2)
    assert len(list((tmp_path / "logs").glob("*/*_log.err"))) == 2 + 2 * 2
    slurm = default_registry().get("executor", "slurm")(**executor["params"])
    outcomes = dict(slurm.map(math.sqrt, [4.0, -1.0]))
    assert outcomes[0] == 2.0  # a raising task fails only its own job
    assert isinstance(outcomes[1], Exception) and "math domain error" in str(outcomes[1])


@needs_submitit
@pytest.mark.slow
def test_a_preempted_slurm_task_is_requeued_and_resumes_from_the_cache(tmp_path, local_rows):
    """A SLURM preemption: USR2 to the running task (submitit's local cluster runs it in a child)."""
    from submitit import AutoExecutor

    from deltabench.executors.slurm import JobTask

    registry = default_registry()
    job: Job = plan_jobs(suite_from_dict(engine_suite(tmp_path, {"name": "local"}, [0]), registry))[0]
    executor = AutoExecutor(folder=tmp_path / "logs", cluster="local")
    executor.update_parameters(timeout_min=20)
    task = executor.submit(JobTask(run_job, 1), job)
    deadline = time.time() + 300
    while "[deltabench] attack" not in (task.stderr() or ""):  # interrupt after the first stage
        assert time.time() < deadline and task.state == "RUNNING", task.stderr()
        time.sleep(0.05)
    for process in psutil.Process(task._process.pid).children():  # what SLURM signals on preemption
        process.send_signal(signal.SIGUSR2)  # submitit then calls JobTask.checkpoint and requeues
    rows = task.result()
    log = task.stderr() + (task.stdout() or "")
    assert "this job is preempted" in log and "Requeued job" in log, log[-3000:]
    assert log.count("[deltabench] attack") == 1  # the requeued task took the attack from the cache
    assert_same_results(_as_results_csv(rows, tmp_path), local_rows, [0])


def _as_results_csv(rows: list[dict], folder: Path) -> pd.DataFrame:
    """Rows as the runner writes and reads them (same columns and types as a results CSV)."""
    from deltabench.runner import write_rows_atomically

    path = folder / "requeued.csv"
    write_rows_atomically(path, rows)
    return pd.read_csv(path)


# --------------------------------------------------------------------------- Ray


@needs_ray
@pytest.mark.slow
def test_ray_executor_on_a_local_two_cpu_instance_gives_the_local_rows(tmp_path, local_rows):
    import ray

    from deltabench.executors.ray_tasks import RayExecutor

    try:
        rows = run_in_process(tmp_path, {"name": "ray", "params": {"local_cpus": 2}})
        assert not ray.is_initialized()  # the instance it started is shut down
        outcomes = dict(RayExecutor(local_cpus=2).map(math.sqrt, [4.0, -1.0, 9.0]))
    finally:
        ray.shutdown()
    assert_same_results(rows, local_rows, SEEDS[:2])
    assert outcomes[0] == 2.0 and outcomes[2] == 3.0  # a raising task fails only its own job
    assert isinstance(outcomes[1], ValueError) and "domain" in str(outcomes[1])


@needs_ray
@pytest.mark.slow
def test_ray_run_killed_cancels_its_tasks_and_resumes_to_the_uninterrupted_rows(tmp_path, local_rows):
    # one task at a time (each takes both CPUs), so the interrupt comes while later victims wait
    suite = engine_suite(tmp_path, {"name": "ray", "params": {"local_cpus": 2, "num_cpus": 2}}, SEEDS)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = Path(suite["output"]) / RESULTS_FILE
    cmd = [sys.executable, "-m", "deltabench", "run", str(path), "--no-report"]
    log = tmp_path / "run.log"  # the driver's stderr, for the messages below
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:  # wait for the first finished victim
            if out.exists() and len(pd.read_csv(out)) >= 4:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be interrupted; make the suite longer"
        ray_processes = psutil.Process(proc.pid).children(recursive=True)
        assert ray_processes  # the local Ray instance and its workers
        proc.send_signal(signal.SIGTERM)  # a kill, to the driver only: it must stop what it started
        assert proc.wait(timeout=180) == 130, log.read_text()[-3000:]
        _, alive = psutil.wait_procs(ray_processes, timeout=60)
        assert not alive, f"left running after the interrupt: {[p.name() for p in alive]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    partial = pd.read_csv(out)
    assert 4 <= len(partial) < 12
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    rows = pd.read_csv(out)
    assert set(partial["cell_id"]) <= set(rows["cell_id"])
    assert_same_results(rows, local_rows, SEEDS)  # no row lost or duplicated, the same numbers
