"""The artifact cache: typed stage results round-trip, and a planted pickle or a damaged file is
refused and recomputed, never executed or used."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from deltabench.artifacts import Detection, ImageSet, PoisonedData
from deltabench.cache import ArtifactStore, DamagedArtifact
from deltabench.codec import encode
from deltabench.measure import StageCost
from deltabench.stages import DetectionStage, PoisonedStage, VictimStage


def poisoned_stage() -> PoisonedStage:
    """A poisoned stage whose ``info`` holds what the built-in attacks put there."""
    g = torch.Generator().manual_seed(0)
    train = ImageSet(torch.rand(20, 1, 8, 8, generator=g), torch.arange(20) % 10)
    info = {
        "poison_count": 4,  # every attack
        "trigger": torch.rand(1, 8, 8, generator=g),  # frequency
        "surrogate_clean_acc": 0.9712,  # frequency
        "target_index": np.int64(17),  # witches' brew
        "restart_losses": [0.31, 0.2875],
        "surrogate_target_pred": 5,
        "note": None,
    }
    data = PoisonedData(train, np.array([3, 1, 7, 9]), train.subset([0, 2]), 5, 8, info)
    return PoisonedStage("k-attack", data, StageCost(1.5, 300.25))


def detection_stage() -> DetectionStage:
    """A detection whose ``scores`` holds the dtypes the built-in detectors store."""
    rng = np.random.default_rng(0)
    scores = {
        "delta_matrix": rng.normal(size=(5, 20)).astype(np.float32),
        "old": rng.normal(size=20),  # float64
        "collapse_count": rng.integers(0, 5, 20).astype(np.int32),
        "aux_labels": rng.integers(0, 10, 5),  # int64
        "explained_by_class": rng.random((1, 20)) > 0.5,  # bool
        "aux_transforms": np.array(["blur", "none", "rotate", "hflip", "blur"]),  # unicode strings
    }
    return DetectionStage("k-detect", Detection(np.array([4, 2, 2]), scores), StageCost(0.5, 10.0))


def assert_same(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif hasattr(a, "__dataclass_fields__"):
        for name in a.__dataclass_fields__:
            assert_same(getattr(a, name), getattr(b, name))
    else:
        assert a == b


def test_stage_results_round_trip_with_attack_info_and_detector_scores(tmp_path):
    store = ArtifactStore(tmp_path)
    victim = VictimStage(
        "k-victim", {"head.weight": torch.randn(10, 4), "bn.num_batches_tracked": torch.tensor(7)},
        0.97, 1.0, np.array([3]), StageCost(2.0, 1.0),
    )  # fmt: skip
    for stage, value in [("attack", poisoned_stage()), ("detect", detection_stage()), ("victim", victim)]:
        store.save(stage, value.key, value)
        assert_same(store.load(stage, value.key), value)


def test_what_the_cache_cannot_store_is_named():
    with pytest.raises(TypeError, match=r"value\.data\.info\['bad'\]: cannot store a builtins.object"):
        stage = poisoned_stage()
        stage.data.info["bad"] = object()
        encode(stage)


class _Payload:
    """Unpickling this creates a file: what an attacker's planted artifact would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def recompute_counter():
    calls = []

    def compute():
        calls.append(1)
        return poisoned_stage()

    return calls, compute


def test_a_planted_pickle_is_refused_not_executed(tmp_path, capsys):
    marker = tmp_path / "pwned"
    store = ArtifactStore(tmp_path / "cache")
    path = store.path("attack", "k-attack")
    path.parent.mkdir(parents=True)
    for plant in (
        lambda: path.write_bytes(pickle.dumps(_Payload(marker))),
        lambda: torch.save(_Payload(marker), path),
    ):
        plant()
        pickle.loads(pickle.dumps(_Payload(tmp_path / "control")))  # the payload does work when unpickled
        assert (tmp_path / "control").exists()
        calls, compute = recompute_counter()
        value, cached = store.get_or_compute("attack", "k-attack", compute)
        assert not marker.exists()
        assert not cached and calls == [1] and value.data.info["poison_count"] == 4
        assert "recomputing" in capsys.readouterr().err
        assert store.get_or_compute("attack", "k-attack", compute)[1]  # the recomputed one is stored


def _tensor_with_shape(path: Path, shape: list[int]) -> tuple[str, int]:
    """Name and file offset of the stored tensor of this shape (safetensors: u64 header length,
    JSON header, then the data)."""
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    name = next(n for n, t in header.items() if n != "__metadata__" and t["shape"] == shape)
    return name, 8 + header_len + header[name]["data_offsets"][0]


def test_a_flipped_byte_in_tensor_data_is_detected_and_recomputed(tmp_path, capsys):
    store = ArtifactStore(tmp_path)
    original = detection_stage()
    store.save("detect", "k-detect", original)
    path = store.path("detect", "k-detect")
    raw = bytearray(path.read_bytes())
    name, offset = _tensor_with_shape(path, [5, 20])  # the delta matrix
    raw[offset + 5] ^= 0x01  # one bit of its second entry
    path.write_bytes(bytes(raw))
    with safe_open(str(path), framework="numpy") as f:  # still a valid safetensors file...
        assert f.get_tensor(name).shape == (5, 20)
    with pytest.raises(DamagedArtifact, match="checksum"):  # ...that the checksum refuses
        store.load("detect", "k-detect")
    value, cached = store.get_or_compute("detect", "k-detect", detection_stage)
    assert not cached and "checksum mismatch" in capsys.readouterr().err
    assert_same(store.load("detect", "k-detect"), original)


def test_a_truncated_or_misplaced_file_is_recomputed(tmp_path):
    store = ArtifactStore(tmp_path)
    store.save("attack", "k-attack", poisoned_stage())
    path = store.path("attack", "k-attack")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DamagedArtifact, match="unreadable"):
        store.load("attack", "k-attack")
    assert store.get_or_compute("attack", "k-attack", poisoned_stage)[1] is False
    # an intact artifact copied under another key is not that key's artifact
    store.path("attack", "other").write_bytes(path.read_bytes())
    with pytest.raises(DamagedArtifact, match="holds attack/k-attack"):
        store.load("attack", "other")


def test_a_planted_victim_is_retrained_not_executed(tmp_path):
    """End to end: a run whose cached victim was replaced by a pickle retrains it, same numbers."""
    import pandas as pd
    from tiny_suite import tiny_suite

    from deltabench.config import suite_from_dict
    from deltabench.registry import default_registry
    from deltabench.runner import run_suite

    registry = default_registry()
    suite = tiny_suite(tmp_path, unlearners=["none"])
    first = run_suite(suite_from_dict(suite, registry), registry=registry)
    before = pd.read_csv(first.output)
    (victim,) = (tmp_path / "cache" / "victim").glob("*.safetensors")
    marker = tmp_path / "pwned"
    victim.write_bytes(pickle.dumps(_Payload(marker)))
    first.output.unlink()
    again = run_suite(suite_from_dict(suite, registry), registry=registry)
    assert not marker.exists() and again.computed == 2
    cols = ["victim_clean_acc", "victim_psr", "flagged", "unlearned_psr"]
    pd.testing.assert_frame_equal(pd.read_csv(again.output)[cols], before[cols])
