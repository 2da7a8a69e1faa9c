"""Poison success rate, accuracy and detection quality, as the paper defines them."""

from __future__ import annotations

import numpy as np
from torch import nn

from .artifacts import ImageSet
from .training import accuracy, predict

__all__ = [
    "poison_success_rate",
    "accuracy",
    "detection_metrics",
    "accuracy_kept",
    "SUCCESS_PSR",
    "MAX_ACC_DROP",
    "ACC_TOLERANCE",
]

SUCCESS_PSR = 0.05  # the paper marks unlearning a success when PSR falls below 5%
# The paper asks for the PSR to fall "with test accuracy kept" but gives no number (it reports SSD's
# 10% accuracy as a destroyed model). Ours: more than 5 points below the victim is not kept.
MAX_ACC_DROP = 0.05
# Accuracies are float32 fractions k/n: a drop of exactly 5 points reads 0.0500000119. The tolerance
# sits far above float32 rounding of numbers <= 1 (~6e-8) and far below one test image (1/n >= 1e-5).
ACC_TOLERANCE = 1e-6


def poison_success_rate(model: nn.Module, triggered: ImageSet) -> float:
    """Share of triggered test inputs the model assigns to the attacker's target label."""
    if len(triggered) == 0:
        return float("nan")
    return float((predict(model, triggered.x) == triggered.y.cpu()).float().mean())


def accuracy_kept(drop):
    """Whether a clean-accuracy drop (victim minus unlearned; a float, array or Series) is at most
    ``MAX_ACC_DROP``, up to ``ACC_TOLERANCE``."""
    return drop <= MAX_ACC_DROP + ACC_TOLERANCE


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
