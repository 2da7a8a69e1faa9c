"""One-line progress and warning messages on stderr, prefixed to stand out from progress bars."""

from __future__ import annotations

import sys

__all__ = ["log"]


def log(message: str) -> None:
    print(f"[deltabench] {message}", file=sys.stderr, flush=True)
