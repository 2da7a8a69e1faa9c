"""Where a suite's data lives is not part of what it computes: the same suite and seed draw the same
poisons from a copy of the data in another folder (before, the folder path seeded every stage)."""

from __future__ import annotations

import numpy as np
import torch
from learnable_fakes import write_cifar10
from tiny_suite import tiny_suite

from deltabench.config import identity_params, suite_from_dict
from deltabench.data.cifar import Cifar10
from deltabench.data.imagenette import Imagenette
from deltabench.registry import default_registry
from deltabench.runner import plan_jobs
from deltabench.stages import Stages


def _poisoned(folder, root):
    suite = tiny_suite(folder, datasets=[{"name": "cifar10", "params": {"root": str(root), "verify": False}}])
    job = plan_jobs(suite_from_dict(suite, default_registry(), "location"))[0]
    return Stages(job, default_registry()).poisoned()


def test_the_same_data_in_two_folders_gets_the_same_poisons_and_cache_key(tmp_path):
    write_cifar10(tmp_path / "a" / "data")
    write_cifar10(tmp_path / "b" / "elsewhere" / "data")
    first = _poisoned(tmp_path / "a", tmp_path / "a" / "data")
    second = _poisoned(tmp_path / "b", tmp_path / "b" / "elsewhere" / "data")
    assert first.key == second.key
    np.testing.assert_array_equal(first.data.poison_indices, second.data.poison_indices)
    assert torch.equal(first.data.train.x, second.data.train.x)


def test_only_parameters_marked_as_locating_the_input_leave_the_identity():
    values = Cifar10.Params(root="/x", download=True, verify=False).model_dump()
    assert identity_params(Cifar10.Params, values) == {}
    values = Imagenette.Params(root="/x", size=24, workers=2).model_dump()
    assert identity_params(Imagenette.Params, values) == {"size": 24}
