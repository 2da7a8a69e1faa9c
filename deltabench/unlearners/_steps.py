"""Pieces the step-based unlearners (SCRUB, bad teacher) share: batches drawn in passes over a set,
the corrective-unlearning code's optimiser, and its linearly decaying learning rate."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..artifacts import ImageSet
from ..components import Params
from ..training import augment_batch, even_batches


class CodeOptimizerParams(Params):
    """The corrective-unlearning code's optimiser settings (see :func:`code_optimizer`)."""

    lr: float = Field(0.025, gt=0, description="initial learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(5e-4, ge=0, description="weight decay")
    batch_size: int = Field(128, ge=1, description="examples per step (code: 512; ours: 128)")


def frozen(*models: nn.Module) -> None:
    """Put teacher models in eval mode with gradients off."""
    for model in models:
        model.eval()
        for q in model.parameters():
            q.requires_grad_(False)


class Batches:
    """Endless shuffled passes over an image set in near-equal batches of at most ``batch_size``,
    augmented like training, in the channels-last layout (see :func:`~deltabench.training.channels_last`)."""

    def __init__(
        self, data: ImageSet, batch_size: int, generator: torch.Generator, translate: int, hflip: bool
    ) -> None:
        self.data, self.batch_size, self.generator = data, batch_size, generator
        self.translate, self.hflip = translate, hflip
        self._pass: tuple[torch.Tensor, ...] = ()
        self._pos = 0

    @property
    def per_pass(self) -> int:
        """Batches in one pass over the set: ceil(n / batch_size)."""
        return -(-len(self.data) // self.batch_size)

    def next(self, device: torch.device, extra: torch.Tensor | None = None):
        if self._pos >= len(self._pass):
            self._pass = even_batches(
                torch.randperm(len(self.data), generator=self.generator), self.batch_size
            )
            self._pos = 0
        idx = self._pass[self._pos]
        self._pos += 1
        x = augment_batch(self.data.x[idx].to(device), self.translate, self.hflip, self.generator)
        x = x.contiguous(memory_format=torch.channels_last)  # the step loops hold models channels-last
        y = self.data.y[idx].to(device)
        return (x, y) if extra is None else (x, y, extra[idx].to(device))


def code_optimizer(model: nn.Module, lr: float, weight_decay: float, momentum: float, steps: int):
    """SGD with momentum, lr decaying linearly to zero over 1.25 x ``steps`` (our reading of the
    code's ``LinearLR(T=train_iters*1.25)``; warm-up is train_iters // 100 = 0 steps at 40)."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    horizon = 1.25 * steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(0.0, 1.0 - t / horizon))
    return opt, sched


def distill_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KL(teacher || student) of temperature-softened outputs, times T^2, averaged over the batch."""
    log_s = F.log_softmax(student_logits / temperature, dim=1)
    p_t = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_s, p_t, reduction="batchmean") * temperature**2
