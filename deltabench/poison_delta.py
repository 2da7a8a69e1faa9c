"""Poisoned data as its difference from the clean dataset, bit for bit: what a victim pack ships.

A poisoned training set is the clean one with a few rows changed (a trigger, a perturbation, a
relabel), and the triggered test set is test images with a trigger. Storing only the changed rows,
and in each only the changed values when those are few, keeps a pack small while the receiver,
who has the clean dataset, rebuilds exactly the arrays the published victim was trained on.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from .artifacts import Dataset, ImageSet, PoisonedData

__all__ = ["dataset_sha256", "encode_poisoned", "decode_poisoned"]


def dataset_sha256(dataset: Dataset) -> str:
    """A digest of the clean images and labels: the pack's data must be rebuilt on the same data."""
    digest = hashlib.sha256()
    for t in (dataset.train.x, dataset.train.y, dataset.test.x, dataset.test.y):
        t = t.contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def _delta(new: torch.Tensor, base: torch.Tensor) -> dict[str, Any]:
    """``new`` as changed positions and values over ``base`` (same shape) when under half differ."""
    changed = (new != base).reshape(-1)
    if int(changed.sum()) * 2 < changed.numel():
        positions = torch.nonzero(changed).reshape(-1)
        return {"positions": positions.numpy(), "values": new.reshape(-1)[positions].clone()}
    return {"values": new.clone()}


def _undelta(delta: dict[str, Any], base: torch.Tensor) -> torch.Tensor:
    if "positions" not in delta:
        return delta["values"].clone()
    out = base.clone().reshape(-1)
    out[torch.as_tensor(delta["positions"], dtype=torch.long)] = delta["values"]
    return out.reshape(base.shape)


def _nearest(images: torch.Tensor, pool: torch.Tensor, chunk: int = 256) -> np.ndarray:
    """For each image the index of the nearest pool image (Euclidean, through matrix products, so
    a CIFAR test set takes seconds), in chunks. Any choice decodes exactly; the nearest is smallest."""
    if len(images) == 0 or len(pool) == 0:
        return np.zeros(len(images), dtype=np.int64)
    flat = pool.reshape(len(pool), -1)
    found = [
        torch.cdist(images[i : i + chunk].reshape(-1, flat.shape[1]), flat).argmin(1)
        for i in range(0, len(images), chunk)
    ]
    return torch.cat(found).numpy().astype(np.int64)


def encode_poisoned(data: PoisonedData, clean: Dataset) -> dict[str, Any]:
    """What rebuilds ``data`` from ``clean``: changed training rows and triggered test images as
    deltas, plus the attack's labels and facts."""
    train, base = data.train, clean.train
    rows = torch.nonzero((train.x != base.x).reshape(len(base), -1).any(1) | (train.y != base.y)).reshape(-1)
    trig = data.triggered_test
    source = _nearest(trig.x, clean.test.x)
    return {
        "train_rows": rows.numpy(),
        "train_labels": train.y[rows].clone(),
        "train_images": _delta(train.x[rows], base.x[rows]),
        "test_base": source,
        "test_labels": trig.y.clone(),
        "test_images": _delta(trig.x, clean.test.x[torch.as_tensor(source)]),
        "poison_indices": data.poison_indices,
        "target_class": data.target_class,
        "source_class": data.source_class,
        "info": data.info,
    }


def decode_poisoned(packed: dict[str, Any], clean: Dataset) -> PoisonedData:
    """The :class:`PoisonedData` that :func:`encode_poisoned` was given, from the same clean data."""
    rows = torch.as_tensor(packed["train_rows"], dtype=torch.long)
    x, y = clean.train.x.clone(), clean.train.y.clone()
    x[rows] = _undelta(packed["train_images"], clean.train.x[rows])
    y[rows] = packed["train_labels"]
    base = clean.test.x[torch.as_tensor(packed["test_base"], dtype=torch.long)]
    triggered = ImageSet(_undelta(packed["test_images"], base), packed["test_labels"].clone())
    return PoisonedData(
        ImageSet(x, y),
        packed["poison_indices"],
        triggered,
        packed["target_class"],
        packed["source_class"],
        packed["info"],
    )
