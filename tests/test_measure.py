"""A stage's cost: host memory and the GPU memory of the stage's own device, kept apart."""

from __future__ import annotations

import numpy as np
import torch

from deltabench.measure import StageMeter


def test_a_cpu_stage_reports_its_resident_peak_and_no_gpu_memory():
    with StageMeter(torch.device("cpu")) as cost:
        block = np.ones(64 * 2**20 // 8)  # 64 MB, held while the meter samples
        block.sum()
    assert cost.peak_mb >= 64 and cost.gpu_peak_mb == 0.0
    assert cost.seconds > 0


def test_the_gpu_meter_watches_the_named_device_only():
    assert StageMeter(torch.device("cuda", 1)).gpu == torch.device("cuda", 1)
    assert StageMeter(torch.device("cpu")).gpu is None and StageMeter().gpu is None
