"""The CIFAR and Imagenette loaders on tiny files written in the exact real formats."""

from __future__ import annotations

import numpy as np
import pytest
from fakedata import write_cifar10, write_cifar100, write_imagenette
from PIL import Image

from deltabench.data.cifar import Cifar10, Cifar100
from deltabench.data.imagenette import Imagenette
from deltabench.exceptions import DatasetMissingError


def test_cifar10_reads_the_real_pickle_layout(tmp_path):
    written = write_cifar10(tmp_path)
    ds = Cifar10(root=str(tmp_path), verify=False).load(0)
    assert ds.num_classes == 10 and ds.image_shape == (3, 32, 32)
    assert len(ds.train) == 5 * 20 and len(ds.test) == 20
    assert ds.class_names[8] == "ship"
    # Row-major 3072 = 3 channel planes of 32x32: pixel (c, r, k) is data[c*1024 + r*32 + k] / 255.
    raw = written["data_batch_1"][3]
    assert ds.train.x[3, 2, 5, 7].item() == pytest.approx(raw[2 * 1024 + 5 * 32 + 7] / 255)
    assert ds.train.y[:20].tolist() == np.repeat(np.arange(10), 2).tolist()
    assert ds.test.x[-1, 0, 31, 31].item() == pytest.approx(written["test_batch"][-1][1023] / 255)
    assert ds.mean == (0.4914, 0.4822, 0.4465)


def test_cifar_integrity_check_rejects_hand_made_files(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(DatasetMissingError, match="MD5"):
        Cifar10(root=str(tmp_path)).load(0)


def test_cifar100_uses_fine_labels(tmp_path):
    write_cifar100(tmp_path)
    ds = Cifar100(root=str(tmp_path), verify=False).load(0)
    assert ds.num_classes == 100 and len(ds.train) == 100
    assert ds.train.y.tolist() == list(range(100))
    assert ds.class_names[86] == "c86"


@pytest.mark.parametrize("source", [Cifar10, Cifar100, Imagenette])
def test_missing_data_names_the_path_and_the_fix(tmp_path, source):
    with pytest.raises(DatasetMissingError) as info:
        source(root=str(tmp_path / "nowhere")).load(0)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "nowhere") in message and "download: true" in message


def test_imagenette_resizes_and_centre_crops(tmp_path):
    write_imagenette(tmp_path, per_class=2)
    ds = Imagenette(root=str(tmp_path), size=16).load(0)
    assert ds.image_shape == (3, 16, 16) and ds.num_classes == 10
    assert len(ds.train) == 20 and len(ds.test) == 20
    assert ds.train.y.tolist() == np.repeat(np.arange(10), 2).tolist()
    assert ds.class_names[0] == "tench"
    assert float(ds.train.x.min()) >= 0.0 and float(ds.train.x.max()) <= 1.0
    # A uniform-colour image stays that colour after resize and crop (JPEG-exact within a step).
    folder = tmp_path / "imagenette2-160" / "val" / "n01440764"
    Image.fromarray(np.full((30, 50, 3), (200, 40, 90), np.uint8)).save(folder / "z.JPEG", quality=100)
    ds = Imagenette(root=str(tmp_path), size=16).load(0)
    flat = ds.test.x[2]  # sorted names: the new file comes after the two written ones
    assert flat.mean(dim=(1, 2)).tolist() == pytest.approx([200 / 255, 40 / 255, 90 / 255], abs=0.03)


class _Creates:
    """Unpickling this opens (creates) a file: what a tampered CIFAR file could do with any code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("tampered", ["data_batch_3", "batches.meta"])
def test_a_cifar_file_that_would_run_code_is_refused_before_it_runs(tmp_path, tampered):
    import pickle

    write_cifar10(tmp_path)
    marker = tmp_path / "ran"
    with (tmp_path / "cifar-10-batches-py" / tampered).open("wb") as fh:
        pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": [_Creates(marker)]}, fh)
    with pytest.raises(DatasetMissingError, match=f"{tampered} is not a CIFAR file .refusing io.open"):
        Cifar10(root=str(tmp_path), verify=False).load(0)
    assert not marker.exists()
