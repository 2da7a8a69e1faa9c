"""The attack's floor: the clean model's PSR on the triggered test set, in every victim's row and
marked on the leaderboard where it makes success (PSR < 5 %) unreachable."""

from __future__ import annotations

import math

import pandas as pd
import torch

from deltabench.config import suite_from_dict
from deltabench.leaderboard import FLOOR_MARK, floor_settings, render_markdown, summary_tables
from deltabench.registry import default_registry
from deltabench.runner import plan_jobs, run_suite
from deltabench.stages import Stages, torch_threads


def _suite(tmp_path, clean_model: bool = True) -> dict:
    # an underfit model (2 epochs) sends some triggered 8s to the target 1 without any poison (~10 %)
    return {
        "name": "floor", "seeds": [0], "device": "cpu", "clean_model": clean_model,
        "output": str(tmp_path / "out"), "cache": str(tmp_path / "cache"),
        "datasets": ["digits"], "models": [{"name": "small-cnn", "params": {"width": 8, "hidden": 32}}],
        "training": {"epochs": 2, "translate": 0, "hflip": False},
        "attacks": [{"name": "badnet", "params": {"source": 8, "target": 1, "budget": 0.5}}],
        "detectors": ["oracle"], "unlearners": ["none"],
    }  # fmt: skip


def test_the_floor_column_is_the_clean_models_psr_computed_independently(tmp_path):
    registry = default_registry()
    parsed = suite_from_dict(_suite(tmp_path), registry)
    row = pd.read_csv(run_suite(parsed, registry=registry).output).iloc[0]
    stages = Stages(plan_jobs(parsed)[0], registry)  # the run's stages, loaded from its cache
    model = stages.trainer(torch.Generator()).new_model()
    model.load_state_dict(stages.clean_model().state)
    triggered = stages.poisoned().data.triggered_test
    with torch.no_grad(), torch_threads(1):  # the suite's thread count, so the same float sums
        predicted = model.eval()(triggered.x).argmax(1)
    expected = float((predicted == int(row["target_class"])).float().mean())
    assert 0 < expected < 1  # the check below tells a floor from 0 and from the victim's 100 %
    assert row["clean_model_psr"] == expected
    assert row["victim_psr"] != expected

    off = suite_from_dict(_suite(tmp_path / "off", clean_model=False), registry)
    assert math.isnan(pd.read_csv(run_suite(off, registry=registry).output).iloc[0]["clean_model_psr"])


def _victims(floors: dict[str, list[float]]) -> pd.DataFrame:
    rows = [
        {"dataset": "digits", "model": "small-cnn", "attack": attack, "seed": seed, "status": "ok",
         "detector": "oracle", "unlearner": "eu", "n_poisons": 60, "clean_model_acc": 0.98,
         "clean_model_psr": floor, "victim_clean_acc": 0.97, "victim_psr": 1.0, "unlearned_psr": floor,
         "unlearned_clean_acc": 0.97, "success": floor < 0.05, "flagged": 60, "true_poisons_flagged": 60,
         "precision": 1.0, "recall": 1.0, "detect_s": 0.1}
        for attack, values in floors.items()
        for seed, floor in enumerate(values)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_the_leaderboard_marks_a_setting_whose_mean_floor_is_at_least_5_percent():
    # mean floors: 5.0 % (marked: success needs PSR < 5 %) and 4.5 % (not), though one seed of it is 8 %
    frame = _victims({"weak-trigger": [0.04, 0.06], "badnet": [0.01, 0.08]})
    assert floor_settings(frame)["attack"].tolist() == ["weak-trigger"]
    victims = summary_tables(frame)["victims"].set_index("attack")["clean model PSR % (floor)"]
    assert victims["weak-trigger"].endswith(FLOOR_MARK) and victims["weak-trigger"].startswith("5.0")
    assert FLOOR_MARK not in victims["badnet"] and victims["badnet"].startswith("4.5")
    text = render_markdown(frame)
    assert "No detector can succeed in 1 setting(s)" in text
    assert "digits / small-cnn / weak-trigger (5.0 %)" in text and "/ badnet (" not in text


def test_no_mark_below_5_percent_nor_for_a_csv_without_the_column():
    frame = _victims({"badnet": [0.0, 0.02]})
    assert floor_settings(frame).empty
    assert "No detector can succeed" not in render_markdown(frame)
    old = frame.drop(columns="clean_model_psr")  # a CSV written before the floor existed
    assert floor_settings(old).empty
    assert summary_tables(old)["victims"].loc[0, "clean model PSR % (floor)"] == "-"


def test_a_floor_under_a_victim_whose_attack_did_not_take_marks_nothing():
    """One target of three is already called the intended class by its clean model, but there the
    attack did not take: that victim's cells are skipped, so every judged victim is reachable."""
    frame = _victims({"witches-brew": [0.0, 1.0, 0.0]})
    skipped = frame["seed"] == 1
    frame.loc[skipped, "status"] = "skipped"
    frame["error"] = ""
    frame.loc[skipped, "unlearned_psr"] = float("nan")
    assert floor_settings(frame).empty
    assert "No detector can succeed" not in render_markdown(frame)
    victims = summary_tables(frame)["victims"].set_index("attack")["clean model PSR % (floor)"]
    assert victims["witches-brew"].startswith("33.3") and FLOOR_MARK not in victims["witches-brew"]
    frame.loc[skipped, "status"] = "ok"  # had it taken, no detector could succeed on it
    assert floor_settings(frame)["attack"].tolist() == ["witches-brew"]
