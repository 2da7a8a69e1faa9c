"""Work units: a suite cut into victims and (victim, detector) pairs gives the rows of whole jobs,
and keeps many more workers busy than one unit per victim."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from test_cluster_executors import result_columns
from tiny_suite import tiny_suite

from deltabench.config import suite_from_dict
from deltabench.registry import default_registry
from deltabench.rows import write_rows_atomically
from deltabench.runner import plan_jobs, run_job, run_suite
from deltabench.units import upstream_units


def three_victims(folder: Path, executor: dict, **changes) -> dict:
    """Three attacks on one dataset, model and seed: three victims sharing one clean model."""
    suite = tiny_suite(
        folder,
        name="units",
        training={"epochs": 1, "batch_size": 32, "translate": 0, "hflip": False},
        attacks=[
            {"name": "badnet", "params": {"budget": 0.5}},
            {"name": "badnet", "label": "badnet-40", "params": {"budget": 0.4}},
            {"name": "frequency", "params": {"budget": 0.5, "eps": 0.1}},
        ],
        clean_model=True,
        executor=executor,
    )
    return suite | changes


def test_a_three_victim_suite_has_four_upstream_units_then_one_per_victim_and_detector(tmp_path):
    registry = default_registry()
    parsed = suite_from_dict(three_victims(tmp_path, {"name": "local"}), registry)
    jobs = plan_jobs(parsed)
    upstream = upstream_units(jobs)
    assert [u.part for u in upstream] == ["victim"] * 3 + ["clean"]
    assert upstream[-1].jobs == [0, 1, 2]  # one clean model serves the three attacks
    detections = [unit for job in jobs for unit in job.per_detector()]
    assert len(detections) == 3 * 2  # spectral and the oracle reference
    assert all(len(u.detectors) == 1 and u.upstream_ready for u in detections)
    # cells already in the CSV leave their detector's unit out
    jobs[0].skip_cells = {cid for cid, d, _ in jobs[0].cells() if d.name == "spectral"}
    assert [u.detectors[0].name for u in jobs[0].per_detector()] == ["oracle"]


@pytest.mark.slow
def test_units_on_four_worker_processes_give_the_rows_of_whole_jobs_run_in_series(tmp_path):
    registry = default_registry()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in every worker
    try:
        whole = suite_from_dict(three_victims(tmp_path / "whole", {"name": "local"}), registry)
        rows = [row for job in plan_jobs(whole) for row in run_job(job, registry)]
    finally:
        torch.set_num_threads(threads)
    write_rows_atomically(tmp_path / "whole.csv", rows)
    reference = pd.read_csv(tmp_path / "whole.csv")
    units = three_victims(tmp_path / "units", {"name": "processes", "params": {"workers": 4}})
    summary = run_suite(suite_from_dict(units, registry), registry=registry)
    cut = pd.read_csv(summary.output)
    assert (cut["status"] == "ok").all(), cut[["status", "error"]]
    assert len(cut) == 3 * 2 * 2  # 3 victims x {spectral, oracle} x {eu, none}
    pd.testing.assert_frame_equal(result_columns(cut), result_columns(reference))
    # a fresh rerun recomputes every stage, yet trains each victim once: phase 2 reads phase 1's
    again = run_suite(suite_from_dict(units, registry), registry=registry, fresh=True)
    pd.testing.assert_frame_equal(result_columns(pd.read_csv(again.output)), result_columns(reference))
