"""Cost of Δ-Influence's scoring: one pass for all T+1 queries vs one query vs the naive loop.

Run: ``OMP_NUM_THREADS=1 python -m pytest -o addopts="" benchmarks/bench_influence.py -s`` (the
project's addopts skip benchmarks).
Factors are fitted once before timing (they are shared by all three ways of scoring), so the
ratios isolate the score passes. The memory check runs a whole detection (factors included) at two
training-set sizes in fresh engines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from victims import badnet_victim

from deltabench.artifacts import ImageSet
from deltabench.data.digits import Digits
from deltabench.detectors.delta_influence import auxiliary_queries
from deltabench.influence import InfluenceEngine, InfluenceSettings
from deltabench.training import predict

T = 50
RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    ds = Digits().load(0)
    poisoned, victim = badnet_victim(ds, 0, 0.5)
    hits = np.flatnonzero(predict(victim, poisoned.triggered_test.x).numpy() == poisoned.target_class)
    affected = poisoned.triggered_test.subset(hits[:1])
    aux, _ = auxiliary_queries(
        affected, 10, T, "MM", np.random.default_rng(0), torch.Generator().manual_seed(0)
    )
    queries = ImageSet(torch.cat([affected.x, aux.x]), torch.cat([affected.y, aux.y]))
    engine = InfluenceEngine(victim, poisoned.train, InfluenceSettings()).fit()
    return ds, poisoned, victim, affected, queries, engine


def test_one_pass_all_queries(benchmark, setup):
    *_, queries, engine = setup
    out = benchmark.pedantic(engine.scores, args=(queries,), rounds=3, iterations=1)
    assert out.shape[0] == T + 1
    RESULTS["all"] = benchmark.stats.stats.median


def test_single_query_pass(benchmark, setup):
    *_, queries, engine = setup
    benchmark.pedantic(engine.scores, args=(queries.subset([0]),), rounds=3, iterations=1)
    RESULTS["single"] = benchmark.stats.stats.median


def test_naive_loop(benchmark, setup):
    """One kronfluence score call per query, as the paper's code did."""
    *_, queries, engine = setup

    def loop():
        return np.stack([engine.scores(queries.subset([j]))[0] for j in range(len(queries))])

    benchmark.pedantic(loop, rounds=1, iterations=1)
    RESULTS["naive"] = benchmark.stats.stats.median
    if "all" in RESULTS and "single" in RESULTS:
        print(
            f"\nT={T}: one pass {RESULTS['all']:.2f} s, one query {RESULTS['single']:.2f} s, "
            f"naive loop {RESULTS['naive']:.2f} s; one pass / one query = "
            f"{RESULTS['all'] / RESULTS['single']:.2f}x, naive / one pass = "
            f"{RESULTS['naive'] / RESULTS['all']:.1f}x"
        )
        benchmark.extra_info.update(RESULTS)


def test_peak_memory_two_sizes(benchmark):
    """Whole detection (fresh factors) in a fresh process at 600, 1,257 and 5,028 (tiled) digits."""
    here = Path(__file__).parent
    rows = {}

    def run_all():
        for n in (600, 1257, 5028):
            out = subprocess.run(
                [sys.executable, str(here / "peak_memory_child.py"), str(n)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            rows[n] = json.loads(out.stdout.strip().splitlines()[-1])

    benchmark.pedantic(run_all, rounds=1, iterations=1)
    for n, r in rows.items():
        growth = r["peak_after_mb"] - r["peak_before_mb"]
        print(
            f"\nn={n}: detection {r['seconds']:.1f} s, peak RSS {r['peak_after_mb']:.0f} MB, "
            f"growth over the pre-detection peak {growth:.0f} MB"
        )
        benchmark.extra_info[f"peak_growth_mb_{n}"] = growth
