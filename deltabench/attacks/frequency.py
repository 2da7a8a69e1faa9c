"""The smooth (low-frequency) trigger attack of Zeng et al. 2021, as the Delta-Influence paper used it.

Poisons are source-class training images carrying a fixed, smooth, image-wide trigger and relabelled
to the target class. The paper loaded a trigger file; deltabench makes its own, deterministically
from the seed: a *targeted universal adversarial perturbation* against a clean surrogate model
(trained with the suite's own trainer on the clean training set), restricted to low frequencies by
construction. The trigger is parameterised by its 2D DCT coefficients, of which only those inside
a low-frequency disc (``cutoff``) exist, so every candidate the optimiser visits is smooth; its size
is then bounded in l_inf or l2 by rescaling (rescaling keeps the spectrum, a clip would not).

Deviations from the paper (see docs/attacks.md):
- the trigger is generated, not loaded (the paper's trigger file is not public; docs/attacks.md); Zeng et al. made theirs as a low-pass-filtered universal perturbation too, but with
  a Gaussian frequency window and DeepFool steps instead of a DCT disc and Adam on a targeted loss;
- ``application: paper`` reproduces the paper's code: normalise, add the trigger, min-max rescale
  each image to [0, 1], and feed that [0, 1] tensor to the network WITHOUT normalising it again
  (low-contrast inputs). deltabench's models normalise their own input, so the stored poison is
  pre-compensated (``u * std + mean``): after the model's normalisation the network sees exactly
  the paper's tensor ``u``. The trigger is given in pixel units and divided by the dataset's std
  before it is added in normalised space, so one ``eps`` means the same in every mode.
- ``application: rescale`` (ours; ``paper`` before version 2): the same rescaled image, then
  normalised by the model like any other input.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from ..artifacts import PoisonedData
from ..components import Attack, AttackContext, DatasetInfo, ParamProblem, class_problems
from ..hookspecs import hookimpl
from ..training import accuracy, augment_batch, predict
from ._relabel import RelabelParams, relabel_poison

__all__ = ["FrequencyTrigger", "dct_matrix", "low_pass_mask", "apply_trigger", "bound"]


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix: ``D @ v`` are the DCT coefficients of ``v``, ``D.T @ c`` inverts."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.float()


def low_pass_mask(h: int, w: int, cutoff: float) -> torch.Tensor:
    """1 on the DCT coefficients whose normalised frequency radius is at most ``cutoff`` (0..~1.4)."""
    fy = torch.arange(h, dtype=torch.float32)[:, None] / h
    fx = torch.arange(w, dtype=torch.float32)[None, :] / w
    return ((fy**2 + fx**2).sqrt() <= cutoff + 1e-9).float()


def bound(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Shrink ``delta`` (C, H, W) to norm ``eps`` if it is larger; a rescale keeps it band-limited."""
    size = delta.abs().max() if norm == "linf" else delta.norm()
    return delta / torch.clamp(size / eps, min=1.0)


def apply_trigger(
    x: torch.Tensor,
    trigger: torch.Tensor,
    mode: str,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> torch.Tensor:
    """Images ``x`` (N, C, H, W) in [0, 1] carrying ``trigger`` (C, H, W, pixel units).

    ``pixel``: add, then clip to [0, 1]. ``rescale``: normalise with the dataset's mean/std, add
    ``trigger / std`` and min-max rescale each image (all channels together) to ``u`` in [0, 1].
    ``paper``: the network must see ``u`` itself (the paper's code feeds it without normalising), so
    the result is ``u * std + mean``, which the model's own normalisation maps back to ``u``.
    """
    if mode == "pixel":
        return (x + trigger).clamp(0, 1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    z = (x - m) / s + trigger / s[0]
    lo = z.amin(dim=(1, 2, 3), keepdim=True)
    hi = z.amax(dim=(1, 2, 3), keepdim=True)
    u = (z - lo) / (hi - lo).clamp_min(1e-12)
    return u if mode == "rescale" else u * s + m


class FrequencyTrigger(Attack):
    """Smooth low-frequency trigger (Zeng et al. 2021): a low-pass universal perturbation, flipped labels."""

    name = "frequency"
    version = "2"  # 2: application paper feeds the rescaled image un-normalised, as the paper's code
    relative_cost = 2.0  # a clean surrogate plus the perturbation search

    class Params(RelabelParams):
        source: int = Field(8, ge=0, description="class the poisons are taken from (86 on CIFAR-100)")
        target: int = Field(5, ge=0, description="class the trigger should cause (68 on CIFAR-100)")
        budget: float = Field(
            0.25,
            gt=0,
            description="poisons: a fraction (<1) of the source class's training images, or a count "
            "(paper: 125 = 25% of a CIFAR-100 class)",
        )
        eps: float = Field(
            0.1,
            gt=0,
            description="trigger size in pixel units of the [0, 1] range (0.1: measured on digits)",
        )
        norm: Literal["linf", "l2"] = Field("linf", description="norm that bounds the trigger")
        cutoff: float = Field(
            0.3,
            gt=0,
            le=1.5,
            description="low-pass radius: DCT index / size, so ~1 is the highest frequency along an axis",
        )
        application: Literal["paper", "rescale", "pixel"] = Field(
            "paper",
            description="paper: normalise, add, per-image min-max rescale to [0, 1], and the network "
            "sees that [0, 1] tensor un-normalised (the paper's code); rescale (ours): the same image, "
            "then normalised by the model; pixel: add in pixel space and clip to [0, 1]",
        )
        steps: int = Field(100, ge=0, description="Adam steps of the universal-perturbation search")
        lr: float = Field(0.05, gt=0, description="Adam step size on the DCT coefficients (pixel units)")
        batch_size: int = Field(256, ge=1, description="source images per search step")
        surrogate_epochs: int | None = Field(
            None, ge=1, description="epochs of the clean surrogate (null: the suite's recipe)"
        )

    def check_dataset(self, data: DatasetInfo) -> list[ParamProblem]:
        return class_problems(data, source=self.params.source, target=self.params.target)

    def make_trigger(self, ctx: AttackContext) -> tuple[torch.Tensor, dict]:
        """The trigger (C, H, W) and facts about its search (surrogate accuracy, fooling rate)."""
        p = self.params
        data = ctx.dataset
        gen = ctx.trainer.generator
        surrogate = ctx.trainer.fit_new(data.train, epochs=p.surrogate_epochs, desc="frequency surrogate")
        surrogate.eval()
        for param in surrogate.parameters():
            param.requires_grad_(False)
        device = ctx.device
        c, h, w = data.image_shape
        dh, dw = dct_matrix(h).to(device), dct_matrix(w).to(device)
        mask = low_pass_mask(h, w, p.cutoff).to(device)

        def to_image(coef: torch.Tensor) -> torch.Tensor:
            return bound(dh.T @ (coef * mask) @ dw, p.eps, p.norm)

        coef = torch.randn((c, h, w), generator=gen).to(device) * p.eps
        coef.requires_grad_(True)
        opt = torch.optim.Adam([coef], lr=p.lr)
        src = data.train.x[data.train.y == p.source].to(device)
        target = torch.full((min(p.batch_size, len(src)),), p.target, device=device)
        for _ in range(p.steps):
            pick = torch.randperm(len(src), generator=gen)[: p.batch_size].to(device)
            xb = apply_trigger(src[pick], to_image(coef), p.application, data.mean, data.std)
            # The victim trains with translations: make the trigger survive them.
            xb = augment_batch(xb, ctx.trainer.recipe.translate, ctx.trainer.recipe.hflip, gen)
            loss = F.cross_entropy(surrogate(xb), target[: len(xb)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        trigger = to_image(coef.detach()).cpu()
        triggered = apply_trigger(src.cpu(), trigger, p.application, data.mean, data.std)
        fooling = float((predict(surrogate, triggered) == p.target).float().mean())
        return trigger, {"surrogate_clean_acc": accuracy(surrogate, data.test), "surrogate_fooling": fooling}

    def poison(self, ctx: AttackContext) -> PoisonedData:
        p, data = self.params, ctx.dataset

        def trigger_and_facts():
            trigger, facts = self.make_trigger(ctx)

            def apply(x: torch.Tensor) -> torch.Tensor:
                return apply_trigger(x, trigger, p.application, data.mean, data.std)

            return apply, {"trigger": trigger, **facts}

        return relabel_poison(ctx, p.source, p.target, p.budget, trigger_and_facts)


@hookimpl
def register_attacks(register) -> None:
    register(FrequencyTrigger)
