"""Tiny dataset files in the exact real formats (CIFAR pickles, Imagenette JPEG folders) for tests.

Pixels are uniform noise, except for the classes given a colour in ``colours`` (class index ->
RGB): their images are that colour plus noise of +-8 levels, so a model can learn them in a few steps.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from deltabench.data.imagenette import WNID_NAMES

Colours = Mapping[int, tuple[int, int, int]]


def _pixels(
    rng: np.random.Generator, shape: tuple[int, ...], colour: tuple[int, int, int] | None
) -> np.ndarray:
    """(..., H, W, 3) uint8 pixels: uniform noise, or ``colour`` plus noise of +-8 levels."""
    if colour is None:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    noisy = np.asarray(colour, np.int64) + rng.integers(-8, 9, shape)
    return noisy.clip(0, 255).astype(np.uint8)


def _cifar_rows(rng: np.random.Generator, labels: np.ndarray, colours: Colours | None) -> np.ndarray:
    """One 3072-byte row per label (channel planes of 32x32, as the real files)."""
    colours = colours or {}
    images = np.stack([_pixels(rng, (32, 32, 3), colours.get(int(c))) for c in labels])
    return images.transpose(0, 3, 1, 2).reshape(len(labels), 3072)


def write_cifar10(
    root: Path, per_class: int = 2, seed: int = 0, colours: Colours | None = None
) -> dict[str, np.ndarray]:
    """Real-format CIFAR-10 pickles (5 train batches, a test batch, batches.meta); returns the data."""
    rng = np.random.default_rng(seed)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = np.repeat(np.arange(10), per_class)
        data = (
            rng.integers(0, 256, (labels.size, 3072), dtype=np.uint8)
            if colours is None
            else _cifar_rows(rng, labels, colours)
        )
        with (base / name).open("wb") as fh:
            pickle.dump({"batch_label": name, "data": data, "labels": labels.tolist()}, fh)
        written[name] = data
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with (base / "batches.meta").open("wb") as fh:
        pickle.dump({"label_names": names, "num_vis": 3072}, fh)
    return written


def write_cifar100(root: Path, per_class: int = 1, seed: int = 0, colours: Colours | None = None) -> None:
    rng = np.random.default_rng(seed)
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    for name in ["train", "test"]:
        fine = np.repeat(np.arange(100), per_class)
        data = (
            rng.integers(0, 256, (fine.size, 3072), dtype=np.uint8)
            if colours is None
            else _cifar_rows(rng, fine, colours)
        )
        with (base / name).open("wb") as fh:
            pickle.dump(
                {"data": data, "fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist()}, fh
            )
    with (base / "meta").open("wb") as fh:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": []}, fh)


def write_imagenette(
    root: Path, per_class: int = 2, classes: int = 10, seed: int = 0, colours: Colours | None = None
) -> None:
    """Small JPEGs of odd sizes in imagenette2-160/{train,val}/<wnid>/."""
    rng = np.random.default_rng(seed)
    colours = colours or {}
    for split in ["train", "val"]:
        for c, wnid in enumerate(sorted(WNID_NAMES)[:classes]):
            folder = root / "imagenette2-160" / split / wnid
            folder.mkdir(parents=True)
            for k in range(per_class):
                h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
                pixels = _pixels(rng, (h, w, 3), colours.get(c))
                Image.fromarray(pixels).save(folder / f"{wnid}_{k}.JPEG", quality=95)
