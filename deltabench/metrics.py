"""Poison success rate, accuracy and detection quality, as the paper defines them."""

from __future__ import annotations

import numpy as np
from torch import nn

from .artifacts import ImageSet
from .training import accuracy, predict

__all__ = ["poison_success_rate", "accuracy", "detection_metrics", "SUCCESS_PSR", "MAX_ACC_DROP"]

SUCCESS_PSR = 0.05  # the paper marks unlearning a success when PSR falls below 5%
# The paper asks for the PSR to fall "with test accuracy kept" but gives no number (it reports SSD's
# 10% accuracy as a destroyed model). Ours: more than 5 points below the victim is not kept.
MAX_ACC_DROP = 0.05


def poison_success_rate(model: nn.Module, triggered: ImageSet) -> float:
    """Share of triggered test inputs the model assigns to the attacker's target label."""
    if len(triggered) == 0:
        return float("nan")
    return float((predict(model, triggered.x) == triggered.y.cpu()).float().mean())


def detection_metrics(flagged: np.ndarray, true_poisons: np.ndarray) -> dict[str, float | int]:
    """Flagged count, true poisons among them, precision and recall."""
    flagged = np.unique(flagged)
    hits = int(np.intersect1d(flagged, true_poisons).size)
    return {
        "flagged": int(flagged.size),
        "true_poisons_flagged": hits,
        "precision": hits / flagged.size if flagged.size else 0.0,
        "recall": hits / true_poisons.size if true_poisons.size else float("nan"),
    }
