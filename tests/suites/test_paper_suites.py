"""The paper suites validate, and run end to end on tiny fake data in the real formats (CPU, a few epochs)."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np
import pytest
import yaml
from fakedata import write_cifar10, write_cifar100, write_imagenette
from PIL import Image

from deltabench.config import load_suite, suite_from_dict
from deltabench.data.imagenette import WNID_NAMES
from deltabench.registry import default_registry
from deltabench.runner import run_suite

SUITES = Path(__file__).resolve().parents[2] / "suites"
PAPER = ["paper-badnet-cifar10", "paper-frequency-cifar100", "paper-witchesbrew-imagenette"]


@pytest.mark.parametrize("name", PAPER)
def test_paper_suite_validates(name):
    parsed = load_suite(SUITES / f"{name}.yaml", default_registry())
    assert parsed.models[0].name == "resnet18"
    recipe = parsed.suite.training
    assert (recipe.epochs, recipe.batch_size, recipe.lr, recipe.weight_decay) == (40, 128, 0.1, 5e-4)
    assert {d.name for d in parsed.detectors} >= {"oracle", "spectral"}
    assert {u.name for u in parsed.unlearners} >= {"none", "eu"}


def test_digits_attack_suite_validates():
    parsed = load_suite(SUITES / "attacks-digits.yaml", default_registry())
    assert [a.name for a in parsed.attacks] == ["badnet", "frequency", "witches-brew"]


RED = (255, 0, 0)


def _shrink(data: dict, name: str, root: Path, out: Path, epochs: int) -> dict:
    """The suite rewritten for a CPU dry run: tiny files, small CNN, few epochs, cheap attack settings."""
    data = copy.deepcopy(data)
    dataset = data["datasets"][0]
    dataset["params"] = {**dataset["params"], "root": str(root), "download": False}
    if dataset["name"].startswith("cifar"):
        dataset["params"]["verify"] = False
    else:
        dataset["params"]["size"] = 24
    attack = data["attacks"][0]["params"]
    if name == "paper-frequency-cifar100":
        attack.update(steps=2, surrogate_epochs=1)
    if name == "paper-witchesbrew-imagenette":
        # the target is the red test image of class 0 (see _write_data), the intended class the red one
        attack.update(steps=2, restarts=1, surrogate_epochs=1, target_index=0, intended_class=1)
    data.update(
        models=["small-cnn"],
        training={**data["training"], "epochs": epochs},
        output=str(out / "leaderboard"),
        cache=str(out / "cache"),
        executor={"name": "local"},
    )
    return data


def _write_data(name: str, root: Path) -> None:
    """Noise images, except one red class that the attack's outcome hinges on, so that a victim of a
    few epochs on ~100 images carries the attack and every detector and unlearner cell runs.

    BadNet / frequency: the source class is red and every source training image is a poison (the
    budget exceeds the class), so the victim sends red (triggered) source test images to the target;
    on CIFAR-100 (two images a class) the target class is red too, to give the victim four.
    Witches' Brew: the intended class is red and so is the target test image (class 0), so the
    victim gives the target the intended class."""
    if name == "paper-badnet-cifar10":
        write_cifar10(root, per_class=3, colours={8: RED})
    elif name == "paper-frequency-cifar100":
        write_cifar100(root, per_class=2, colours={86: RED, 68: RED})
    else:
        write_imagenette(root, per_class=3, colours={1: RED})
        folder = root / "imagenette2-160" / "val" / sorted(WNID_NAMES)[0]
        first = sorted(folder.iterdir())[0]
        Image.fromarray(np.full((30, 30, 3), RED, np.uint8)).save(first, quality=95)


EPOCHS = {"paper-badnet-cifar10": 6, "paper-frequency-cifar100": 12, "paper-witchesbrew-imagenette": 6}


@pytest.mark.parametrize("name", PAPER)
def test_paper_suite_dry_run_on_tiny_real_format_data(tmp_path, name):
    """Every cell of the suite runs (status ok): the attack takes, each detector flags and each
    unlearner returns a model, through the real file formats; the oracle flags exactly the poisons."""
    root = tmp_path / "data"
    _write_data(name, root)
    raw = yaml.safe_load((SUITES / f"{name}.yaml").read_text())
    parsed = suite_from_dict(_shrink(raw, name, root, tmp_path, EPOCHS[name]), default_registry(), name)
    summary = run_suite(parsed)
    rows = list(csv.DictReader(summary.output.open()))
    expected = len(parsed.detectors) * len(parsed.unlearners) * len(parsed.suite.seeds)
    assert len(rows) == expected
    assert {(row["detector"], row["unlearner"]) for row in rows} == {
        (d.label, u.label) for d in parsed.detectors for u in parsed.unlearners
    }
    for row in rows:
        assert row["attack"] == raw["attacks"][0]["name"]
        assert row["status"] == "ok", row
        assert float(row["victim_psr"]) > 0
        assert 0 <= float(row["unlearned_psr"]) <= 1 and 0 <= float(row["unlearned_clean_acc"]) <= 1
        assert 0 <= int(row["flagged"]) <= int(row["n_train"])
        if row["detector"] == "oracle":
            assert row["flagged"] == row["true_poisons_flagged"] == row["n_poisons"] != "0"
        if row["unlearner"] == "none":  # the victim itself
            assert float(row["unlearned_psr"]) == pytest.approx(float(row["victim_psr"]))
