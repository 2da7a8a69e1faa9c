"""Δ-Influence on BadNet digits over seeds: influence collapse, detection, EU after detection.

Not a test: a measurement script whose printed table goes into docs/influence.md. Victims use the
quick suite's recipe (15 epochs, batch 128, lr 0.1, translate 1, no flips). Run from the repo root:
``OMP_NUM_THREADS=1 python benchmarks/measure_influence.py 0 1 2``.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from deltabench.components import DetectionContext
from deltabench.data.digits import Digits
from deltabench.detectors.delta_influence import DeltaInfluence
from deltabench.detectors.influence_threshold import InfluenceThreshold, TrakThreshold
from deltabench.influence import clear_engine_cache
from deltabench.metrics import accuracy, detection_metrics, poison_success_rate
from deltabench.quick_setting import badnet_victim
from deltabench.quick_setting import seeded_trainer as trainer
from deltabench.training import predict


def run(seed: int) -> dict:
    ds = Digits().load(0)
    poisoned, victim = badnet_victim(ds, seed, 0.5)
    hits = np.flatnonzero(predict(victim, poisoned.triggered_test.x).numpy() == poisoned.target_class)
    affected = poisoned.triggered_test.subset(np.random.default_rng(seed).choice(hits, 1))
    out = {
        "seed": seed,
        "victim_acc": accuracy(victim, ds.test),
        "victim_psr": poison_success_rate(victim, poisoned.triggered_test),
        "poisons": int(poisoned.poison_indices.size),
    }
    clear_engine_cache()
    ctx = DetectionContext(
        victim, poisoned.train, affected, 10, np.random.default_rng(seed), trainer(ds, seed)
    )
    t0 = time.perf_counter()
    det = DeltaInfluence().detect(ctx)
    out["delta_influence_seconds"] = time.perf_counter() - t0
    pi = poisoned.poison_indices
    clean = np.setdiff1d(np.arange(len(poisoned.train)), pi)
    dm = det.scores["delta_matrix"]
    out["frac_queries_poison_median_delta_neg"] = float((np.median(dm[:, pi], 1) < 0).mean())
    out["poison_median_delta"] = float(np.median(dm[:, pi]))
    out["clean_median_delta"] = float(np.median(dm[:, clean]))
    out["clean_median_abs_old"] = float(np.median(np.abs(det.scores["old"][clean])))
    out["delta_influence"] = detection_metrics(det.flagged, pi)
    for cls in (InfluenceThreshold, TrakThreshold):
        d = cls().detect(ctx)
        out[cls.name] = detection_metrics(d.flagged, pi)
    clean_flagged = np.setdiff1d(det.flagged, pi)
    out["clean_flagged_by_class"] = np.bincount(
        poisoned.train.y[clean_flagged].numpy(), minlength=10
    ).tolist()
    mi = DeltaInfluence(variant="MI").detect(ctx)
    out["delta_influence_MI"] = detection_metrics(mi.flagged, pi)
    for label, flagged in (("", det.flagged), ("_MI", mi.flagged), ("_oracle", pi)):
        retain = np.setdiff1d(np.arange(len(poisoned.train)), flagged)
        eu = trainer(ds, seed + 1000).fit_new(poisoned.train.subset(retain))
        out[f"eu{label}_psr"] = poison_success_rate(eu, poisoned.triggered_test)
        out[f"eu{label}_acc"] = accuracy(eu, ds.test)
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    for s in [int(a) for a in sys.argv[1:]] or [0, 1, 2]:
        print(json.dumps(run(s)), flush=True)
