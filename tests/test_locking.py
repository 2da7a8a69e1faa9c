"""One run at a time per results file: a second run on the same output fails fast, loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tiny_suite import tiny_suite

from deltabench.locking import OutputLockError, hold_output_lock
from deltabench.registry import default_registry
from deltabench.runner import RESULTS_FILE, run_suite, shard_file

# a process that takes the lock, says so, and waits to be killed
HOLDER = """
import sys, time
from pathlib import Path
from deltabench.locking import hold_output_lock
with hold_output_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_second_holder_fails_at_once_naming_the_first(tmp_path):
    results = tmp_path / "out" / RESULTS_FILE
    with hold_output_lock(results):
        mine = rf"another deltabench run \(pid {os.getpid()}\)"
        with pytest.raises(OutputLockError, match=mine), hold_output_lock(results):
            pass
        with hold_output_lock(tmp_path / "out" / shard_file(0, 2)):  # a shard has its own CSV and lock
            pass
    with hold_output_lock(results):  # released
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    results = tmp_path / RESULTS_FILE
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(results)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockError, match=rf"pid {holder.pid}\)"), hold_output_lock(results):
            pass
    finally:
        holder.kill()
        holder.wait()
    with hold_output_lock(results):  # the kernel released it with the dead process
        pass


def suite(tmp_path: Path, seeds: list[int]) -> dict:
    return tiny_suite(tmp_path, name="twice", seeds=seeds, unlearners=["none"])


@pytest.mark.slow
def test_two_runs_started_at_once_on_one_folder_lose_and_duplicate_no_row(tmp_path):
    registry = default_registry()
    from deltabench.config import suite_from_dict

    before = pd.read_csv(run_suite(suite_from_dict(suite(tmp_path, [0]), registry), registry=registry).output)
    assert len(before) == 2  # {oracle, spectral} x {none}, seed 0
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite(tmp_path, [0, 1, 2])))
    cmd = [sys.executable, "-m", "deltabench", "run", str(path)]
    runs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outcomes = [(run.pid, *run.communicate(timeout=900), run.returncode) for run in runs]
    codes = sorted(code for *_, code in outcomes)
    assert codes == [0, 2], [err[-2000:] for _, _, err, _ in outcomes]
    (winner,) = [pid for pid, _, _, code in outcomes if code == 0]
    (refused,) = [err for _, _, err, code in outcomes if code == 2]
    assert refused.strip().splitlines() == [
        f"error: {tmp_path / 'out' / RESULTS_FILE}: another deltabench run (pid {winner}) is writing this "
        "file; wait for it to end, or give this suite a different `output:` folder"
    ]
    after = pd.read_csv(tmp_path / "out" / RESULTS_FILE)
    assert len(after) == 6 and after["cell_id"].is_unique and sorted(set(after["seed"])) == [0, 1, 2]
    kept = after.set_index("cell_id").loc[before["cell_id"]].reset_index()
    pd.testing.assert_frame_equal(kept[before.columns], before)  # the earlier rows, untouched
