"""The quick suite's BadNet victim on digits, built directly (no runner, no cache) for benchmarks."""

from __future__ import annotations

import numpy as np
import torch

from deltabench.artifacts import Dataset, PoisonedData
from deltabench.attacks.badnet import BadNet
from deltabench.components import AttackContext
from deltabench.models.small_cnn import SmallCNN
from deltabench.training import Trainer, TrainingRecipe

QUICK_RECIPE = TrainingRecipe(epochs=15, batch_size=128, lr=0.1, translate=1, hflip=False)


def seeded_trainer(ds: Dataset, seed: int, recipe: TrainingRecipe = QUICK_RECIPE) -> Trainer:
    """A CPU trainer whose weight initialisation and batches follow ``seed``."""
    torch.manual_seed(seed)
    return Trainer.for_dataset(
        SmallCNN(), ds, recipe, torch.device("cpu"), torch.Generator().manual_seed(seed)
    )


def badnet_victim(ds: Dataset, seed: int, budget: float) -> tuple[PoisonedData, torch.nn.Module]:
    """BadNet 8 -> 5 on ``budget`` of the 8s and the victim trained on it, both from ``seed``."""
    ctx = AttackContext(ds, np.random.default_rng(seed), seeded_trainer(ds, seed))
    data = BadNet(source=8, target=5, budget=budget).poison(ctx)
    return data, seeded_trainer(ds, seed).fit_new(data.train)
