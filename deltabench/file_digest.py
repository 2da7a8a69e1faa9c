"""The hex digest of a file, read in 1 MiB blocks so a large archive or CSV is never held whole.

One helper for every file check: SHA-256 for manifests and victim packs, MD5 where a dataset's
publisher gives MD5 sums (CIFAR).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_digest", "sha256_file"]


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")
