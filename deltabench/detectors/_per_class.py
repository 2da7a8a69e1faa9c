"""The per-class loop of the representation-based detectors (spectral signatures, activation clustering)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..artifacts import Detection


def flag_per_class(
    labels: np.ndarray, min_members: int, score_class: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
) -> Detection:
    """``score_class(members) -> (scores, flagged)`` for each label, in label order, over classes with at
    least ``min_members`` training points; the scores of all classes are kept as ``"score"``."""
    scores = np.zeros(len(labels))
    flagged: list[np.ndarray] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < min_members:
            continue
        scores[members], chosen = score_class(members)
        flagged.append(chosen)
    return Detection(np.concatenate(flagged) if flagged else np.empty(0, dtype=np.int64), {"score": scores})
