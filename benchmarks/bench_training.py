"""Our training loop vs a plain PyTorch loop (DataLoader + per-sample torchvision transforms).

Same model, data, optimiser, batch size and augmentation (random translation by up to 1 px, no
flip) for 2 epochs. Run: ``pytest benchmarks/bench_training.py --benchmark-only``; the ratio of the
two means is the speed-up of keeping the data on the device and augmenting batch-wise. The NCHW
variant is our loop with the channels-last layout switched off: its ratio to ours is what the layout
alone buys.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import deltabench.training as training
from deltabench.data.digits import Digits
from deltabench.models.small_cnn import SmallCNN
from deltabench.training import TrainingRecipe, train

RECIPE = TrainingRecipe(epochs=2, batch_size=128, lr=0.1, translate=1, hflip=False)


class _Augmented(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y
        self.transform = v2.RandomCrop(x.shape[-1], padding=RECIPE.translate)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(self.x[i]), self.y[i]


def plain_pytorch_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    loader = DataLoader(_Augmented(x, y), batch_size=RECIPE.batch_size, shuffle=True)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=RECIPE.lr,
        momentum=RECIPE.momentum,
        nesterov=True,
        weight_decay=RECIPE.weight_decay,
    )
    model.train()
    for _ in range(RECIPE.epochs):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()


def _setup():
    data = Digits().load(0)
    torch.manual_seed(0)
    model = SmallCNN().build(data.image_shape, 10, data.mean, data.std)
    return data, model


def test_deltabench_training_loop(benchmark):
    data, model = _setup()
    benchmark.pedantic(
        lambda: train(model, data.train, RECIPE, generator=torch.Generator().manual_seed(0)), rounds=5
    )


def test_plain_pytorch_loop(benchmark):
    data, model = _setup()
    benchmark.pedantic(lambda: plain_pytorch_loop(model, data.train.x, data.train.y), rounds=5)


def test_deltabench_loop_in_nchw_layout(benchmark, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(training, "_fast_layout", lambda x: torch.contiguous_format)
    data, model = _setup()
    benchmark.pedantic(
        lambda: train(model, data.train, RECIPE, generator=torch.Generator().manual_seed(0)), rounds=5
    )
