"""The values passed between stages: datasets, poisoned data, detections.

Images always live in pixel space, float32 in [0, 1], shape (N, C, H, W). Normalisation is the
model's job (see :mod:`deltabench.models`), so attacks, detectors and transforms never need to
know a dataset's mean and standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .codec import storable

__all__ = ["ImageSet", "Dataset", "PoisonedData", "Detection"]


@storable
@dataclass
class ImageSet:
    """Images in [0, 1] and their integer labels."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(self.x.shape)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} images but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, indices: np.ndarray | torch.Tensor | list[int]) -> ImageSet:
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ImageSet(self.x[idx], self.y[idx])

    def to(self, device: torch.device | str) -> ImageSet:
        return ImageSet(self.x.to(device), self.y.to(device))

    def clone(self) -> ImageSet:
        return ImageSet(self.x.clone(), self.y.clone())


@dataclass
class Dataset:
    """A train/test split plus what models need to know about it."""

    name: str
    train: ImageSet
    test: ImageSet
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: list[str] = field(default_factory=list)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return int(c), int(h), int(w)


@storable
@dataclass
class PoisonedData:
    """What an attack hands to the runner.

    ``train`` has the same length and order as the clean training set; the poisons replace the
    images they were made from, at ``poison_indices``. ``triggered_test`` holds test inputs that
    carry the attack (a trigger, or the Witches' Brew target image) labelled with the attacker's
    target class: the poison success rate (PSR) is the fraction the model sends to that label.
    """

    train: ImageSet
    poison_indices: np.ndarray
    triggered_test: ImageSet
    target_class: int
    source_class: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.poison_indices = np.unique(np.asarray(self.poison_indices, dtype=np.int64))


@storable
@dataclass
class Detection:
    """Indices of training points a detector flags as poisons, plus any raw scores to keep."""

    flagged: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.flagged = np.unique(np.asarray(self.flagged, dtype=np.int64))
