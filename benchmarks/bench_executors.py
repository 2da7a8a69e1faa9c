"""Issue 14: the quick suite cold under ``local``, ``processes`` and ``ray`` in one session, then a
rerun with everything cached, each as a whole ``deltabench run`` process.

Run: ``python -m pytest -o addopts="" benchmarks/bench_executors.py -s`` (about 15 min on 2 idle
cores; Ray must be installed: ``pip install "deltabench[ray]"``). Each executor gets its own output
and cache folder and ``--fresh``, so every run trains every victim. ``processes`` and ``ray`` use one
worker a core (ray: a local instance with the machine's CPUs). The benchmark also checks that the
three CSVs hold the same results (an executor never changes a number) and prints the work units the
finer-grained executors get. Nothing asserts a time: the figures go to the terminal and the
benchmark's extra_info (the closing notes of issue 14 quote them).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

SUITE = Path(__file__).resolve().parents[1] / "suites" / "quick.yaml"
EXECUTORS = {
    "local": {"name": "local"},
    "processes": {"name": "processes"},
    "ray": {"name": "ray", "params": {"local_cpus": os.cpu_count()}},
}
# what a cell measured, compared across executors: every column but times, memory peaks, keys and
# the code revision (which differ between runs that compute the same numbers)
SKIP = ("_s", "_peak_mb", "_key", "cell_id", "versions", "code_revision")
WALL: dict[str, float] = {}


def _suite(folder: Path, executor: dict) -> Path:
    data = yaml.safe_load(SUITE.read_text())
    data.update(executor=executor, output=str(folder / "out"), cache=str(folder / "cache"))
    path = folder / "quick.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _run(suite: Path, *flags: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deltabench", "run", str(suite), *flags], check=True)
    return time.perf_counter() - start


def _rows(folder: Path) -> list[tuple]:
    with (folder / "out" / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    keys = [k for k in rows[0] if not k.endswith(SKIP)]
    return sorted(tuple(r[k] for k in keys) for r in rows)


@pytest.mark.parametrize("executor", list(EXECUTORS))
def test_quick_suite_cold(benchmark, tmp_path_factory, executor: str) -> None:
    if executor == "ray":
        pytest.importorskip("ray")
    folder = tmp_path_factory.getbasetemp() / f"quick-{executor}"
    folder.mkdir(exist_ok=True)
    suite = _suite(folder, EXECUTORS[executor])
    WALL[executor] = benchmark.pedantic(_run, args=(suite, "--fresh"), rounds=1, iterations=1)
    benchmark.extra_info["wall_s"] = WALL[executor]
    if "local" in WALL and executor != "local":
        benchmark.extra_info["speedup_over_local"] = WALL["local"] / WALL[executor]
        assert _rows(folder) == _rows(folder.parent / "quick-local"), "an executor changed a number"
    print(
        f"\n{executor}: {WALL[executor]:.1f} s"
        + (
            f", {WALL['local'] / WALL[executor]:.2f}x local"
            if executor != "local" and "local" in WALL
            else ""
        )
    )


def test_cached_rerun(benchmark, tmp_path_factory) -> None:
    """The whole rerun process of a finished suite: start-up, planning, reading the CSV, no stage."""
    folder = tmp_path_factory.getbasetemp() / "quick-local"
    if not (folder / "out" / "results.csv").exists():
        pytest.skip("needs test_quick_suite_cold[local] first")
    suite = folder / "quick.yaml"
    wall = benchmark.pedantic(_run, args=(suite,), rounds=5, iterations=1, warmup_rounds=1)
    print(f"\ncached rerun: median {benchmark.stats.stats.median:.2f} s")
    benchmark.extra_info["last_wall_s"] = wall
