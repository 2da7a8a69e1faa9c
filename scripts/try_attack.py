"""Iterate on an attack's parameters on digits: victim PSR / clean acc over seeds (quick recipe)."""

import json
import sys
import time

import numpy as np
import torch

from deltabench.components import AttackContext
from deltabench.data.digits import Digits
from deltabench.metrics import poison_success_rate
from deltabench.models.small_cnn import SmallCNN
from deltabench.registry import default_registry
from deltabench.training import Trainer, TrainingRecipe, accuracy

torch.set_num_threads(1)
RECIPE = TrainingRecipe(epochs=15, batch_size=128, lr=0.1, translate=1, hflip=False)
name, params = sys.argv[1], json.loads(sys.argv[2])
seeds = [int(s) for s in (sys.argv[3] if len(sys.argv) > 3 else "0,1,2").split(",")]
eu = "--eu" in sys.argv
ds = Digits().load(0)
fam = SmallCNN()


def trainer(seed):
    torch.manual_seed(seed)
    return Trainer.for_dataset(fam, ds, RECIPE, torch.device("cpu"), torch.Generator().manual_seed(seed))


cls = default_registry().get("attack", name)
for seed in seeds:
    t0 = time.perf_counter()
    pd_ = cls(**params).poison(AttackContext(ds, np.random.default_rng(seed), trainer(1000 + seed)))
    t_att = time.perf_counter() - t0
    victim = trainer(seed).fit_new(pd_.train)
    out = dict(
        seed=seed,
        n_poisons=len(pd_.poison_indices),
        attack_s=round(t_att, 1),
        victim_acc=round(accuracy(victim, ds.test), 4),
        psr=round(poison_success_rate(victim, pd_.triggered_test), 4),
    )
    with torch.no_grad():
        probs = torch.softmax(victim(pd_.triggered_test.x[:1]), 1)[0]
    out["p_target_victim"] = round(float(probs[pd_.target_class]), 3)
    out["victim_pred"] = int(probs.argmax())
    out.update(
        {
            k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in pd_.info.items()
            if isinstance(v, (int, float, str))
        }
    )
    if eu:
        keep = np.setdiff1d(np.arange(len(pd_.train)), pd_.poison_indices)
        m = trainer(seed + 50).fit_new(pd_.train.subset(keep))
        out.update(
            eu_acc=round(accuracy(m, ds.test), 4), eu_psr=round(poison_success_rate(m, pd_.triggered_test), 4)
        )
        c = trainer(seed + 99).fit_new(ds.train)
        out.update(clean_acc=round(accuracy(c, ds.test), 4))
    print(json.dumps(out), flush=True)
