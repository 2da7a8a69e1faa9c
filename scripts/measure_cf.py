"""CF (catastrophic forgetting) on the oracle forget set of BadNet digits, for several fine-tuning lengths.

Usage: OMP_NUM_THREADS=1 python scripts/measure_cf.py [--seeds 0 1 2 3 4] [--budget 0.5] [--epochs 15 30 45]

Victim and CF use the quick-suite recipe (15 epochs, batch 128, lr 0.1, translate 1, no flips); CF
starts from the victim's weights with a fresh optimiser and the schedule restarted at lr 0.1 (the
paper's code). EU (retraining from scratch on the retained points) is printed as the reference.
"""

from __future__ import annotations

import argparse

from deltabench.data.digits import Digits
from deltabench.metrics import poison_success_rate
from deltabench.quick_setting import badnet_victim, unlearn_copy
from deltabench.training import accuracy
from deltabench.unlearners.basic import Retrain
from deltabench.unlearners.cf import CatastrophicForgetting


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--budget", type=float, default=0.5)
    ap.add_argument("--epochs", nargs="*", type=int, default=[15, 30, 45])
    ap.add_argument(
        "--cf-seeds",
        nargs="*",
        type=int,
        default=None,
        help="RNG seeds for the unlearning stage (default: the victim's seed); several show CF's own noise",
    )
    args = ap.parse_args()
    ds = Digits().load(0)
    for seed in args.seeds:
        data, victim = badnet_victim(ds, seed, args.budget)
        print(
            f"seed {seed}: victim acc {accuracy(victim, ds.test):.3f} "
            f"psr {poison_success_rate(victim, data.triggered_test):.3f}",
            flush=True,
        )
        forget = data.poison_indices
        runs = [("eu", Retrain())] + [(f"cf {e} ep", CatastrophicForgetting(epochs=e)) for e in args.epochs]
        for label, un in runs:
            cells = []
            for s in args.cf_seeds or [seed]:
                out, dt = unlearn_copy(victim, un, ds, data.train, forget, s)
                psr = poison_success_rate(out, data.triggered_test)
                cells.append(f"psr {psr:.3f} acc {accuracy(out, ds.test):.3f} {dt:.1f} s")
            print(f"  {label:10s} " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
