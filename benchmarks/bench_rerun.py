"""Issue 14: a rerun of the finished quick suite, as a whole process: the ``deltabench run`` command
(which skips a run whose files are all current without loading torch: deltabench.uptodate) against
the same rerun through the full path (``deltabench.run``, which plans every cell and reuses them).

Run: ``python -m pytest -o addopts="" benchmarks/bench_rerun.py -s``. It first runs
``suites/quick.yaml`` cold into a temporary folder (about 6 minutes on 2 idle cores), unless
``DELTABENCH_RERUN_SUITE`` names a suite file whose run has already finished (then it is rerun where
it is, from the current directory). Nothing asserts a time; the figures go to the terminal and the
benchmark's extra_info.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

QUICK = Path(__file__).resolve().parents[1] / "suites" / "quick.yaml"
MEDIANS: dict[str, float] = {}
COMMANDS = {
    "cli": ["-m", "deltabench", "run"],
    "full path": ["-c", "import sys, deltabench; print(f'computed={deltabench.run(sys.argv[1]).computed}')"],
}


@pytest.fixture(scope="module")
def finished_suite(tmp_path_factory) -> Path:
    given = os.environ.get("DELTABENCH_RERUN_SUITE")
    if given:
        return Path(given)
    folder = tmp_path_factory.mktemp("quick")
    data = yaml.safe_load(QUICK.read_text())
    data.update(output=str(folder / "out"), cache=str(folder / "cache"))
    suite = folder / "quick.yaml"
    suite.write_text(yaml.safe_dump(data, sort_keys=False))
    subprocess.run([sys.executable, "-m", "deltabench", "run", str(suite)], check=True)
    return suite


def _rerun(command: list[str], suite: Path) -> float:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, *command, str(suite)], check=True, capture_output=True, text=True)
    assert "(0 computed" in out.stdout or "computed=0" in out.stdout, out.stdout[-500:]
    return time.perf_counter() - start


@pytest.mark.parametrize("way", list(COMMANDS))
def test_rerun_of_the_finished_quick_suite(benchmark, finished_suite: Path, way: str) -> None:
    benchmark.pedantic(_rerun, args=(COMMANDS[way], finished_suite), rounds=5, iterations=1, warmup_rounds=1)
    MEDIANS[way] = benchmark.stats.stats.median
    benchmark.extra_info["median_s"] = MEDIANS[way]
    line = f"\n{way}: median {MEDIANS[way]:.2f} s over 5 reruns"
    if len(MEDIANS) == len(COMMANDS):
        ratio = MEDIANS["full path"] / MEDIANS["cli"]
        benchmark.extra_info["full_path_over_cli"] = ratio
        line += f"; the full path takes {ratio:.1f}x the command's time"
    print(line)
