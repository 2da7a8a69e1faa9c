"""Tiny dataset files in the exact real formats (CIFAR pickles, Imagenette JPEG folders) for tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from deltabench.data.imagenette import WNID_NAMES


def write_cifar10(root: Path, per_class: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Real-format CIFAR-10 pickles (5 train batches, a test batch, batches.meta); returns the data."""
    rng = np.random.default_rng(seed)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = np.repeat(np.arange(10), per_class)
        data = rng.integers(0, 256, (labels.size, 3072), dtype=np.uint8)
        with (base / name).open("wb") as fh:
            pickle.dump({"batch_label": name, "data": data, "labels": labels.tolist()}, fh)
        written[name] = data
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with (base / "batches.meta").open("wb") as fh:
        pickle.dump({"label_names": names, "num_vis": 3072}, fh)
    return written


def write_cifar100(root: Path, per_class: int = 1, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    for name in ["train", "test"]:
        fine = np.repeat(np.arange(100), per_class)
        data = rng.integers(0, 256, (fine.size, 3072), dtype=np.uint8)
        with (base / name).open("wb") as fh:
            pickle.dump(
                {"data": data, "fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist()}, fh
            )
    with (base / "meta").open("wb") as fh:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": []}, fh)


def write_imagenette(root: Path, per_class: int = 2, classes: int = 10, seed: int = 0) -> None:
    """Small JPEGs of odd sizes in imagenette2-160/{train,val}/<wnid>/."""
    rng = np.random.default_rng(seed)
    for split in ["train", "val"]:
        for wnid in sorted(WNID_NAMES)[:classes]:
            folder = root / "imagenette2-160" / split / wnid
            folder.mkdir(parents=True)
            for k in range(per_class):
                h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{wnid}_{k}.JPEG", quality=95)
