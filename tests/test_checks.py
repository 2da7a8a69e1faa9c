"""Checks made before a run: dataset metadata agrees with the loaded data, and what validate says
about dataset files is what the run would say."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fakedata import write_cifar10, write_cifar100, write_imagenette

from deltabench.checks import check_suite, load_checked_suite
from deltabench.components import KINDS
from deltabench.config import suite_from_dict
from deltabench.data.cifar import Cifar10, Cifar100
from deltabench.data.digits import Digits
from deltabench.data.imagenette import Imagenette
from deltabench.exceptions import DatasetMissingError, SuiteError
from deltabench.registry import default_registry

SUITES = Path(__file__).resolve().parents[1] / "suites"


def _agrees(source) -> None:
    info, data = source.info(), source.load(0)
    assert info.missing is None
    assert (info.name, info.num_classes, info.image_shape) == (data.name, data.num_classes, data.image_shape)
    assert info.test_size in (None, len(data.test))


@pytest.mark.parametrize("test_fraction", [0.3, 0.25, 0.5])
def test_digits_metadata_is_static_and_matches_the_data(test_fraction):
    source = Digits(test_fraction=test_fraction)
    assert source.info().test_size is not None
    _agrees(source)


def test_file_datasets_metadata_matches_real_format_files(tmp_path):
    write_cifar10(tmp_path, per_class=1)
    write_cifar100(tmp_path, per_class=1)
    write_imagenette(tmp_path, per_class=1, classes=4)  # a partial copy: the folders decide the count
    _agrees(Cifar10(root=str(tmp_path), verify=False))
    _agrees(Cifar100(root=str(tmp_path), verify=False))
    _agrees(Imagenette(root=str(tmp_path), size=12))
    assert Imagenette(root=str(tmp_path)).info().num_classes == 4


@pytest.mark.parametrize("source", [Cifar10, Cifar100, Imagenette])
def test_missing_files_give_the_loaders_own_message_unless_downloaded(tmp_path, source):
    root = str(tmp_path / "nowhere")
    with pytest.raises(DatasetMissingError) as err:
        source(root=root).load(0)
    assert source(root=root).info().missing == str(err.value)
    assert source(root=root, download=True).info().missing is None  # the run fetches them
    assert not (tmp_path / "nowhere").exists()  # info() creates nothing


@pytest.mark.parametrize(
    "name", ["paper-badnet-cifar10", "paper-frequency-cifar100", "paper-witchesbrew-imagenette"]
)
def test_paper_suites_check_their_data_before_running(tmp_path, name):
    """As shipped (download: true) they pass; with download off the files must be there."""
    registry = default_registry()
    load_checked_suite(SUITES / f"{name}.yaml", registry)
    raw = yaml.safe_load((SUITES / f"{name}.yaml").read_text())
    raw["datasets"][0]["params"].update(root=str(tmp_path), download=False)
    raw.update(output=str(tmp_path / "out"), cache=str(tmp_path / "cache"))
    with pytest.raises(SuiteError) as err:
        check_suite(suite_from_dict(raw, registry, "s.yaml"), registry)
    assert len(err.value.problems) == 1
    assert (
        err.value.problems[0].startswith("s.yaml: datasets[0].params: ")
        and "not found" in err.value.problems[0]
    )
    {"cifar10": write_cifar10, "cifar100": write_cifar100, "imagenette": write_imagenette}[
        raw["datasets"][0]["name"]
    ](tmp_path)
    check_suite(suite_from_dict(raw, registry, "s.yaml"), registry)  # files there: nothing to say


def test_class_indices_are_checked_against_each_dataset(tmp_path):
    """The same attack suits CIFAR-100 and not digits: only the digits combination is reported."""
    write_cifar100(tmp_path)
    suite = {
        "name": "two",
        "datasets": ["digits", {"name": "cifar100", "params": {"root": str(tmp_path), "verify": False}}],
        "models": ["small-cnn"],
        "training": {"translate": 1},
        "attacks": [{"name": "frequency", "params": {"source": 86, "target": 68}}],
        "detectors": ["spectral"],
        "unlearners": ["eu"],
        "output": str(tmp_path / "out"),
    }
    registry = default_registry()
    with pytest.raises(SuiteError) as err:
        check_suite(suite_from_dict(suite, registry, "s.yaml"), registry)
    assert err.value.problems == [
        "s.yaml: attacks[0].params.source: class 86 is not in digits (10 classes, 0-9); pick a class below 10",
        "s.yaml: attacks[0].params.target: class 68 is not in digits (10 classes, 0-9); pick a class below 10",
    ]


def test_a_shared_label_is_found_in_every_component_list_of_the_schema(tmp_path):
    """Which lists are checked comes from the one table of kinds, so a new kind is checked too."""
    two = {
        "datasets": ["digits", "fashion-mnist"],
        "models": ["small-cnn", "resnet18"],
        "attacks": ["badnet", "frequency"],
        "detectors": ["spectral", "activation-clustering"],
        "unlearners": ["eu", "cf"],
    }
    assert set(two) == {kind.suite_key for kind in KINDS.values() if kind.many}
    for key in two:
        lists = {k: v[:1] for k, v in two.items()} | {
            key: [v if i == 0 else {"name": v, "label": two[key][0]} for i, v in enumerate(two[key])]
        }
        suite = {"name": "s", "references": False, "output": str(tmp_path / "out"), **lists}
        with pytest.raises(SuiteError) as err:
            suite_from_dict(suite, default_registry(), "s.yaml")
        problems = err.value.problems
        assert [p.split(": ")[1] for p in problems] == [f"{key}[1].label"], (key, problems)
