"""The train loss and query measurement every backend differentiates (the paper's method, step 1; docs/influence.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["margin", "summed_cross_entropy"]


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example ``logit_y - logsumexp_{k != y} logit_k`` (large = confident in label y)."""
    own = logits.gather(1, labels[:, None]).squeeze(1)
    # A comparison rather than F.one_hot, which checks its input and so fails under torch.func.vmap.
    own_mask = torch.arange(logits.shape[1], device=logits.device)[None, :] == labels[:, None]
    others = logits.masked_fill(own_mask, float("-inf"))
    return own - others.logsumexp(dim=1)


def summed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The training loss of influence functions: cross-entropy summed (not averaged) over the batch."""
    return F.cross_entropy(logits, labels, reduction="sum")
