"""Deterministic GPU arithmetic for a stage, so that a rerun on the same GPU gives the same bits.

On a CPU with a fixed thread count torch's kernels already repeat exactly; on a GPU, cuDNN's
algorithm search, TF32 matmuls, atomics in scatter/index kernels and cuBLAS's split workspaces do
not. :func:`deterministic_algorithms` turns all of these off for one stage and restores the
previous settings afterwards, so a test or a study script that runs stages keeps its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["CUBLAS_WORKSPACE", "deterministic_algorithms"]

# cuBLAS repeats its reductions only with a fixed workspace (NVIDIA's documented setting)
CUBLAS_WORKSPACE = ":4096:8"


@contextmanager
def deterministic_algorithms(enabled: bool, device: torch.device) -> Iterator[None]:
    """Run the block with deterministic algorithms when ``enabled``.

    On a GPU an operation without a deterministic kernel raises (``warn_only=False``), so a
    nondeterministic number never reaches a row unnoticed; on a CPU it only warns, since CPU
    kernels repeat anyway and a raise would only stop a run that is already reproducible.
    """
    if not enabled:
        yield
        return
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cpu")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:4]
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[4:]
