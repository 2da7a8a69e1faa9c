"""The Fashion-MNIST source on the real files (Debian's dataset-fashion-mnist; .ci/run installs it)
and on slices of them rewritten in the idx format: plain and gzip, subsets, broken files."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch

from deltabench.data import fashion_mnist
from deltabench.data.fashion_mnist import DEBIAN_ROOT, FashionMnist, read_idx
from deltabench.exceptions import DatasetMissingError
from deltabench.registry import default_registry

if not (DEBIAN_ROOT / "train-images-idx3-ubyte.gz").is_file():
    if os.environ.get("CI"):  # .ci/run installs the package: a skip there would hide a broken install
        pytest.fail(f"Fashion-MNIST is not in {DEBIAN_ROOT} although .ci/run installs it", pytrace=False)
    pytest.skip(
        f"Fashion-MNIST is not in {DEBIAN_ROOT}: `apt-get install dataset-fashion-mnist`",
        allow_module_level=True,
    )

TRAIN_SLICE, TEST_SLICE = 900, 300


@pytest.fixture(scope="module")
def full():
    return FashionMnist().load(0)  # default root: the Debian folder; verify: content MD5s


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """``array`` (uint8) as an idx file: magic 0x08 0x<ndim>, big-endian uint32 dims, payload."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def _real(name: str) -> np.ndarray:
    return read_idx(DEBIAN_ROOT / f"{name}.gz", fashion_mnist.FILES[name][2])


@pytest.fixture(scope="module")
def slices(tmp_path_factory) -> dict[str, np.ndarray]:
    """The first 900 training and 300 test images and labels of the real files."""
    return {
        name: _real(name)[: TRAIN_SLICE if name.startswith("train") else TEST_SLICE]
        for name in fashion_mnist.FILES
    }


def _write_slice(folder: Path, slices: dict[str, np.ndarray], compress: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in slices.items():
        _write_idx(folder / name, array, compress)
    return folder


def test_real_files_have_the_official_shape_classes_and_statistics(full):
    assert full.name == "fashion-mnist" and full.num_classes == 10
    assert full.image_shape == (1, 28, 28)
    assert full.train.x.dtype == torch.float32
    assert len(full.train) == 60000 and len(full.test) == 10000
    assert full.train.y.bincount().tolist() == [6000] * 10
    assert full.test.y.bincount().tolist() == [1000] * 10
    assert float(full.train.x.min()) == 0.0 and float(full.train.x.max()) == 1.0
    # Published statistics of the training pixels, and the values models normalise with.
    assert float(full.train.x.double().mean()) == pytest.approx(0.2860, abs=5e-4)
    assert float(full.train.x.double().std()) == pytest.approx(0.3530, abs=5e-4)
    assert full.mean == (0.2860,) and full.std == (0.3530,)
    assert full.class_names[0] == "T-shirt/top" and full.class_names[9] == "Ankle boot"
    assert full.train.y[:5].tolist() == [9, 0, 0, 3, 0]  # the first labels of the official file


def test_registered_under_its_name():
    assert default_registry().get("dataset", "fashion-mnist") is FashionMnist


def test_balanced_subset_is_exact_seeded_and_drawn_from_the_real_images(full):
    first = FashionMnist(train_per_class=30, test_per_class=7).load(5)
    assert first.train.y.bincount().tolist() == [30] * 10
    assert first.test.y.bincount().tolist() == [7] * 10
    again = FashionMnist(train_per_class=30, test_per_class=7).load(5)
    assert torch.equal(first.train.x, again.train.x)
    assert torch.equal(first.test.y, again.test.y)
    other = FashionMnist(train_per_class=30, test_per_class=7).load(6)
    assert not torch.equal(first.train.x, other.train.x)
    # Every subset image (with its label) is one of the full set's, and none is drawn twice.
    rows = {(bytes(x.numpy().tobytes()), int(y)) for x, y in zip(full.train.x, full.train.y)}
    picked = [(bytes(x.numpy().tobytes()), int(y)) for x, y in zip(first.train.x, first.train.y)]
    assert all(row in rows for row in picked) and len(set(picked)) == len(picked)


def test_test_subset_does_not_depend_on_the_train_subset(tmp_path, slices):
    root = _write_slice(tmp_path, slices, compress=False)
    a = FashionMnist(root=str(root), verify=False, train_per_class=20, test_per_class=5).load(1)
    b = FashionMnist(root=str(root), verify=False, train_per_class=40, test_per_class=5).load(1)
    assert torch.equal(a.test.x, b.test.x)


def test_gzip_and_plain_idx_slices_read_the_same(tmp_path, slices, full):
    plain = FashionMnist(root=str(_write_slice(tmp_path / "plain", slices, False)), verify=False).load(0)
    packed = FashionMnist(root=str(_write_slice(tmp_path / "gz", slices, True)), verify=False).load(0)
    assert len(plain.train) == TRAIN_SLICE and len(plain.test) == TEST_SLICE
    assert torch.equal(plain.train.x, packed.train.x)
    assert torch.equal(plain.test.y, packed.test.y)
    assert torch.equal(plain.train.x, full.train.x[:TRAIN_SLICE])
    assert torch.equal(plain.test.y, full.test.y[:TEST_SLICE])
    # Pixel (r, c) of image i is byte 16 + 784 i + 28 r + c of the file, divided by 255.
    raw = (tmp_path / "plain" / "train-images-idx3-ubyte").read_bytes()
    assert plain.train.x[7, 0, 13, 20].item() == pytest.approx(raw[16 + 784 * 7 + 28 * 13 + 20] / 255)


def test_verification_rejects_a_slice(tmp_path, slices):
    _write_slice(tmp_path, slices, compress=True)
    with pytest.raises(DatasetMissingError, match="MD5") as info:
        FashionMnist(root=str(tmp_path)).load(0)
    assert "verify: false" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_file_is_a_one_line_error_naming_it(tmp_path, slices, compress):
    _write_slice(tmp_path, slices, compress)
    name = "train-images-idx3-ubyte" + (".gz" if compress else "")
    path = tmp_path / name
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(DatasetMissingError) as info:
        FashionMnist(root=str(tmp_path), verify=False).load(0)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert ("truncated" in message) if not compress else ("cannot be read" in message)


def test_wrong_magic_and_mismatched_counts_are_refused(tmp_path, slices):
    root = _write_slice(tmp_path, slices, compress=False)
    labels = root / "t10k-labels-idx1-ubyte"
    (root / "t10k-images-idx3-ubyte").write_bytes(labels.read_bytes())
    with pytest.raises(DatasetMissingError, match="magic number 0x00000801, expected 0x00000803"):
        FashionMnist(root=str(root), verify=False).load(0)
    _write_idx(root / "t10k-images-idx3-ubyte", slices["t10k-images-idx3-ubyte"][:-1], compress=False)
    with pytest.raises(DatasetMissingError, match="299 images but"):
        FashionMnist(root=str(root), verify=False).load(0)


def test_missing_files_name_the_folder_and_every_way_to_get_them(tmp_path):
    where = tmp_path / "nowhere"
    with pytest.raises(DatasetMissingError) as info:
        FashionMnist(root=str(where)).load(0)
    message = str(info.value)
    assert "\n" not in message and str(where / "train-images-idx3-ubyte") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download: true" in message and "root:" in message


def test_download_keeps_no_archive_that_fails_the_official_md5(tmp_path, monkeypatch):
    # Debian recompresses the archives: same content, other bytes, so they fail the check on the
    # official archives' MD5, as a corrupt download would (served from disk: no network here).
    monkeypatch.setattr(fashion_mnist, "MIRROR", DEBIAN_ROOT.as_uri() + "/")
    dest = tmp_path / "dl"
    with pytest.raises(DatasetMissingError, match="failed its MD5 check"):
        FashionMnist(root=str(dest), download=True).load(0)
    assert list(dest.iterdir()) == []
    digest = hashlib.md5((DEBIAN_ROOT / "train-images-idx3-ubyte.gz").read_bytes()).hexdigest()
    assert digest != fashion_mnist.FILES["train-images-idx3-ubyte"][0]


def test_subset_sizes_are_validated(tmp_path, slices):
    with pytest.raises(pydantic.ValidationError):
        FashionMnist(train_per_class=6001)
    root = _write_slice(tmp_path, slices, compress=False)
    with pytest.raises(ValueError, match="`train_per_class`: asked for 500 images per class, class 0 has 98"):
        FashionMnist(root=str(root), verify=False, train_per_class=500).load(0)
