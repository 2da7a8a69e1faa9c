"""'Did you mean' hints: the one place that turns a misspelt name into a suggestion."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "did_you_mean"]


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The most similar valid name, or None when nothing is close."""
    choices = list(choices)
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if match:
        return match[0]
    return {c.lower(): c for c in choices}.get(name.lower())


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest valid name, or ``""``."""
    hint = closest(name, choices)
    return f"; did you mean '{hint}'?" if hint else ""
