"""Content-addressed artifact store: each stage's output saved under a hash of what determines it.

Keys hash the stage name, the component's name, version and parameters, the upstream keys and the
seed, so a changed parameter or a bumped component version misses the cache while everything
upstream of it still hits. Writes go to a temporary file and are renamed into place, so a run
killed at any moment leaves either a whole artifact or none.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["stable_hash", "ArtifactStore"]


def stable_hash(*parts: Any) -> str:
    """A short, stable hex digest of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class ArtifactStore:
    """Artifacts on disk under ``root/<stage>/<key>.pt`` (``enabled=False`` computes every time)."""

    def __init__(self, root: str | Path, *, enabled: bool = True) -> None:
        self.root = Path(root)
        self.enabled = enabled

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key}.pt"

    def has(self, stage: str, key: str) -> bool:
        return self.enabled and self.path(stage, key).is_file()

    def load(self, stage: str, key: str) -> Any:
        return torch.load(self.path(stage, key), map_location="cpu", weights_only=False)

    def save(self, stage: str, key: str, value: Any) -> None:
        path = self.path(stage, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(value, tmp)
        os.replace(tmp, path)

    def get_or_compute(self, stage: str, key: str, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """The cached artifact, or compute and store it. Returns ``(value, was_cached)``."""
        if self.has(stage, key):
            try:
                return self.load(stage, key), True
            except Exception:  # a truncated or foreign file: recompute it
                pass
        value = compute()
        self.save(stage, key, value)
        return value, False
