"""Content-addressed artifact store: each stage's output saved under a hash of what determines it.

Keys hash the stage name, the component's name, version and parameters, the upstream keys and the
seed, so a changed parameter or a bumped component version misses the cache while everything
upstream of it still hits. Writes go to a temporary file and are renamed into place, so a run
killed at any moment leaves either a whole artifact or none.

An artifact is a safetensors file: the value's arrays as tensors, the rest as JSON in the header
(see :mod:`deltabench.codec`); loading never unpickles, so a cache folder others can write cannot
run code here. A SHA-256 over the JSON and every array's bytes sits in the header; a file that
fails to parse, fails the checksum or belongs to another key is reported in one line and
recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from .codec import decode, encode
from .log import log

__all__ = ["stable_hash", "ArtifactStore", "DamagedArtifact"]

FORMAT = "deltabench-artifact-1"


def stable_hash(*parts: Any) -> str:
    """A short, stable hex digest of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class DamagedArtifact(Exception):
    """A cached file that cannot be trusted: unreadable, altered, or not the artifact asked for."""


def _checksum(payload: str, arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(payload.encode())
    for name in sorted(arrays):
        array = arrays[name]
        digest.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        digest.update(array.reshape(-1).view(np.uint8))  # stored arrays are C-contiguous
    return digest.hexdigest()


class ArtifactStore:
    """Artifacts on disk under ``root/<stage>/<key>.safetensors`` (``enabled=False`` computes every time)."""

    def __init__(self, root: str | Path, *, enabled: bool = True) -> None:
        self.root = Path(root)
        self.enabled = enabled

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key}.safetensors"

    def has(self, stage: str, key: str) -> bool:
        return self.enabled and self.path(stage, key).is_file()

    def load(self, stage: str, key: str) -> Any:
        """The stored value; raises :class:`DamagedArtifact` for anything but an intact artifact."""
        try:
            with safe_open(str(self.path(stage, key)), framework="numpy") as f:
                meta = f.metadata() or {}
                arrays = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (not a dict)
        except Exception as exc:  # not safetensors, truncated, unreadable
            raise DamagedArtifact(f"unreadable ({type(exc).__name__}: {exc})") from None
        if meta.get("format") != FORMAT:
            raise DamagedArtifact(f"not a {FORMAT} file")
        payload = meta.get("payload", "")
        if _checksum(payload, arrays) != meta.get("sha256"):
            raise DamagedArtifact("checksum mismatch")
        try:
            doc = json.loads(payload)
            if (doc["stage"], doc["key"]) != (stage, key):
                raise DamagedArtifact(f"holds {doc['stage']}/{doc['key']}")
            arrays = {n: a if a.flags.writeable else a.copy() for n, a in arrays.items()}
            return decode(arrays, doc["value"])
        except DamagedArtifact:
            raise
        except Exception as exc:
            raise DamagedArtifact(f"cannot decode ({type(exc).__name__}: {exc})") from None

    def save(self, stage: str, key: str, value: Any) -> None:
        arrays, tree = encode(value)
        payload = json.dumps({"stage": stage, "key": key, "value": tree})
        meta = {"format": FORMAT, "payload": payload, "sha256": _checksum(payload, arrays)}
        path = self.path(stage, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(arrays, str(tmp), metadata=meta)
        os.replace(tmp, path)

    def get_or_compute(self, stage: str, key: str, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """The cached artifact, or compute and store it. Returns ``(value, was_cached)``."""
        if self.has(stage, key):
            try:
                return self.load(stage, key), True
            except DamagedArtifact as exc:
                log(f"cache: {self.path(stage, key)}: {exc}; recomputing it")
        value = compute()
        self.save(stage, key, value)
        return value, False
