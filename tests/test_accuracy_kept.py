"""'Accuracy kept' compares float32 accuracies with a tolerance above float32 rounding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from deltabench.metrics import MAX_ACC_DROP, accuracy_kept


def _float32_accuracy(correct: int, total: int) -> float:
    """As ``training.accuracy`` computes it: the mean of a float32 tensor of hits."""
    hits = torch.zeros(total)
    hits[:correct] = 1
    return float(hits.float().mean())


def test_exactly_five_points_lost_is_kept():
    drop = _float32_accuracy(19, 20) - _float32_accuracy(18, 20)  # 95 % -> 90 %
    assert drop > MAX_ACC_DROP  # 0.0500000119...: the float32 rounding that a 1e-9 tolerance missed
    assert accuracy_kept(drop)


def test_more_than_five_points_lost_is_not_kept():
    # one test image more than 5 points on a 1,000-image test set
    assert not accuracy_kept(_float32_accuracy(950, 1000) - _float32_accuracy(899, 1000))
    assert accuracy_kept(_float32_accuracy(950, 1000) - _float32_accuracy(900, 1000))


def test_vectorised_over_a_frame():
    frame = pd.DataFrame(
        {
            "victim_clean_acc": [_float32_accuracy(19, 20), _float32_accuracy(19, 20), 0.9],
            "unlearned_clean_acc": [_float32_accuracy(18, 20), _float32_accuracy(17, 20), 0.95],
        }
    )
    kept = accuracy_kept(frame["victim_clean_acc"] - frame["unlearned_clean_acc"])
    np.testing.assert_array_equal(kept.to_numpy(), [True, False, True])
