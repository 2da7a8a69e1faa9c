"""The training loop every stage shares: victims, clean models, retraining, fine-tuning.

It keeps the whole training set as one tensor on the device and draws batches by indexing, with
the augmentation (random translation, horizontal flip) done batch-wise on the device. For the small
images of the default suite this avoids the per-sample Python work of a ``DataLoader`` with
torchvision transforms, which dominates the cost of a small model (see ``benchmarks/``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn
from tqdm.auto import tqdm

from .artifacts import ImageSet

if TYPE_CHECKING:  # components imports this module
    from .artifacts import Dataset
    from .components import ModelFamily

__all__ = [
    "TrainingRecipe",
    "Trainer",
    "train",
    "predict",
    "accuracy",
    "augment_batch",
    "shifted_crops",
    "even_batches",
    "channels_last",
]


class TrainingRecipe(BaseModel):
    """How victims (and retrained or fine-tuned models) are trained.

    Defaults are the paper's CIFAR recipe: SGD Nesterov, momentum 0.9, lr 0.1, weight decay 5e-4,
    batch 128, 40 epochs, lr x0.1 at epochs 14, 25 and 35, translation +-4 px and horizontal flips.
    Milestones are fractions of ``epochs`` so a shortened recipe keeps the schedule's shape.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(40, ge=1, description="passes over the training set")
    batch_size: int = Field(128, ge=1, description="examples per SGD step")
    lr: float = Field(0.1, gt=0, description="initial learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    nesterov: bool = Field(True, description="use Nesterov momentum")
    weight_decay: float = Field(5e-4, ge=0, description="L2 weight decay")
    milestones: list[float] = Field(
        [14 / 40, 25 / 40, 35 / 40], description="lr drops, as fractions of the epochs"
    )
    gamma: float = Field(0.1, gt=0, description="lr factor at each milestone")
    translate: int = Field(4, ge=0, description="random translation, in pixels (0 = off)")
    hflip: bool = Field(True, description="random horizontal flips")
    bf16: bool = Field(False, description="bf16 autocast (GPU only; ignored on CPU)")

    @field_validator("milestones")
    @classmethod
    def _fractions(cls, milestones: list[float]) -> list[float]:
        if any(not 0 < m <= 1 for m in milestones):
            raise ValueError(
                "milestones are fractions of the epochs (the paper's 14, 25, 35 of 40 are 0.35, 0.625, "
                "0.875); give each as a number in (0, 1]"
            )
        return milestones


def augment_batch(
    x: torch.Tensor, translate: int, hflip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random per-image translation (zero padding) and horizontal flip, vectorised over the batch."""
    n, _, h, w = x.shape
    if translate > 0:
        # Each image gets its own shift; images sharing a shift are moved by one slice copy
        # (at most (2t+1)^2 groups), far cheaper than a per-pixel gather on a CPU.
        p = translate
        padded = F.pad(x, (p, p, p, p))
        shifts = torch.randint(0, 2 * p + 1, (n,), generator=generator) * (2 * p + 1)
        shifts += torch.randint(0, 2 * p + 1, (n,), generator=generator)
        if x.device.type == "cpu":
            out = torch.empty_like(x)
            for code in shifts.unique().tolist():
                members = (shifts == code).nonzero().squeeze(1)
                dy, dx = divmod(code, 2 * p + 1)
                out[members] = padded[members, :, dy : dy + h, dx : dx + w]
            x = out
        else:  # on an accelerator, one gather: no host syncs nor small index copies per group
            x = shifted_crops(padded, shifts.to(x.device), 2 * p + 1, h, w)
    if hflip:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def shifted_crops(padded: torch.Tensor, shifts: torch.Tensor, span: int, h: int, w: int) -> torch.Tensor:
    """The ``h x w`` window of each padded image at offset ``divmod(shift, span)``, as one gather
    (the same values as slicing each image; what a GPU wants instead of a loop of slice copies)."""
    n, c = padded.shape[:2]
    dy, dx = shifts // span, shifts % span
    rows = (dy[:, None] + torch.arange(h, device=padded.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=padded.device))[:, None, None, :]
    images = torch.arange(n, device=padded.device)[:, None, None, None]
    channels = torch.arange(c, device=padded.device)[None, :, None, None]
    return padded[images, channels, rows, cols]


def train(
    model: nn.Module,
    data: ImageSet,
    recipe: TrainingRecipe,
    *,
    generator: torch.Generator | None = None,
    epochs: int | None = None,
    desc: str = "train",
    on_step: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> nn.Module:
    """Train ``model`` in place with the recipe; returns it in eval mode.

    ``epochs`` overrides the recipe's count (the schedule scales with it). ``on_step`` replaces the
    cross-entropy loss by a custom one, ``on_step(model, x, y) -> loss``.
    """
    device = next(model.parameters()).device
    epochs = recipe.epochs if epochs is None else epochs
    layout = _fast_layout(data.x)
    x_all, y_all = data.x.to(device), data.y.to(device)
    n = len(y_all)
    steps_per_epoch = max(1, len(even_batches(torch.arange(n), recipe.batch_size)))
    opt = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0,
        weight_decay=recipe.weight_decay,
    )
    milestones = sorted({round(m * epochs) * steps_per_epoch for m in recipe.milestones})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=recipe.gamma)
    use_bf16 = recipe.bf16 and device.type == "cuda"
    model.train()
    with channels_last(model, enabled=layout == torch.channels_last):
        for _ in tqdm(range(epochs), desc=desc, leave=False, disable=None):
            for idx in even_batches(torch.randperm(n, generator=generator).to(device), recipe.batch_size):
                xb = augment_batch(x_all[idx], recipe.translate, recipe.hflip, generator)
                xb = xb.contiguous(memory_format=layout)
                yb = y_all[idx]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss = on_step(model, xb, yb) if on_step else F.cross_entropy(model(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    return model.eval()


def _fast_layout(x: torch.Tensor) -> torch.memory_format:
    """Channels-last for image batches: on a CPU it trains the default suite's CNN 1.3-1.4x faster
    than NCHW (max-pooling and the convolutions' backward pass dominate; benchmarks/bench_training.py)."""
    return torch.channels_last if x.dim() == 4 else torch.contiguous_format


@contextmanager
def channels_last(*models: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Hold ``models``' weights in the channels-last layout inside the block (feed them channels-last
    batches for the speed-up) and hand them back in the default layout, so that nothing downstream
    (the influence engine, checkpoints) sees the difference. Only the layout changes, not a value."""
    if enabled:
        for m in models:
            m.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if enabled:
            for m in models:
                m.to(memory_format=torch.contiguous_format)


def even_batches(order: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, ...]:
    """One pass's shuffled indices cut into ``ceil(n / batch_size)`` batches of near-equal size.

    Cutting every ``batch_size`` leaves a last batch of ``n mod batch_size`` examples. With batch
    norm, a batch of one or two examples trains on meaningless statistics and, as an epoch's last
    step, overwrites the running estimates: EU on 1,153 retained digits (1,153 = 9 x 128 + 1) lost
    about 20 points of accuracy that way. Near-equal batches keep every example in every epoch.
    """
    return torch.tensor_split(order, -(-len(order) // batch_size)) if len(order) else ()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predicted labels for images ``x`` (on the model's device), returned on the CPU."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(x[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, data: ImageSet) -> float:
    """Fraction of ``data`` the model labels correctly."""
    if len(data) == 0:
        return float("nan")
    return float((predict(model, data.x) == data.y.cpu()).float().mean())


class Trainer:
    """A model factory bound to a training recipe and a device: what components get to train with.

    Components never pick devices or seed RNGs; the runner hands them a ``Trainer`` whose
    ``generator`` is already seeded for the stage.
    """

    def __init__(
        self,
        build_model: Callable[[], nn.Module],
        recipe: TrainingRecipe,
        device: torch.device,
        generator: torch.Generator,
    ) -> None:
        self._build_model = build_model
        self.recipe = recipe
        self.device = device
        self.generator = generator

    @classmethod
    def for_dataset(
        cls,
        family: ModelFamily,
        dataset: Dataset,
        recipe: TrainingRecipe,
        device: torch.device,
        generator: torch.Generator,
    ) -> Trainer:
        """A trainer whose models are ``family``'s, built for ``dataset``'s shape, classes and
        statistics: the one way the runner, tests and measurement scripts make a trainer."""
        return cls(
            lambda: family.build(dataset.image_shape, dataset.num_classes, dataset.mean, dataset.std),
            recipe,
            device,
            generator,
        )

    def new_model(self) -> nn.Module:
        """A freshly initialised model on the device (initialisation drawn from torch's seeded RNG)."""
        return self._build_model().to(self.device)

    def fit(self, model: nn.Module, data: ImageSet, **kwargs) -> nn.Module:
        """Train ``model`` on ``data`` with the recipe; keyword arguments as in :func:`train`."""
        return train(model, data, self.recipe, generator=self.generator, **kwargs)

    def fit_new(self, data: ImageSet, **kwargs) -> nn.Module:
        """Train a fresh model from scratch on ``data``."""
        return self.fit(self.new_model(), data, **kwargs)
