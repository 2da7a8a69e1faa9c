"""The ``deterministic`` suite option: GPU arithmetic flags for a stage, and keys by device."""

from __future__ import annotations

import dataclasses
import os

import torch

from deltabench.config import suite_from_dict
from deltabench.determinism import deterministic_algorithms
from deltabench.registry import default_registry
from deltabench.runner import plan_jobs
from deltabench.stages import Stages


def flags() -> tuple:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )


def test_the_option_sets_every_flag_for_the_block_and_restores_them(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = flags()
    with deterministic_algorithms(True, torch.device("cuda")):
        assert flags() == (True, False, True, False, False, False)  # on a GPU, a raise
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert flags() == before
    with deterministic_algorithms(True, torch.device("cpu")):
        assert flags()[:2] == (True, True)  # on a CPU, a warning only
    with deterministic_algorithms(False, torch.device("cuda")):
        assert flags() == before


def test_keys_and_cell_ids_carry_the_device_type_and_the_gpu_determinism(tmp_path):
    registry = default_registry()
    suite = {"name": "keys", "device": "cpu", "cache": str(tmp_path), "datasets": ["digits"]}
    suite |= {"models": ["small-cnn"], "attacks": ["badnet"], "detectors": ["spectral"], "unlearners": ["eu"]}
    parsed = suite_from_dict(suite, registry)
    cpu = plan_jobs(parsed)[0]
    det, unl = parsed.detectors[0], parsed.unlearners[0]

    def key(**change) -> tuple[str, str]:
        setting = dataclasses.replace(cpu, **change)
        return Stages(setting, registry).cache_key("victim-identity"), setting.cell_id(det, unl)

    assert key() == key(deterministic=True)  # a CPU computes the same numbers either way
    gpu = key(device="cuda")
    assert gpu[0] != key()[0] and gpu[1] != key()[1]  # CPU and GPU stages never mix
    assert key(device="cuda", deterministic=True)[0] != gpu[0]
    assert key(device="cuda:1") == gpu  # the type, not the index: any card computes the same
