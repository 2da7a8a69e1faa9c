"""Frequency analyzer (Zeng, Park, Mozaffari, Sun and Jia 2021): a CNN on the 2D DCT of images."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..artifacts import Detection
from ..components import DetectionContext, Detector, Params
from ..hookspecs import hookimpl
from ..training import even_batches

__all__ = ["dct_matrix", "dct2", "synthetic_triggers", "FrequencyAnalyzer"]


def dct_matrix(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``D`` (n x n): ``D @ v`` is the DCT of a length-n vector ``v``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Per-channel orthonormal 2D DCT-II of images (N, C, H, W), as two matrix products."""
    h, w = x.shape[-2:]
    return dct_matrix(h, x.dtype).to(x.device) @ x @ dct_matrix(w, x.dtype).to(x.device).T


def dct2_in_chunks(x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """:func:`dct2` of a whole training set ``chunk`` images at a time, so that the products'
    temporaries (twice the set's size) never have to fit an accelerator's memory at once."""
    return torch.cat([dct2(x[i : i + chunk]) for i in range(0, len(x), chunk)]) if len(x) else dct2(x)


def synthetic_triggers(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A copy of each image with one random synthetic trigger (one kind per image, uniformly):
    a block of side 1..H/4+1 in a random corner, filled white, with uniform noise or with a random
    binary (white / unchanged) pattern; a random uniform pattern blended in with weight 0.05-0.2;
    or additive Gaussian noise, sigma 0.02-0.1."""
    n, c, h, w = x.shape
    dev = x.device
    kind = torch.randint(0, 3, (n,), generator=generator)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    # corner blocks, vectorised: a per-image mask of the block and a per-image fill
    max_side = max(2, min(h, w) // 4 + 1)
    side = torch.randint(1, max_side + 1, (n, 1, 1), generator=generator).to(dev)
    bottom = rand(n, 1, 1) < 0.5
    right = rand(n, 1, 1) < 0.5
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    in_rows = torch.where(bottom, rows >= h - side, rows < side)
    in_cols = torch.where(right, cols >= w - side, cols < side)
    fill_kind = torch.randint(0, 3, (n, 1, 1, 1), generator=generator).to(dev)
    noise_fill = rand(n, c, h, w)
    binary = (rand(n, 1, h, w) < 0.5).expand(n, c, h, w)
    fill = torch.where(fill_kind == 0, torch.ones_like(x), noise_fill)
    block = (in_rows & in_cols).unsqueeze(1).expand(n, c, h, w)
    block = block & ~((fill_kind == 2) & ~binary)
    patched = torch.where(block, torch.where(fill_kind == 2, torch.ones_like(x), fill), x)

    alpha = 0.05 + 0.15 * rand(n, 1, 1, 1)
    blended = (1 - alpha) * x + alpha * rand(n, c, h, w)
    sigma = 0.02 + 0.08 * rand(n, 1, 1, 1)
    noisy = (x + sigma * torch.randn(n, c, h, w, generator=generator).to(dev)).clamp(0, 1)

    k = kind.to(dev).view(n, 1, 1, 1)
    return torch.where(k == 0, patched, torch.where(k == 1, blended, noisy))


class _DCTNet(nn.Module):
    """Standardised DCT coefficients -> two conv blocks -> 2 logits (clean, triggered)."""

    def __init__(self, channels: int, size: int, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        pooled = min(size, 4)
        self.net = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ELU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ELU(),
            nn.AdaptiveAvgPool2d(pooled),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(32 * pooled * pooled, 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((dct2(x) - self.mean) / self.std)


class FrequencyAnalyzer(Detector):
    """A small CNN on per-channel DCTs, trained on clean vs synthetically triggered copies; flags p >= 0.5.

    Zeng et al. train their detector on a clean dataset; here the only images at hand are the
    (poisoned) training set, so the "clean" class is the training set itself, its few poisons
    included (ours; the paper's code trained it once on clean CIFAR and reused the weights). No
    downloaded weights: the detector is trained from scratch on every call, with Adam, fresh
    triggered copies each epoch, and at most ``max_images`` training images (a random subset) to
    bound the cost on large sets. The synthetic triggers (corner block, blend, noise) and the CNN
    (2 conv layers, BN, ELU, dropout, linear) are our small versions of Zeng et al.'s; the DCT
    coefficients are standardised per coefficient with the clean images' statistics (ours).
    """

    name = "frequency-analyzer"
    deviations = (
        "The DCT classifier is trained by deltabench; the paper loaded a pretrained `freq_detector.pth`.",
    )

    class Params(Params):
        threshold: float = Field(0.5, gt=0, lt=1, description="flag when p(triggered) >= threshold")
        epochs: int = Field(10, ge=1, description="passes over the clean images (each with fresh triggers)")
        batch_size: int = Field(128, ge=2, description="clean images per step (plus as many triggered)")
        lr: float = Field(1e-3, gt=0, description="Adam learning rate")
        max_images: int = Field(10_000, ge=1, description="train on at most this many training images")

    def train_detector(self, ctx: DetectionContext) -> nn.Module:
        p = self.params
        gen = ctx.trainer.generator
        x = ctx.train.x
        if len(x) > p.max_images:
            x = x[torch.randperm(len(x), generator=gen)[: p.max_images]]
        x = x.to(ctx.device)
        coeffs = dct2(x) if x.device.type == "cpu" else dct2_in_chunks(x)  # CPU: as it always was
        model = _DCTNet(x.shape[1], x.shape[-1], coeffs.mean(0), coeffs.std(0) + 1e-6).to(ctx.device)
        opt = torch.optim.Adam(model.parameters(), lr=p.lr)
        model.train()
        for _ in range(p.epochs):
            for idx in even_batches(torch.randperm(len(x), generator=gen).to(ctx.device), p.batch_size):
                clean = x[idx]
                triggered = synthetic_triggers(clean, gen)
                inputs = torch.cat([clean, triggered])
                target = torch.cat([torch.zeros(len(clean)), torch.ones(len(clean))]).long().to(ctx.device)
                loss = F.cross_entropy(model(inputs), target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return model.eval()

    @torch.no_grad()
    def probabilities(self, model: nn.Module, x: torch.Tensor, device: torch.device) -> np.ndarray:
        out = [model(x[i : i + 1024].to(device)).softmax(1)[:, 1].cpu() for i in range(0, len(x), 1024)]
        return torch.cat(out).double().numpy()

    def detect(self, ctx: DetectionContext) -> Detection:
        model = self.train_detector(ctx)
        prob = self.probabilities(model, ctx.train.x, ctx.device)
        return Detection(np.flatnonzero(prob >= self.params.threshold), {"p_triggered": prob})


@hookimpl
def register_detectors(register) -> None:
    register(FrequencyAnalyzer)
