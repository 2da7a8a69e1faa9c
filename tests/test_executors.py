"""Executors leave nothing behind: workers die with their run, however it ends, and a run killed
at any moment resumes to exactly the CSV of an uninterrupted run."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml
from tiny_suite import tiny_suite

from deltabench.executors.workers import WorkerDiedError, run_in_workers
from deltabench.runner import RESULTS_FILE

# a child that arms the lifeline (``die_with_parent`` or the polling fallback) and then sleeps
CHILD = """
import sys, time
from deltabench.executors import lifeline
mode, parent = sys.argv[1], int(sys.argv[2])
lifeline.die_with_parent(parent) if mode == "signal" else lifeline.watch_parent(parent, 0.1)
print("armed", flush=True)
time.sleep(600)
"""
# a parent that starts that child, reports its pid once it is armed, and waits to be killed
PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], str(os.getpid())],
                         stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "armed"
print(child.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("mode", ["signal", "poll"])  # Linux's death signal; the macOS fallback
def test_a_worker_dies_with_its_killed_parent(mode):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, mode], stdout=subprocess.PIPE, text=True)
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        parent.kill()  # SIGKILL: the parent runs no cleanup at all
        parent.wait()
        _, alive = psutil.wait_procs([child], timeout=30)
        assert not alive, f"the child {child.pid} outlived its killed parent ({mode})"
    finally:
        parent.kill()


def test_a_worker_whose_parent_is_already_gone_exits_at_once():
    # the race: the parent died before the lifeline was armed (it is not our parent any more)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "signal", str(os.getpid() + 10**6)], capture_output=True, timeout=120
    )
    assert done.returncode == 1 and b"armed" not in done.stdout


def _exit_hard(code: int) -> None:
    os._exit(code)


def _square(x: int) -> int:
    return x * x


def test_a_worker_that_dies_fails_its_own_job_only():
    results = dict(run_in_workers(_exit_hard, [3], workers=1, threads=1))
    assert isinstance(results[0], WorkerDiedError) and "exit code 3" in str(results[0])
    assert dict(run_in_workers(_square, [1, 2, 3], workers=2, threads=1)) == {0: 1, 1: 4, 2: 9}


# ------------------------------------------------------------------ runs killed at random moments

KILLS = int(os.environ.get("DELTABENCH_KILLS", "2"))  # SIGKILLs per executor (the closing note ran 5)
# columns that legitimately differ between two runs: wall time and peak memory of each stage
VARYING = [
    f"{stage}_{what}" for stage in ("attack", "victim", "detect", "unlearn") for what in ("s", "peak_mb")
]
STARTED = "suite 'killme'"  # logged by run_suite once the run is under way


def killme_suite(tmp_path: Path, name: str, executor: str) -> Path:
    workers = {"workers": 2} if executor == "processes" else {}
    suite = tiny_suite(
        tmp_path / name, name="killme", seeds=[0, 1], executor={"name": executor, "params": workers}
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def start_run(path: Path, log: Path) -> tuple[subprocess.Popen, float, int]:
    """Start ``deltabench run`` and wait until its suite is under way; returns the process, when,
    and how many cells it has to compute."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "deltabench", "run", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        # Ctrl-C's default action, whatever this test inherits: a shell's background job (`pytest &`)
        # ignores SIGINT, so would the run, and the SIGINT case would see it finish with exit 0
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )
    while proc.poll() is None and not (found := re.search(STARTED + r".*, (\d+) to run", log.read_text())):
        time.sleep(0.05)
    return proc, time.monotonic(), int(found.group(1)) if proc.poll() is None else 0


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "processes"])
def test_runs_killed_at_random_moments_leave_no_worker_and_resume_to_the_same_csv(tmp_path, executor):
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    log = tmp_path / "run.log"
    base, begun, cells = start_run(killme_suite(tmp_path, "base", executor), log)
    assert base.wait(timeout=900) == 0, log.read_text()[-3000:]
    per_cell = (time.monotonic() - begun) / cells  # so that kills land inside what is left to run

    path = killme_suite(tmp_path, "killed", executor)
    signals = [signal.SIGTERM, signal.SIGINT] + [signal.SIGKILL] * KILLS
    kills = with_workers = 0
    for sig in signals:
        proc, _, left = start_run(path, log)
        time.sleep(rng.uniform(0.0, 0.5 * per_cell * left))  # often within its first cell: kills go on
        if proc.poll() is not None:
            continue  # it finished first: nothing left to kill
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(sig)  # the run alone, as the OOM killer or `kill PID` would
        code = proc.wait(timeout=300)
        kills += 1
        with_workers += bool(children)
        if sig != signal.SIGKILL:  # handled: the run stopped itself (and its workers), exit 130
            assert code == 130, (sig, code, log.read_text()[-2000:])
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"{len(alive)} of {len(children)} child processes survived {sig!r} (seed {seed})"
    assert kills >= len(signals) // 2, f"only {kills} runs were still running when killed (seed {seed})"
    if executor == "processes":
        assert with_workers, f"no kill hit a run with live workers (seed {seed})"

    final, *_ = start_run(path, log)
    assert final.wait(timeout=900) == 0, log.read_text()[-3000:]

    def result(name: str) -> pd.DataFrame:
        return pd.read_csv(tmp_path / name / "out" / RESULTS_FILE).drop(columns=VARYING)

    resumed, uninterrupted = result("killed"), result("base")
    assert len(uninterrupted) == 8 and (uninterrupted["status"] == "ok").all()
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    print(f"{executor}: {kills} kills ({with_workers} with live workers), seed {seed}: CSV identical")


def test_workers_spread_over_the_given_gpus():
    jobs = ["CUDA_VISIBLE_DEVICES"] * 4
    seen = [value for _, value in run_in_workers(os.getenv, jobs, workers=2, threads=1, gpus=["0", "1"])]
    assert sorted(set(seen)) == ["0", "1"]  # each worker sees its own card


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    from deltabench.executors.local import visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
