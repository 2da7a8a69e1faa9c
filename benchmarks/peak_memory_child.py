"""Cost of influence detections at a given training-set size, in a fresh process.

``python benchmarks/peak_memory_child.py N`` runs one Δ-Influence detection on the digits BadNet
victim, N tiled from its 1,257 training images (copies of the same images, enough to see how memory
scales with n), and prints JSON: the peak RSS before and after the detection, in MB, and seconds.

``python benchmarks/peak_memory_child.py N --data fashion --detectors delta-influence,trak-threshold``
builds issue 12's Fashion-MNIST victim on N real images (benchmarks/victims.py), times one training
epoch of the same model on the same data, then each detector split into factor fitting (the engine)
and scoring (the detection on the fitted engine), and prints one JSON object with the ratios to the
epoch (each time as [wall, process CPU] seconds), each detection's RSS growth over the RSS just before it, and recall / precision. The epoch is
timed before and after the detections: the machine's load moves, and their mean is the unit.

A fresh process per size keeps the allocator's reuse of freed memory from hiding the growth.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from rss import PeakRss, max_rss_mb
from victims import FASHION_RECIPE, badnet_victim, fashion_badnet_victim, fashion_subset
from victims import seeded_trainer as trainer

from deltabench.artifacts import ImageSet
from deltabench.components import DetectionContext
from deltabench.data.digits import Digits
from deltabench.detectors.delta_influence import DeltaInfluence
from deltabench.influence import clear_engine_cache
from deltabench.influence.detector_support import ENGINE_KEYS, engine_for
from deltabench.registry import default_registry
from deltabench.training import predict, train


def digits_detection(n: int) -> dict:
    """The digits victim's training set tiled to ``n``; peak RSS before / after one Δ-Influence."""
    ds = Digits().load(0)
    poisoned, victim = badnet_victim(ds, 0, 0.5)
    hits = np.flatnonzero(predict(victim, poisoned.triggered_test.x).numpy() == poisoned.target_class)
    reps = -(-n // len(poisoned.train))
    idx = np.arange(reps * len(poisoned.train))[:n] % len(poisoned.train)
    train_set = ImageSet(poisoned.train.x[idx].clone(), poisoned.train.y[idx].clone())
    ctx = DetectionContext(
        victim,
        train_set,
        poisoned.triggered_test.subset(hits[:1]),
        10,
        np.random.default_rng(0),
        trainer(ds, 0),
    )
    before = max_rss_mb()
    t0 = time.perf_counter()
    DeltaInfluence().detect(ctx)
    seconds = time.perf_counter() - t0
    return {"n": n, "peak_before_mb": before, "peak_after_mb": max_rss_mb(), "seconds": seconds}


def clocks() -> np.ndarray:
    """(wall, process CPU) seconds: on a shared machine the CPU time of a 1-thread process is the
    steadier measure of work, the wall time what a user waits."""
    return np.array([time.perf_counter(), time.process_time()])


def timed_epoch(ds, data: ImageSet) -> np.ndarray:
    """(wall, CPU) seconds of one training epoch of a fresh model of the victim's family on ``data``."""
    t0 = clocks()
    train(
        trainer(ds, 1).new_model(), data, FASHION_RECIPE, generator=torch.Generator().manual_seed(1), epochs=1
    )
    return clocks() - t0


def fashion_detections(n: int, detectors: list[str]) -> dict:
    """Issue 12's cost table for ``n`` Fashion-MNIST images: per detector fit / score / epochs / RSS."""
    ds = fashion_subset(n, 0)
    poisoned, victim = fashion_badnet_victim(ds, 0)
    hits = np.flatnonzero(predict(victim, poisoned.triggered_test.x).numpy() == poisoned.target_class)
    epochs = [timed_epoch(ds, poisoned.train)]
    registry = default_registry()
    rows = {}
    for name in detectors:
        detector = registry.get("detector", name)()
        ctx = DetectionContext(
            victim, poisoned.train, poisoned.triggered_test.subset(hits[:1]), 10,
            np.random.default_rng(0), trainer(ds, 0), clean_holdout=ds.test,
        )  # fmt: skip
        clear_engine_cache()
        with PeakRss() as memory:
            t0 = clocks()
            engine_for(ctx, detector.params.model_dump(include=ENGINE_KEYS))  # the factors (TRAK: the training features)
            t1 = clocks()
            flagged = detector.detect(ctx).flagged  # on the cached engine: the scoring
            t2 = clocks()
        clear_engine_cache()
        true = np.intersect1d(flagged, poisoned.poison_indices).size
        rows[name] = {
            "fit_s": (t1 - t0).tolist(),
            "score_s": (t2 - t1).tolist(),
            "rss_before_mb": memory.before,
            "rss_growth_mb": memory.growth,
            "flagged": int(flagged.size),
            "recall": true / poisoned.poison_indices.size,
            "precision": true / max(flagged.size, 1),
        }
    epochs.append(timed_epoch(ds, poisoned.train))
    epoch = np.mean(epochs, axis=0)  # (wall, CPU)
    for row in rows.values():
        fit, score = np.array(row["fit_s"]), np.array(row["score_s"])
        row.update(
            fit_epochs=(fit / epoch).tolist(),
            score_epochs=(score / epoch).tolist(),
            total_epochs=((fit + score) / epoch).tolist(),
        )
    return {
        "n": n,
        "epoch_s": [e.tolist() for e in epochs],
        "peak_rss_mb": max_rss_mb(),
        "threads": torch.get_num_threads(),
        "detectors": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int)
    parser.add_argument("--data", choices=["digits", "fashion"], default="digits")
    parser.add_argument("--detectors", default="delta-influence")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--im2col",
        action="store_true",
        help="kronfluence's own Conv2d patches (the cost before conv_patches.py)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.im2col:
        import kronfluence.module.conv2d as conv2d

        import deltabench.influence.kronfluence_backend  # noqa: F401  (installs the strided patches)

        conv2d.extract_patches = conv2d.extract_patches.__wrapped__
    if args.data == "digits":
        print(json.dumps(digits_detection(args.n)))
    else:
        print(json.dumps(fashion_detections(args.n, args.detectors.split(","))))


if __name__ == "__main__":
    main()
