"""Imagenette (10 easy ImageNet classes) from the standard folder layout, as the paper used it.

``<root>/imagenette2-160/{train,val}/<wnid>/*.JPEG``; images are resized (shorter side) and
centre-cropped to ``size`` pixels (160 in the paper). ``download: true`` fetches the 160-px archive
through torchvision, which checks its MD5. Normalisation: the ImageNet mean and std.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from ..artifacts import Dataset, ImageSet
from ..components import DatasetInfo, DatasetSource, Params, locating_field
from ..exceptions import DatasetMissingError
from ..hookspecs import hookimpl

__all__ = ["Imagenette", "WNID_NAMES"]

FOLDER = "imagenette2-160"
PAGE = "https://github.com/fastai/imagenette"
WNID_NAMES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394912": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888605": "parachute",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EXTENSIONS = {".jpeg", ".jpg", ".png"}


def load_image(path: Path, size: int) -> np.ndarray:
    """RGB, shorter side resized to ``size`` (bilinear), centre crop ``size`` x ``size``; uint8 CHW."""
    from PIL import Image  # imported here: loading the registry stays fast

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


class Imagenette(DatasetSource):
    """Imagenette 160 px (9,469 train / 3,925 val colour images, 10 classes) from imagenette2-160."""

    name = "imagenette"

    class Params(Params):
        root: str = locating_field("data", "folder holding imagenette2-160/")
        size: int = Field(160, ge=8, description="side of the resized, centre-cropped images")
        download: bool = locating_field(False, "download the 160-px archive (MD5-checked) if missing")
        workers: int = locating_field(4, "threads decoding JPEGs", ge=1)

    def _split(self, folder: Path, classes: list[str]) -> ImageSet:
        files, labels = [], []
        for label, wnid in enumerate(classes):
            found = sorted(p for p in (folder / wnid).iterdir() if p.suffix.lower() in EXTENSIONS)
            files += found
            labels += [label] * len(found)
        with ThreadPoolExecutor(self.params.workers) as pool:
            images = list(pool.map(lambda p: load_image(p, self.params.size), files))
        s = self.params.size
        x = np.stack(images) if images else np.zeros((0, 3, s, s), np.uint8)
        return ImageSet(torch.from_numpy(x).float().div_(255.0), torch.tensor(labels, dtype=torch.long))

    def _base(self) -> Path:
        return Path(self.params.root).expanduser() / FOLDER

    def _classes(self) -> list[str]:
        return sorted(p.name for p in (self._base() / "train").iterdir() if p.is_dir())

    def _missing(self) -> str | None:
        """Why the folders cannot be read, with how to get them; None when they are there."""
        base = self._base()
        if not (base / "train").is_dir() or not (base / "val").is_dir():
            return (
                f"Imagenette not found: expected {base}/train and {base}/val; set `download: true` "
                f"in the suite's dataset params or get imagenette2-160.tgz from {PAGE}"
            )
        if not self._classes():
            return f"{base}/train holds no class folders; re-extract imagenette2-160.tgz"
        return None

    def info(self) -> DatasetInfo:
        shape = (3, self.params.size, self.params.size)
        missing = self._missing()
        if missing is None:
            return DatasetInfo(self.name, len(self._classes()), shape)
        downloads = self.params.download and not (self._base() / "train").is_dir()  # as load() does
        return DatasetInfo(self.name, len(WNID_NAMES), shape, missing=None if downloads else missing)

    def load(self, seed: int) -> Dataset:
        root = Path(self.params.root).expanduser()
        base = root / FOLDER
        if not (base / "train").is_dir() and self.params.download:
            from torchvision.datasets import Imagenette as TvImagenette

            TvImagenette(str(root), split="train", size="160px", download=True)
        problem = self._missing()
        if problem:
            raise DatasetMissingError(problem)
        classes = self._classes()
        train = self._split(base / "train", classes)
        test = self._split(base / "val", classes)
        names = [WNID_NAMES.get(c, c) for c in classes]
        return Dataset("imagenette", train, test, len(classes), IMAGENET_MEAN, IMAGENET_STD, names)


@hookimpl
def register_datasets(register) -> None:
    register(Imagenette)
