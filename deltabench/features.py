"""Penultimate-layer features of a victim, shared by the representation-based detectors."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["penultimate_features"]


@torch.no_grad()
def penultimate_features(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``model.features`` of pixel-space images ``x``, computed in batches, returned on the CPU."""
    if not hasattr(model, "features"):
        raise TypeError(f"{type(model).__name__} has no .features(); use a deltabench ImageClassifier")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [
        model.features(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)
    ]
    model.train(was_training)
    return torch.cat(out)
