"""CIFAR-10 and CIFAR-100 from the standard python-pickle folders, as the paper used them.

The pickles are parsed here (``data``: N x 3072 uint8, channel-major; ``labels`` or
``fine_labels``), so the loader works on any files in the real format. torchvision is only used to
download (``download: true``), which also checks the archive. With ``verify: true`` (the default)
each pickle's MD5 is checked against the published one; hand-made test files in the same format
need ``verify: false``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifacts import Dataset, ImageSet
from ..components import DatasetInfo, DatasetSource, Params, locating_field
from ..exceptions import DatasetMissingError
from ..file_digest import file_digest
from ..hookspecs import hookimpl

__all__ = ["Cifar10", "Cifar100", "read_pickle_batches"]

CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


class _PlainDataUnpickler(pickle.Unpickler):
    """Rebuilds only what CIFAR's files hold: containers, strings, numbers and numpy arrays.

    Any other global (``os.system``, a class whose ``__reduce__`` runs code) is refused, so a
    hand-made or tampered file cannot run code when it is loaded: ``verify: false`` skips the MD5
    check, and the class-name file has no published sum.
    """

    ARRAYS = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}
    NUMPY = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
             "numpy._core.numeric"}  # fmt: skip

    def find_class(self, module: str, name: str) -> Any:
        if module in self.NUMPY and name in self.ARRAYS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing {module}.{name}: a CIFAR file holds only arrays, lists and strings"
        )


def load_plain_pickle(path: Path) -> Any:
    """A CIFAR pickle (Python 2's latin-1 strings) with :class:`_PlainDataUnpickler`; a file that
    needs anything else is reported in one line naming it."""
    with path.open("rb") as fh:
        try:
            return _PlainDataUnpickler(fh, encoding="latin1").load()
        except pickle.UnpicklingError as exc:
            raise DatasetMissingError(
                f"{path} is not a CIFAR file ({exc}); get the real files or re-download them"
            ) from exc


def read_pickle_batches(files: list[Path], label_key: str) -> ImageSet:
    """Concatenate CIFAR pickle batches into one pixel-space ImageSet."""
    xs, ys = [], []
    for path in files:
        batch = load_plain_pickle(path)
        xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[label_key], dtype=np.int64))
    x = torch.from_numpy(np.concatenate(xs)).float().div_(255.0)
    return ImageSet(x, torch.from_numpy(np.concatenate(ys)))


class _CifarBase(DatasetSource):
    folder: str = ""
    train_files: list[tuple[str, str]] = []
    test_files: list[tuple[str, str]] = []
    meta: tuple[str, str] = ("", "")  # file, key of the class names
    label_key = "labels"
    num_classes = 10
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    title = ""

    class Params(Params):
        root: str = locating_field("data", "folder holding the extracted dataset folder")
        download: bool = locating_field(False, "download (and check) the archive when it is missing")
        verify: bool = locating_field(True, "check each file's MD5 (false for hand-made test files)")

    def _tv_class(self):
        raise NotImplementedError

    def _files(self) -> tuple[Path, list[Path], list[Path]]:
        base = Path(self.params.root).expanduser() / self.folder
        return base, [base / f for f, _ in self.train_files], [base / f for f, _ in self.test_files]

    def _missing(self) -> str | None:
        """Why the files cannot be read, with how to get them; None when they are all there."""
        _, train_paths, test_paths = self._files()
        missing = [p for p in train_paths + test_paths if not p.is_file()]
        if not missing:
            return None
        return (
            f"{self.title} not found: expected {missing[0]}; set `download: true` in the suite's "
            f"dataset params or get it from {CIFAR_PAGE} and extract it into {self.params.root}"
        )

    def info(self) -> DatasetInfo:
        missing = None if self.params.download else self._missing()
        # the published files hold 10,000 test images; hand-made ones (verify: false) may not
        return DatasetInfo(
            self.name, self.num_classes, (3, 32, 32), 10_000 if self.params.verify else None, missing
        )

    def load(self, seed: int) -> Dataset:
        base, train_paths, test_paths = self._files()
        if self._missing() and self.params.download:
            self._tv_class()(root=str(Path(self.params.root).expanduser()), train=True, download=True)
        problem = self._missing()
        if problem:
            raise DatasetMissingError(problem)
        if self.params.verify:
            for path, (_, md5) in zip(
                train_paths + test_paths, self.train_files + self.test_files, strict=True
            ):
                if file_digest(path, "md5") != md5:
                    raise DatasetMissingError(
                        f"{path} fails its MD5 check (corrupt or not the real {self.title}); "
                        "re-download it, or set `verify: false` for hand-made files"
                    )
        train = read_pickle_batches(train_paths, self.label_key)
        test = read_pickle_batches(test_paths, self.label_key)
        names = [str(i) for i in range(self.num_classes)]
        meta_path = base / self.meta[0]
        if meta_path.is_file():
            names = list(load_plain_pickle(meta_path).get(self.meta[1], names))
        return Dataset(self.name, train, test, self.num_classes, self.mean, self.std, names)


class Cifar10(_CifarBase):
    """CIFAR-10 (50k/10k 32x32 colour images, 10 classes) from cifar-10-batches-py."""

    name = "cifar10"
    folder = "cifar-10-batches-py"
    train_files = [
        ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
        ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
        ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
        ("data_batch_4", "634d18415352ddfa80567beed471001a"),
        ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
    ]
    test_files = [("test_batch", "40351d587109b95175f43aff81a1287e")]
    meta = ("batches.meta", "label_names")
    label_key = "labels"
    num_classes = 10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    title = "CIFAR-10"

    def _tv_class(self):
        from torchvision.datasets import CIFAR10

        return CIFAR10


class Cifar100(_CifarBase):
    """CIFAR-100 (50k/10k 32x32 colour images, 100 fine classes) from cifar-100-python."""

    name = "cifar100"
    folder = "cifar-100-python"
    train_files = [("train", "16019d7e3df5f24257cddd939b257f8d")]
    test_files = [("test", "f0ef6b0ae62326f3e7ffdfab6717acfc")]
    meta = ("meta", "fine_label_names")
    label_key = "fine_labels"
    num_classes = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
    title = "CIFAR-100"

    def _tv_class(self):
        from torchvision.datasets import CIFAR100

        return CIFAR100


@hookimpl
def register_datasets(register) -> None:
    register(Cifar10)
    register(Cifar100)
