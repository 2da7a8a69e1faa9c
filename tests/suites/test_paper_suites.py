"""The paper suites carry the paper's parameters and run every cell end to end on tiny real-format
files (CPU, small CNN, 8 epochs)."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
import yaml
from learnable_fakes import DECOY_CLASS, write_cifar10, write_cifar100, write_imagenette

from deltabench.config import load_suite, suite_from_dict
from deltabench.registry import default_registry
from deltabench.runner import run_suite
from deltabench.unlearners.ssd import PAPER_GRID

SUITES = Path(__file__).resolve().parents[2] / "suites"
PAPER = ["paper-badnet-cifar10", "paper-frequency-cifar100", "paper-witchesbrew-imagenette"]


# The paper code's Δ-Influence rule per setting: th, n_tolerate, and how the T labels are drawn.
RULES = {
    "paper-badnet-cifar10": (0.0, 2, "with-replacement"),
    "paper-frequency-cifar100": (-40.0, 0, "without-replacement"),
    "paper-witchesbrew-imagenette": (0.0, 1, "with-replacement"),
}
DETECTORS = {
    "oracle", "delta-influence", "influence-threshold", "trak-threshold", "spectral",
    "activation-clustering", "frequency-analyzer",
}  # fmt: skip
UNLEARNERS = {"none", "eu", "cf", "scrub", "bad-teacher", "ssd"}


@pytest.mark.parametrize("name", PAPER)
def test_paper_suite_validates(name):
    parsed = load_suite(SUITES / f"{name}.yaml", default_registry())
    assert parsed.models[0].name == "resnet18"
    recipe = parsed.suite.training
    assert (recipe.epochs, recipe.batch_size, recipe.lr, recipe.weight_decay) == (40, 128, 0.1, 5e-4)
    assert {d.name for d in parsed.detectors} == DETECTORS
    assert {u.name for u in parsed.unlearners} == UNLEARNERS


@pytest.mark.parametrize("name", PAPER)
def test_paper_suite_uses_the_paper_s_parameters(name):
    parsed = load_suite(SUITES / f"{name}.yaml", default_registry())
    detectors = {d.name: d.params for d in parsed.detectors}
    delta = detectors["delta-influence"]
    assert (delta["th"], delta["n_tolerate"], delta["aux_labels"]) == RULES[name]
    assert (delta["T"], delta["variant"], delta["distinct"]) == (50, "MM", False)
    assert (delta["transforms"], delta["damping"]) == ("paper", "paper")
    assert (detectors["influence-threshold"]["th"], detectors["influence-threshold"]["damping"]) == (
        10.0,
        "paper",
    )
    assert detectors["spectral"]["form"] == "paper-code"
    unlearners = [u for u in parsed.unlearners if u.name != "ssd"]
    scrub = next(u.params for u in unlearners if u.name == "scrub")
    assert (scrub["max_loss"], scrub["max_steps"], scrub["batch_size"], scrub["steps"]) == (
        "ce+kl",
        "pass",
        512,
        40,
    )
    ssd = sorted((u.params["alpha"], u.params["lam"]) for u in parsed.unlearners if u.name == "ssd")
    assert ssd == sorted(PAPER_GRID)
    attack = parsed.attacks[0].params
    if attack.get("application") is not None:
        assert attack["application"] == "paper"
    if parsed.attacks[0].name == "witches-brew":
        assert (attack["lr_rule"], attack["batch_size"], attack["steps"], attack["restarts"]) == (
            "paper",
            512,
            250,
            2,
        )


def test_digits_attack_suite_validates():
    parsed = load_suite(SUITES / "attacks-digits.yaml", default_registry())
    assert [a.name for a in parsed.attacks] == ["badnet", "frequency", "witches-brew"]


def _shrink(data: dict, name: str, root: Path, out: Path, decoy: int) -> dict:
    """The suite on tiny learnable files with the small CNN, a few epochs, short attack searches and
    short SCRUB / bad-teacher runs; its detectors and unlearners and their other parameters are kept."""
    data = copy.deepcopy(data)
    dataset = data["datasets"][0]
    dataset["params"] = {**dataset["params"], "root": str(root), "download": False}
    if dataset["name"].startswith("cifar"):
        dataset["params"]["verify"] = False
    else:
        dataset["params"]["size"] = 24
    attack = data["attacks"][0]["params"]
    if name == "paper-frequency-cifar100":
        # a 3x stronger trigger: at eps 0.1 the attack took under 2 torch/BLAS threads but not under 1
        attack.update(steps=2, eps=0.3)
    if name == "paper-witchesbrew-imagenette":
        # a fixed target that the victim gives the intended class (the decoy), so the run has an
        # affected point on any machine; the paper draws target and intended class from the seed
        attack.update(steps=2, restarts=1, target_index=decoy, intended_class=DECOY_CLASS)
    for unlearner in data["unlearners"]:  # SCRUB and bad teacher: 4 of their 40 steps
        if isinstance(unlearner, dict) and unlearner["name"] in ("scrub", "bad-teacher"):
            unlearner["params"] = {**unlearner["params"], "steps": 4}
    # batch 32 and 12 epochs for CIFAR-100 (10 images a class) and Imagenette (8 a class): the victim
    # then fits 94-100 % of them under 1 and 2 threads alike. With fewer (CIFAR-100: 3 a class and
    # 8 epochs fitted 20-50 %, 6 a class fitted the poisons with a logit margin of 0.1-2 against
    # 3.8-8.0 now over 12 draws; Imagenette: 4 a class and 8 epochs fitted 60-90 %, the decoy's
    # intended-class logit margin 0.25-1.0 against 2.2-6.5 now) the attack did not take on some
    # machines
    epochs = 8 if name == "paper-badnet-cifar10" else 12
    data.update(
        models=["small-cnn"],
        training={**data["training"], "epochs": epochs, "batch_size": 32},
        output=str(out / "leaderboard"),
        cache=str(out / "cache"),
        executor={"name": "local"},
    )
    return data


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER)
def test_paper_suite_runs_every_cell_on_tiny_real_format_data(tmp_path, name):
    root = tmp_path / "data"
    decoy = 0
    if name == "paper-badnet-cifar10":
        write_cifar10(root)
    elif name == "paper-frequency-cifar100":
        write_cifar100(root, per_class=10)  # 6 a class fitted the poisons with margins 0.1-2
    else:
        decoy = write_imagenette(root, per_class=8)  # 4 a class and 8 epochs fitted 60-90 %
    raw = yaml.safe_load((SUITES / f"{name}.yaml").read_text())
    parsed = suite_from_dict(_shrink(raw, name, root, tmp_path, decoy), default_registry(), name)
    summary = run_suite(parsed)
    rows = list(csv.DictReader(summary.output.open()))
    assert len(rows) == len(parsed.detectors) * len(parsed.unlearners) * len(parsed.suite.seeds)
    assert {r["detector"] for r in rows} == {d.label for d in parsed.detectors}
    assert {r["unlearner"] for r in rows} == {u.label for u in parsed.unlearners}
    for row in rows:
        assert row["attack"] == raw["attacks"][0]["name"]
        assert row["status"] == "ok", (row["detector"], row["unlearner"], row["error"])
        assert float(row["victim_psr"]) > 0
