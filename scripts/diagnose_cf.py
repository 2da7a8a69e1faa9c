"""Why CF leaves part of the BadNet backdoor on digits: batch-norm statistics, weight decay, CF's own noise.

Usage: OMP_NUM_THREADS=1 python scripts/diagnose_cf.py [--seeds 0 1 2 3 4] [--cf-seeds 5]

Per victim (quick recipe, BadNet budget 0.5, oracle forget set), PSR of:
  victim-bn-retain  the victim with only its batch-norm running statistics re-estimated on the retained
                    points (no weight changes): how much the BN statistics alone move the backdoor;
  cf                CF with the recipe (15 epochs), CF RNG seeds 0..k-1 (spread = CF's own noise);
  cf+victim-bn      the CF model with the victim's BN running statistics put back;
  cf wd=0           CF without weight decay (is weight decay what erases the trigger pathway?).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

from deltabench.attacks.badnet import BadNet
from deltabench.components import AttackContext
from deltabench.data.digits import Digits
from deltabench.metrics import poison_success_rate
from deltabench.quick_setting import QUICK_RECIPE as RECIPE
from deltabench.quick_setting import seeded_trainer as trainer
from deltabench.training import accuracy


def bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running_" in k or "num_batches" in k}


@torch.no_grad()
def reestimate_bn(model: nn.Module, x: torch.Tensor) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes below
    model.train()
    for i in range(0, len(x), 128):
        model(x[i : i + 128])
    return model.eval()


def copy_of(ds, seed, victim):
    m = trainer(ds, seed).new_model()
    m.load_state_dict(victim.state_dict())
    return m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--cf-seeds", type=int, default=5)
    args = ap.parse_args()
    ds = Digits().load(0)
    for seed in args.seeds:
        data = BadNet(source=8, target=5, budget=0.5).poison(
            AttackContext(ds, np.random.default_rng(seed), trainer(ds, seed))
        )
        victim = trainer(ds, seed).fit_new(data.train)
        retain = np.setdiff1d(np.arange(len(data.train)), data.poison_indices)
        kept = data.train.subset(retain)
        triggered = data.triggered_test

        def psr(m: nn.Module, triggered=triggered) -> float:
            return poison_success_rate(m, triggered)

        line = f"seed {seed}: victim psr {psr(victim):.3f}"
        line += f" | victim-bn-retain {psr(reestimate_bn(copy_of(ds, seed, victim), kept.x)):.3f}"
        cf, cf_bn, accs = [], [], []
        for s in range(args.cf_seeds):
            m = trainer(ds, 100 + s).fit(copy_of(ds, seed, victim), kept)
            cf.append(psr(m))
            accs.append(accuracy(m, ds.test))
            sd = m.state_dict()
            sd.update(bn_state(victim))
            m.load_state_dict(sd)
            cf_bn.append(psr(m))
        no_wd = RECIPE.model_copy(update={"weight_decay": 0.0})
        wd0 = [
            psr(trainer(ds, 100 + s, no_wd).fit(copy_of(ds, seed, victim), kept))
            for s in range(args.cf_seeds)
        ]
        fmt = lambda v: " ".join(f"{x:.3f}" for x in v)  # noqa: E731
        print(line, flush=True)
        print(f"  cf            {fmt(cf)}  (acc {min(accs):.3f}-{max(accs):.3f})", flush=True)
        print(f"  cf+victim-bn  {fmt(cf_bn)}", flush=True)
        print(f"  cf wd=0       {fmt(wd0)}", flush=True)


if __name__ == "__main__":
    main()
