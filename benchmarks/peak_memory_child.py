"""Peak memory of one Δ-Influence detection at a given training-set size, in a fresh process.

``python benchmarks/peak_memory_child.py N`` prints JSON: the peak RSS of the process before the
detection (data, victim, imports) and after it, in MB. N above 1,257 tiles the digits training set
(copies of the same images), which is enough to see how memory scales with n. A fresh process per
size keeps the allocator's reuse of freed memory from hiding the growth.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np
import torch
from victims import badnet_victim
from victims import seeded_trainer as trainer

from deltabench.artifacts import ImageSet
from deltabench.components import DetectionContext
from deltabench.data.digits import Digits
from deltabench.detectors.delta_influence import DeltaInfluence
from deltabench.training import predict


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(n: int) -> None:
    torch.set_num_threads(1)
    ds = Digits().load(0)
    poisoned, victim = badnet_victim(ds, 0, 0.5)
    hits = np.flatnonzero(predict(victim, poisoned.triggered_test.x).numpy() == poisoned.target_class)
    reps = -(-n // len(poisoned.train))
    idx = np.arange(reps * len(poisoned.train))[:n] % len(poisoned.train)
    train = ImageSet(poisoned.train.x[idx].clone(), poisoned.train.y[idx].clone())
    ctx = DetectionContext(
        victim, train, poisoned.triggered_test.subset(hits[:1]), 10, np.random.default_rng(0), trainer(ds, 0)
    )
    before = peak_mb()
    t0 = time.perf_counter()
    DeltaInfluence().detect(ctx)
    seconds = time.perf_counter() - t0
    print(json.dumps({"n": n, "peak_before_mb": before, "peak_after_mb": peak_mb(), "seconds": seconds}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
