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


# Issue 12's scale victim: Bag -> Sandal with the fashion suite's 9-pixel X, 300 poisons, 3 epochs.
FASHION_RECIPE = TrainingRecipe(epochs=3, batch_size=128, lr=0.1, translate=2, hflip=False)
FASHION_TRIGGER = [(-6, -6), (-5, -5), (-4, -4), (-3, -3), (-2, -2), (-6, -2), (-5, -3), (-3, -5), (-2, -6)]


def fashion_subset(n: int, seed: int) -> Dataset:
    """Fashion-MNIST with ``n`` training images (class-balanced; all 60,000 at n = 60,000)."""
    from deltabench.data.fashion_mnist import FashionMnist

    per_class = None if n >= 60_000 else n // 10
    return FashionMnist(train_per_class=per_class).load(seed)


def fashion_badnet_victim(ds: Dataset, seed: int, poisons: int = 300) -> tuple[PoisonedData, torch.nn.Module]:
    """BadNet 8 -> 5 with ``poisons`` bags and the 3-epoch small-cnn victim trained on it."""
    ctx = AttackContext(ds, np.random.default_rng(seed), seeded_trainer(ds, seed, FASHION_RECIPE))
    data = BadNet(source=8, target=5, budget=poisons, pixels=FASHION_TRIGGER).poison(ctx)
    return data, seeded_trainer(ds, seed, FASHION_RECIPE).fit_new(data.train)
