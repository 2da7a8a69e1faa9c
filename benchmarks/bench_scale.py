"""Issue 12: influence detections on Fashion-MNIST at 10,000, 30,000 and 60,000 images, in epochs.

Run: ``python -m pytest -o addopts="" benchmarks/bench_scale.py -s`` (10k and 30k), add
``--full-scale`` for all 60,000 images (about an hour on 2 shared cores).

Each size is one fresh process (benchmarks/peak_memory_child.py): the BadNet victim (small-cnn,
3 epochs, 300 poisons), one training epoch of the same model on the same data timed before and after
the detections, then delta-influence (T = 50), influence-threshold and trak-threshold, each split
into factor fitting and scoring, as multiples of that epoch (wall and process CPU time), with the
detection's RSS growth over the RSS just before it. Nothing here asserts a time: the figures go to
the benchmark's extra_info and the terminal (docs/influence.md, "Cost at scale").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DETECTORS = ("delta-influence", "influence-threshold", "trak-threshold")
SIZES = [10_000, 30_000, pytest.param(60_000, marks=pytest.mark.full_scale)]


def run_child(n: int) -> dict:
    """The child's JSON for ``n`` images (one torch thread, like the runner's workers)."""
    out = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "peak_memory_child.py"), str(n), "--data", "fashion",
         "--detectors", ",".join(DETECTORS)],
        capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(result: dict) -> str:
    """One line per detector: fit / score / total in epochs (CPU time; wall in brackets), RSS, quality."""
    epochs = ", ".join(f"{w:.1f} s wall / {c:.1f} s CPU" for w, c in result["epoch_s"])
    lines = [f"n={result['n']}: epochs {epochs}"]
    for name, r in result["detectors"].items():
        (fw, fc), (sw, sc), (tw, tc) = r["fit_epochs"], r["score_epochs"], r["total_epochs"]
        lines.append(
            f"  {name}: factors {fc:.1f} + scoring {sc:.1f} = {tc:.1f} epochs CPU "
            f"({fw:.1f} + {sw:.1f} = {tw:.1f} wall); RSS +{r['rss_growth_mb']:.0f} MB over "
            f"{r['rss_before_mb']:.0f}; flagged {r['flagged']}, recall {r['recall']:.2f}, "
            f"precision {r['precision']:.3f}"
        )
    return "\n".join(lines)


@pytest.mark.parametrize("n", SIZES)
def test_influence_cost_at_scale(benchmark, n: int) -> None:
    results: dict = {}
    benchmark.pedantic(lambda: results.update(run_child(n)), rounds=1, iterations=1)
    print("\n" + report(results))
    benchmark.extra_info.update(results)
    assert set(results["detectors"]) == set(DETECTORS)
