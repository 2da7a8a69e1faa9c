"""Tiny real-format CIFAR / Imagenette files that a small CNN learns in a few epochs.

Each class is one colour plus a little noise, and the test split repeats the training images, so a
victim fits both and every attack of the paper suites has an affected point to trace: the dirty-label
poisons take the whole (tiny) source class, whose triggered test copies are then exactly poisons;
Witches' Brew gets a decoy target, a copy of an intended-class image filed under another class.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from deltabench.data.cifar import Cifar100
from deltabench.data.imagenette import WNID_NAMES

__all__ = ["write_cifar10", "write_cifar100", "write_imagenette", "DECOY_CLASS"]

DECOY_CLASS = 1  # the Witches' Brew decoy: a class-1 image filed as the last val image of class 0


def _colours(classes: int) -> np.ndarray:
    """One colour per class. Ten random colours are far apart; a hundred random ones are not (two
    CIFAR-100 fakes lay 8 apart, inside the pixel noise), so many classes take a 5 x 5 x 5 grid.

    The grid leaves out the colours inside the box where the frequency attack's paper-style poisons
    land, whatever their source: min-max rescaled and seen un-normalised, a poison's pixels lie
    between the dataset mean and mean + std. A class colour there (there were two) made the poisons
    look like that class, and the victim fitted them with a logit margin of 0.1-2, so the attack
    failed to take on some machines."""
    if classes <= 10:
        return np.random.default_rng(1234).integers(30, 226, (classes, 3))
    axes = np.meshgrid(*[np.linspace(30, 225, 5)] * 3)
    grid = np.stack([a.ravel() for a in axes], axis=1).round().astype(int)
    mean, std = np.array(Cifar100.mean) * 255, np.array(Cifar100.std) * 255
    poison_box = np.all((grid > mean - 12) & (grid < mean + std + 12), axis=1)
    grid = grid[~poison_box]
    assert classes <= len(grid), f"at most {len(grid)} classes"
    return np.random.default_rng(1234).permutation(grid)[:classes]


def _images(labels: np.ndarray, side: int, rng: np.random.Generator, classes: int) -> np.ndarray:
    colours = _colours(classes)
    noise = rng.integers(-12, 13, (labels.size, side, side, 3))
    return np.clip(colours[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # CIFAR rows: R plane, G, B


def write_cifar10(root: Path, per_class: int = 3, seed: int = 0) -> None:
    """5 train batches of ``per_class`` images per class; ``test_batch`` repeats ``data_batch_1``."""
    rng = np.random.default_rng(seed)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    labels = np.repeat(np.arange(10), per_class)
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        data = _cifar_rows(_images(labels, 32, rng, 10))
        with (base / name).open("wb") as fh:
            pickle.dump({"batch_label": name, "data": data, "labels": labels.tolist()}, fh)
    shutil.copy(base / "data_batch_1", base / "test_batch")
    with (base / "batches.meta").open("wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072}, fh)


def write_cifar100(root: Path, per_class: int = 3, seed: int = 0) -> None:
    """``train`` of ``per_class`` images per class; ``test`` repeats it."""
    rng = np.random.default_rng(seed)
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    fine = np.repeat(np.arange(100), per_class)
    data = _cifar_rows(_images(fine, 32, rng, 100))
    for name in ["train", "test"]:
        with (base / name).open("wb") as fh:
            pickle.dump(
                {"data": data, "fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist()}, fh
            )
    with (base / "meta").open("wb") as fh:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": []}, fh)


def write_imagenette(root: Path, per_class: int = 4, seed: int = 0) -> int:
    """JPEGs in imagenette2-160/{train,val}/<wnid>/; val repeats train plus one decoy. Returns the
    decoy's test index (class 0's files come first, sorted; the decoy sorts last among them)."""
    rng = np.random.default_rng(seed)
    wnids = sorted(WNID_NAMES)
    labels = np.repeat(np.arange(10), per_class)
    images = _images(labels, 40, rng, 10)
    for split in ["train", "val"]:
        for c, wnid in enumerate(wnids):
            folder = root / "imagenette2-160" / split / wnid
            folder.mkdir(parents=True)
            for k in range(per_class):
                Image.fromarray(images[c * per_class + k]).save(folder / f"{wnid}_{k}.JPEG", quality=95)
    decoy = root / "imagenette2-160" / "val" / wnids[0] / "zz_decoy.JPEG"
    shutil.copy(
        root / "imagenette2-160" / "train" / wnids[DECOY_CLASS] / f"{wnids[DECOY_CLASS]}_0.JPEG", decoy
    )
    return per_class
