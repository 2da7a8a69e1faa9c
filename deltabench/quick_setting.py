"""The quick suite's setting in code, for the measurement scripts (scripts/) and benchmarks: its
training recipe on digits, seeded CPU trainers, its BadNet victim, and an unlearner run on a
private copy of a victim (so one victim serves every unlearner). Not used by the runner."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from .artifacts import Dataset, ImageSet
from .attacks.badnet import BadNet
from .components import AttackContext, ModelFamily, Unlearner, UnlearningContext
from .models.small_cnn import SmallCNN
from .training import Trainer, TrainingRecipe

QUICK_RECIPE = TrainingRecipe(epochs=15, batch_size=128, lr=0.1, translate=1, hflip=False)


def seeded_trainer(
    ds: Dataset, seed: int, recipe: TrainingRecipe = QUICK_RECIPE, family: ModelFamily | None = None
) -> Trainer:
    """A CPU trainer whose weight initialisation and batches follow ``seed``."""
    torch.manual_seed(seed)
    return Trainer.for_dataset(
        family or SmallCNN(), ds, recipe, torch.device("cpu"), torch.Generator().manual_seed(seed)
    )


def unlearn_copy(
    victim: nn.Module, unlearner: Unlearner, ds: Dataset, train: ImageSet, forget: np.ndarray, seed: int
) -> tuple[nn.Module, float]:
    """``unlearner`` applied to a copy of ``victim`` with ``forget`` flagged; returns the model and
    the seconds it took."""
    model = seeded_trainer(ds, seed).new_model()
    model.load_state_dict(victim.state_dict())
    retain = np.setdiff1d(np.arange(len(train)), forget)
    ctx = UnlearningContext(
        model.eval(),
        train,
        forget.copy(),
        retain,
        ds.num_classes,
        np.random.default_rng(seed),
        seeded_trainer(ds, seed),
    )
    start = time.perf_counter()
    out = unlearner.unlearn(ctx)
    return out, time.perf_counter() - start


def badnet_victim(ds: Dataset, seed: int, budget: float, recipe: TrainingRecipe = QUICK_RECIPE):
    """BadNet 8 -> 5 poisoning of ``budget`` of the 8s and the victim trained on it, both from ``seed``."""
    data = BadNet(source=8, target=5, budget=budget).poison(
        AttackContext(ds, np.random.default_rng(seed), seeded_trainer(ds, seed, recipe))
    )
    return data, seeded_trainer(ds, seed, recipe).fit_new(data.train)
