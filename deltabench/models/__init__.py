"""Model families. Every model is an :class:`ImageClassifier`: it takes pixel-space images in
[0, 1], normalises them itself, and exposes its penultimate features (for spectral signatures and
activation clustering) and its final linear layer ``head``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ImageClassifier", "Normalize"]


class Normalize(nn.Module):
    """Per-channel (x - mean) / std, as a module so that the model owns its input statistics."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ImageClassifier(nn.Module):
    """normalise -> ``body`` (images to a feature vector) -> linear ``head``."""

    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int, mean, std) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.body = body
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer representation of pixel-space images."""
        return self.body(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
