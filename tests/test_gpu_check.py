"""scripts/gpu_check.sh: stops at once without a GPU, and its CPU dry run passes end to end."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_without_a_gpu_it_says_so_and_exits_2():
    out = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "no CUDA GPU is visible" in out.stderr and "--device cpu" in out.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("DELTABENCH_GPU_DRY_RUN") != "1",
    reason="full-width ResNet-18 on the CPU, ~10 min on 2 cores: set DELTABENCH_GPU_DRY_RUN=1 to run it",
)
def test_the_cpu_dry_run_passes_every_check(tmp_path):
    """Both paper settings with every detector and unlearner, on the CPU (~10 min on 2 cores: opt-in,
    as the paper suites' tiny runs already cover every cell on the CPU in CI)."""
    env = {**os.environ, "GPU_CHECK_TIMEOUT": "1800"}
    out = subprocess.run(
        [str(SCRIPT), "--device", "cpu", "--out", str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "identical weights" in out.stdout and "gpu_check: all checks passed" in out.stdout
