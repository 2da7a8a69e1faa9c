"""Fashion-MNIST (Xiao et al. 2017): 60,000 / 10,000 real 28x28 grey images, 10 classes of 6,000.

The four idx files are parsed here with numpy (gzip or not), so any copy in the official format
works: Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist/``, used by
default when present), an official download, or a folder given as ``root``. With ``verify: true``
(the default) the decompressed bytes are checked against the official files' MD5: Debian
recompresses the archives, so their ``.gz`` digests differ, but their contents are the official
ones. ``download: true`` fetches the official archives and checks their published MD5.

At 60,000 images a suite on 2 CPU cores is slow, so ``train_per_class`` / ``test_per_class``
take a class-balanced subset, drawn with the suite seed: suites trade scale for time explicitly.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from ..artifacts import Dataset, ImageSet
from ..components import DatasetSource, Params, locating_field
from ..exceptions import DatasetMissingError
from ..hookspecs import hookimpl

__all__ = ["FashionMnist", "read_idx", "parse_idx", "balanced_subset", "DEBIAN_ROOT", "FILES"]

DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_ROOT = Path("data/fashion-mnist")  # where `download: true` writes when no root is given
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
# Published statistics of the 60,000 training images (pixels scaled to [0, 1]).
MEAN, STD = 0.2860, 0.3530

# name -> (MD5 of the official .gz archive, MD5 of its decompressed content, magic, shape).
# Archive digests: the zalandoresearch/fashion-mnist README (also torchvision's
# FashionMNIST.resources); content digests: of those archives' decompressed bytes.
FILES: dict[str, tuple[str, str, int, tuple[int, ...]]] = {
    "train-images-idx3-ubyte": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        0x803,
        (60000, 28, 28),
    ),
    "train-labels-idx1-ubyte": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "9018921c3c673c538a1fc5bad174d6f9",
        0x801,
        (60000,),
    ),
    "t10k-images-idx3-ubyte": (
        "bef4ecab320f06d8554ea6380940ec79",
        "8181f5470baa50b63fa0f6fddb340f0a",
        0x803,
        (10000, 28, 28),
    ),
    "t10k-labels-idx1-ubyte": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "15d484375f8d13e6eb1aabb0c3f46965",
        0x801,
        (10000,),
    ),
}
HOW_TO_GET = (
    "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), set `download: true` in the suite's "
    "dataset params, or point `root:` at a folder holding the four idx files"
)


def _read_bytes(path: Path) -> bytes:
    """The file's (decompressed, for ``.gz``) bytes; a broken archive is a one-line error."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise DatasetMissingError(
            f"{path} cannot be read ({err}); delete it and get the file again: {HOW_TO_GET}"
        ) from None


def read_idx(path: Path, magic: int, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """Parse an unsigned-byte idx file (gzip or not) into a uint8 array; see :func:`parse_idx`."""
    return parse_idx(_read_bytes(path), path, magic, shape)


def parse_idx(data: bytes, path: Path, magic: int, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """The uint8 array held by the idx bytes ``data`` read from ``path`` (named in errors).

    The header is a big-endian magic (0x08 = ubyte, then the number of dimensions) and one
    uint32 per dimension; the payload must be exactly their product. ``shape``, when given, is
    what the header must say (``None`` entries: anything).
    """
    ndim = magic & 0xFF

    def corrupt(why: str) -> DatasetMissingError:
        return DatasetMissingError(f"{path} is not a valid idx file ({why}); get it again: {HOW_TO_GET}")

    if len(data) < 4 + 4 * ndim:
        raise corrupt(f"{len(data)} bytes, shorter than its header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise corrupt(f"magic number {found:#010x}, expected {magic:#010x}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if shape is not None and any(s is not None and s != d for s, d in zip(shape, dims)):
        raise corrupt(f"header says shape {dims}, expected {shape}")
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(data) != expected:
        raise corrupt(f"{len(data)} bytes where its header {dims} needs {expected}; truncated?")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``per_class`` examples of every class, drawn without replacement."""
    picks = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if per_class > members.size:
            raise ValueError(f"asked for {per_class} images per class, class {c} has {members.size}")
        picks.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(picks))


def _download(folder: Path) -> None:
    """Fetch the official archives into ``folder``; each is checked before it is kept."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (archive_md5, *_) in FILES.items():
        dest = folder / f"{name}.gz"
        if dest.is_file():
            continue
        part = dest.with_suffix(".gz.part")
        try:
            with urllib.request.urlopen(MIRROR + dest.name, timeout=60) as response:
                part.write_bytes(response.read())
        except OSError as err:
            part.unlink(missing_ok=True)
            raise DatasetMissingError(
                f"downloading {MIRROR}{dest.name} failed ({err}); without a network, "
                "`apt-get install dataset-fashion-mnist` or set `root:` to a folder with the files"
            ) from None
        if hashlib.md5(part.read_bytes()).hexdigest() != archive_md5:
            part.unlink()
            raise DatasetMissingError(f"{MIRROR}{dest.name} failed its MD5 check; try the download again")
        os.replace(part, dest)


class FashionMnist(DatasetSource):
    """Fashion-MNIST: 60,000/10,000 real 28x28 grey clothing images, 10 classes, optional balanced subsets."""

    name = "fashion-mnist"

    class Params(Params):
        root: str | None = locating_field(
            None,
            "folder with the four idx files, .gz or not (null: Debian's "
            f"{DEBIAN_ROOT} when present, else {DOWNLOAD_ROOT})",
        )
        download: bool = locating_field(False, "fetch the official archives (MD5-checked) when missing")
        verify: bool = locating_field(
            True, "check each file's content MD5 (false for slices or hand-made files)"
        )
        train_per_class: int | None = Field(
            None,
            ge=1,
            le=6000,
            description="keep this many training images per class (of 6,000), drawn with the suite seed",
        )
        test_per_class: int | None = Field(
            None,
            ge=1,
            le=1000,
            description="keep this many test images per class (of 1,000), drawn with the suite seed",
        )

    def folder(self) -> Path:
        if self.params.root is not None:
            return Path(self.params.root).expanduser()
        return DEBIAN_ROOT if _find(DEBIAN_ROOT, next(iter(FILES))) else DOWNLOAD_ROOT

    def _paths(self) -> dict[str, Path]:
        folder = self.folder()
        found = {name: _find(folder, name) for name in FILES}
        if None in found.values() and self.params.download:
            _download(folder)
            found = {name: _find(folder, name) for name in FILES}
        missing = [name for name, path in found.items() if path is None]
        if missing:
            raise DatasetMissingError(
                f"Fashion-MNIST not found: no {folder / missing[0]}[.gz]; get it with {HOW_TO_GET}"
            )
        return found  # type: ignore[return-value]

    def _array(self, path: Path, name: str) -> np.ndarray:
        _, content_md5, magic, shape = FILES[name]
        data = _read_bytes(path)
        if self.params.verify and hashlib.md5(data).hexdigest() != content_md5:
            raise DatasetMissingError(
                f"{path} fails its MD5 check (corrupt or not the official Fashion-MNIST); get it "
                "again, or set `verify: false` for a slice or hand-made files"
            )
        # Without verification, slices of any length pass: only the image size is fixed.
        return parse_idx(data, path, magic, shape if self.params.verify else (None, *shape[1:]))

    def _split(self, paths: dict[str, Path], prefix: str, per_class: int | None, seed: int) -> ImageSet:
        x = self._array(paths[f"{prefix}-images-idx3-ubyte"], f"{prefix}-images-idx3-ubyte")
        y = self._array(paths[f"{prefix}-labels-idx1-ubyte"], f"{prefix}-labels-idx1-ubyte")
        if len(x) != len(y):
            raise DatasetMissingError(
                f"{paths[f'{prefix}-images-idx3-ubyte']} holds {len(x)} images but "
                f"{paths[f'{prefix}-labels-idx1-ubyte']} {len(y)} labels; get both files again"
            )
        if y.size and int(y.max()) >= len(CLASS_NAMES):
            raise DatasetMissingError(f"{paths[f'{prefix}-labels-idx1-ubyte']} has label {int(y.max())} > 9")
        if per_class is not None:
            # One stream per split, so the test subset does not move when train_per_class changes.
            rng = np.random.default_rng([seed, 0 if prefix == "train" else 1])
            try:
                keep = balanced_subset(y, per_class, rng)
            except ValueError as err:
                raise ValueError(
                    f"fashion-mnist `{prefix.replace('t10k', 'test')}_per_class`: {err}"
                ) from None
            x, y = x[keep], y[keep]
        images = torch.from_numpy(x[:, None].astype(np.float32)).div_(255.0)
        return ImageSet(images, torch.from_numpy(y.astype(np.int64)))

    def load(self, seed: int) -> Dataset:
        paths = self._paths()
        train = self._split(paths, "train", self.params.train_per_class, seed)
        test = self._split(paths, "t10k", self.params.test_per_class, seed)
        return Dataset(self.name, train, test, 10, (MEAN,), (STD,), list(CLASS_NAMES))


def _find(folder: Path, name: str) -> Path | None:
    """The file ``name`` in ``folder``, uncompressed or ``.gz`` (the uncompressed one first)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


@hookimpl
def register_datasets(register) -> None:
    register(FashionMnist)
