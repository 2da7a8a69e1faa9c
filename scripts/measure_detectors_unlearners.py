"""Measure the detectors and unlearners on BadNet digits (quick-suite recipe); prints one line per run.

Usage: OMP_NUM_THREADS=1 python scripts/measure_detectors_unlearners.py [seeds...] [--budget B]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from deltabench.components import DetectionContext
from deltabench.data.digits import Digits
from deltabench.detectors.activation_clustering import ActivationClustering
from deltabench.detectors.frequency_analyzer import FrequencyAnalyzer
from deltabench.detectors.spectral import SpectralSignatures
from deltabench.metrics import detection_metrics, poison_success_rate
from deltabench.quick_setting import badnet_victim, unlearn_copy
from deltabench.quick_setting import seeded_trainer as trainer
from deltabench.training import accuracy, predict
from deltabench.unlearners.bad_teacher import BadTeacher
from deltabench.unlearners.basic import Retrain
from deltabench.unlearners.cf import CatastrophicForgetting
from deltabench.unlearners.scrub import Scrub
from deltabench.unlearners.ssd import SelectiveSynapticDampening


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--budget", type=float, default=0.5)
    ap.add_argument("--skip-unlearn", action="store_true")
    args = ap.parse_args()
    ds = Digits().load(0)
    for seed in args.seeds:
        data, victim = badnet_victim(ds, seed, args.budget)
        share = len(data.poison_indices) / int((data.train.y == 5).sum())
        print(
            f"seed {seed} budget {args.budget}: poisons {len(data.poison_indices)} ({share:.2f} of class 5) "
            f"victim acc {accuracy(victim, ds.test):.3f} "
            f"psr {poison_success_rate(victim, data.triggered_test):.3f}"
        )
        hits = np.flatnonzero(predict(victim, data.triggered_test.x).numpy() == 5)
        affected = data.triggered_test.subset(hits[:1])
        detectors = [
            ("spectral eps=0.05", SpectralSignatures()),
            (f"spectral eps={share:.2f}", SpectralSignatures(expected_poison_rate=round(share, 2))),
            ("spectral paper-code", SpectralSignatures(form="paper-code")),
            ("ac pca3", ActivationClustering()),
            ("ac ica10", ActivationClustering(reduction="ica")),
            ("frequency", FrequencyAnalyzer()),
        ]
        for label, det in detectors:
            ctx = DetectionContext(
                victim, data.train, affected, 10, np.random.default_rng(seed), trainer(ds, seed)
            )
            t0 = time.perf_counter()
            out = det.detect(ctx)
            dt = time.perf_counter() - t0
            m = detection_metrics(out.flagged, data.poison_indices)
            extra = ""
            if "p_triggered" in out.scores:
                p = out.scores["p_triggered"]
                is_p = np.zeros(len(p), bool)
                is_p[data.poison_indices] = True
                extra = (
                    f" auc {roc_auc_score(is_p, p):.3f} "
                    f"mean p poison {p[is_p].mean():.3f} clean {p[~is_p].mean():.3f}"
                )
            print(
                f"  detect {label:22s} flagged {m['flagged']:4d} hits {m['true_poisons_flagged']:3d} "
                f"P {m['precision']:.3f} R {m['recall']:.3f}  {dt:.2f} s{extra}"
            )
        if args.skip_unlearn:
            continue
        forget = data.poison_indices
        unlearners = [
            ("eu", Retrain()),
            ("cf", CatastrophicForgetting()),
            ("ssd a=10 l=1", SelectiveSynapticDampening()),
            ("ssd a=2 l=0.2", SelectiveSynapticDampening(alpha=2, lam=0.2)),
            ("ssd a=50 l=5", SelectiveSynapticDampening(alpha=50, lam=5)),
            ("scrub kl", Scrub()),
            ("scrub ce+kl", Scrub(max_loss="ce+kl")),
            ("scrub kl 1/3 rounds", Scrub(max_steps=1, min_steps=3)),
            ("bad-teacher b128", BadTeacher(batch_size=128)),
            ("scrub kl b128", Scrub(batch_size=128)),
            ("bad-teacher", BadTeacher()),
        ]
        for label, un in unlearners:
            out, dt = unlearn_copy(victim, un, ds, data.train, forget, seed)
            print(
                f"  unlearn {label:20s} psr {poison_success_rate(out, data.triggered_test):.3f} "
                f"acc {accuracy(out, ds.test):.3f}  {dt:.2f} s"
            )


if __name__ == "__main__":
    main()
