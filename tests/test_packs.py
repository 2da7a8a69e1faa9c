"""Victim packs, manifests, verify, and the several results CSVs of one folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tiny_suite import tiny_suite
from typer.testing import CliRunner

from deltabench.artifacts import Dataset, ImageSet, PoisonedData
from deltabench.cache import ArtifactStore
from deltabench.cli import app
from deltabench.compare import compare_components, compare_runs
from deltabench.config import load_suite, suite_from_dict
from deltabench.exceptions import PackError
from deltabench.file_digest import sha256_file
from deltabench.leaderboard import load_results
from deltabench.manifest import manifest_path
from deltabench.packs import VictimPack, build_pack, local_keys
from deltabench.poison_delta import decode_poisoned, encode_poisoned
from deltabench.registry import default_registry
from deltabench.rows import results_files
from deltabench.runner import plan_jobs, run_suite
from deltabench.stages import Stages
from deltabench.training import Trainer


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict:
    """One tiny run (with a clean model), its suite file, and a pack of its victims."""
    tmp = tmp_path_factory.mktemp("published")
    registry = default_registry()
    suite_file = tmp / "tiny.yaml"
    suite_file.write_text(yaml.safe_dump(tiny_suite(tmp, clean_model=True, unlearners=["none"])))
    parsed = load_suite(suite_file, registry)
    run_suite(parsed, registry=registry)
    build_pack(parsed, plan_jobs(parsed), registry, tmp / "pack")
    return {"tmp": tmp, "parsed": parsed, "suite_file": suite_file, "out": tmp / "out", "pack": tmp / "pack"}


def _dataset(rng: np.random.Generator) -> Dataset:
    def images(n: int) -> ImageSet:
        return ImageSet(torch.from_numpy(rng.random((n, 3, 6, 6), dtype=np.float32)), torch.arange(n) % 4)

    return Dataset("toy", images(40), images(20), 4, (0.5,) * 3, (0.25,) * 3)


def test_poisoned_data_is_rebuilt_bit_for_bit_from_its_deltas():
    rng = np.random.default_rng(0)
    clean = _dataset(rng)
    x, y = clean.train.x.clone(), clean.train.y.clone()
    x[[3, 7], :, -2:, -2:] = 1.0  # a sparse trigger
    x[11] += 0.01 * torch.from_numpy(
        rng.standard_normal((3, 6, 6)).astype(np.float32)
    )  # a dense perturbation
    y[[3, 7, 20]] = 2  # relabels, one without an image change
    triggered = clean.test.x[[1, 4, 9]].clone()
    triggered[:, :, :2, :2] = 0.0
    data = PoisonedData(
        ImageSet(x, y), [3, 7, 11, 20], ImageSet(triggered, torch.full((3,), 2)), 2, 1, {"k": 1}
    )
    packed = encode_poisoned(data, clean)
    assert packed["train_rows"].tolist() == [3, 7, 11, 20]
    assert packed["test_base"].tolist() == [1, 4, 9]
    assert "positions" in packed["test_images"]  # the trigger is stored, not the images
    back = decode_poisoned(packed, clean)
    assert torch.equal(back.train.x, x) and torch.equal(back.train.y, y)
    assert torch.equal(back.triggered_test.x, triggered) and torch.equal(
        back.triggered_test.y, data.triggered_test.y
    )
    assert back.poison_indices.tolist() == [3, 7, 11, 20] and (back.target_class, back.source_class) == (2, 1)


def test_a_pack_round_trips_the_cached_stages(published):
    registry = default_registry()
    job = plan_jobs(published["parsed"])[0]
    stages = Stages(job, registry)
    pack = VictimPack(published["pack"])
    assert pack.verify_all() == 3  # attack, victim, clean
    entry = pack.entry(stages)
    cache, keys = ArtifactStore(job.cache_dir), local_keys(stages)
    victim, cached = pack.load("victim", entry["victim"]), cache.load("victim", keys["victim"])
    assert all(torch.equal(victim.state[k], cached.state[k]) for k in cached.state)
    assert np.array_equal(victim.affected, cached.affected)
    poisoned = decode_poisoned(pack.load("attack", entry["attack"]), stages.dataset)
    assert torch.equal(poisoned.train.x, cache.load("attack", keys["attack"]).data.train.x)
    cache_bytes = cache.path("attack", keys["attack"]).stat().st_size
    assert (published["pack"] / "attack" / f"{entry['attack']}.safetensors").stat().st_size < cache_bytes / 10


def test_a_tampered_pack_file_is_a_one_line_error(published, tmp_path):
    pack = tmp_path / "pack"
    shutil.copytree(published["pack"], pack)
    victim = next((pack / "victim").glob("*.safetensors"))
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 1
    victim.write_bytes(bytes(raw))
    with pytest.raises(
        PackError, match=r"victim/.*SHA-256 differs from pack.json.*copy the pack again"
    ) as exc:
        VictimPack(pack).verify_all()
    assert "\n" not in str(exc.value)
    suite_file = tmp_path / "suite.yaml"  # the published suite, writing elsewhere
    suite_file.write_text(yaml.safe_dump(tiny_suite(published["tmp"], output=str(tmp_path / "o"))))
    result = CliRunner().invoke(app, ["run", str(suite_file), "--victims", str(pack)], catch_exceptions=False)
    assert result.exit_code == 2 and "SHA-256 differs" in result.output
    assert not (tmp_path / "o" / "manifest.json").exists()  # no run, no manifest


def test_a_run_on_a_pack_trains_nothing_and_pairs_with_the_published_rows(published, tmp_path, monkeypatch):
    registry = default_registry()

    def no_training(*args, **kwargs):
        raise AssertionError("a model was trained during a run on a victim pack")

    monkeypatch.setattr(Trainer, "fit_new", no_training)  # victim and clean model both go through it
    newdet = {"name": "spectral", "label": "newdet", "params": {"expected_poison_rate": 0.3}}
    suite = tiny_suite(
        published["tmp"],
        clean_model=True,
        unlearners=["none"],
        detectors=[newdet],
        output=str(tmp_path / "author"),
    )
    summary = run_suite(suite_from_dict(suite, registry), registry=registry, victims=published["pack"])
    mine = pd.read_csv(summary.output)
    assert summary.failed == 0 and set(mine["status"]) == {"ok"}
    base = pd.read_csv(published["out"] / "results.csv")
    cols = ["victim_key", "victim_clean_acc", "victim_psr", "clean_model_acc", "n_poisons", "victim_s"]
    assert (mine[cols].drop_duplicates().to_numpy() == base[cols].drop_duplicates().to_numpy()).all()

    # the author's oracle rows are the published cells: same setting, same cell id, same numbers
    oracle = compare_runs(base[base["detector"] == "oracle"], mine[mine["detector"] == "oracle"])
    assert oracle.unpaired == [] and [g.victims_differ for g in oracle.groups] == [0]
    assert set(mine.loc[mine["detector"] == "oracle", "cell_id"]) == set(
        base.loc[base["detector"] == "oracle", "cell_id"]
    )

    # a damaged installed victim is installed again from the pack, not trained again
    (installed,) = Path(published["tmp"], "cache").glob("pack-*/victim/*.safetensors")
    installed.write_bytes(installed.read_bytes()[:-8])
    suite["output"] = str(tmp_path / "again")
    again = run_suite(suite_from_dict(suite, registry), registry=registry, victims=published["pack"])
    assert (
        again.failed == 0 and pd.read_csv(again.output)["victim_psr"].tolist() == mine["victim_psr"].tolist()
    )

    # submitted into the published folder, the new detector pairs with a published one on the same victims
    folder = tmp_path / "site"
    shutil.copytree(published["out"], folder)
    shutil.copy(summary.output, folder / "results-newdet.csv")
    both = load_results(folder)
    assert set(both["detector"]) == {"oracle", "spectral", "newdet"}
    pairing = compare_components(both, "detector", "spectral", "newdet")
    assert [(g.pairs, g.victims_differ) for g in pairing.groups] == [(1, 0)] and pairing.unpaired == []


def test_a_pack_misses_a_setting_it_does_not_hold(published, tmp_path):
    registry = default_registry()
    suite = tiny_suite(published["tmp"], seeds=[5], output=str(tmp_path / "o"))
    with pytest.raises(
        PackError, match=r"no victim for digits/small-cnn/badnet/seed 5 .*run the suite without --victims"
    ):
        run_suite(suite_from_dict(suite, registry), registry=registry, victims=published["pack"])


def test_the_manifest_records_the_suite_code_machine_and_csv_hash(published):
    csv = published["out"] / "results.csv"
    manifest = json.loads(manifest_path(csv).read_text())
    assert manifest_path(csv).name == "manifest.json"
    assert manifest["csv_sha256"] == sha256_file(csv)
    assert manifest["suite_sha256"] == sha256_file(published["suite_file"])
    run = manifest["runs"][-1]
    assert (
        run["completed"] and run["code_revision"] and torch.__version__.startswith(run["packages"]["torch"])
    )
    assert run["machine"]["cpu"] and run["started"] <= run["ended"]
    registry = default_registry()
    again = suite_from_dict(manifest["suite"], registry)  # the resolved suite gives the same cells
    cells = {c for job in plan_jobs(again) for c, _, _ in job.cells()}
    assert cells == set(pd.read_csv(csv)["cell_id"])


def test_a_resumed_run_extends_the_manifest_and_keeps_the_hash_true(published, tmp_path):
    registry = default_registry()
    out = tmp_path / "out"
    shutil.copytree(published["out"], out)
    suite = tiny_suite(published["tmp"], clean_model=True, unlearners=["none", "eu"], output=str(out))
    run_suite(suite_from_dict(suite, registry), registry=registry)  # resumes: adds the eu cells
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["runs"]) == 2 and manifest["csv_sha256"] == sha256_file(out / "results.csv")
    assert {u["name"] for u in manifest["suite"]["unlearners"]} == {"none", "eu"}


def test_verify_agrees_on_a_run_and_catches_an_altered_value(published, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", str(published["out"]), "--cells", "2"], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    assert "2 of 2 cells agree" in ok.output and "within 1e-06" in ok.output
    folder = tmp_path / "altered"
    shutil.copytree(published["out"], folder)
    rows = pd.read_csv(folder / "results.csv")
    rows["unlearned_psr"] = rows["unlearned_psr"] + 0.25
    rows.to_csv(folder / "results.csv", index=False)
    bad = runner.invoke(app, ["verify", str(folder), "--cells", "1", "--seed", "3"], catch_exceptions=False)
    assert (
        bad.exit_code == 1 and "DISAGREES: unlearned_psr" in bad.output and "0 of 1 cells agree" in bad.output
    )


def test_every_results_csv_of_a_folder_is_read_together(published, tmp_path):
    folder = tmp_path / "board"
    shutil.copytree(published["out"], folder)
    base = pd.read_csv(folder / "results.csv")
    (folder / "submissions").mkdir()
    one = base[base["detector"] == "spectral"]
    for name, label in (("results-alice.csv", "alice"), ("submissions/bob.csv", "bob")):
        one.assign(detector=label, cell_id=one["cell_id"] + label).to_csv(folder / name, index=False)
    assert [f.relative_to(folder).as_posix() for f in results_files(folder)] == [
        "results.csv",
        "results-alice.csv",
        "submissions/bob.csv",
    ]
    frame = load_results(folder)
    assert len(frame) == len(base) + 2 and set(frame["source"]) == {
        "results.csv",
        "results-alice.csv",
        "submissions/bob.csv",
    }
    board = CliRunner().invoke(app, ["leaderboard", str(folder)], catch_exceptions=False)
    assert board.exit_code == 0 and "alice" in board.output and "bob" in board.output
    within = CliRunner().invoke(
        app, ["compare", str(folder), "--detector", "bob", "--against", "alice"], catch_exceptions=False
    )
    assert within.exit_code == 0 and "Not paired" not in within.output
