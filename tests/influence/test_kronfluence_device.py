"""kronfluence computes on the device the engine names, whatever an earlier Analyzer set."""

from __future__ import annotations

import torch
from kronfluence.utils.state import State
from torch import nn

from deltabench.artifacts import ImageSet
from deltabench.influence import InfluenceSettings
from deltabench.influence.kronfluence_backend import KronfluenceBackend


def test_a_stale_process_wide_device_is_replaced_by_the_engines(tmp_path):
    State._reset_state()
    State(cpu=False).device = torch.device("cuda", 1)  # left by an earlier analysis on a second GPU
    train = ImageSet(torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2]))
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    backend = KronfluenceBackend(model, train, InfluenceSettings(), torch.device("cpu"), tmp_path)
    assert backend.analyzer.state.device == torch.device("cpu") and backend.analyzer.state.cpu
    assert next(backend.model.parameters()).device.type == "cpu"
    State._reset_state()
