"""The tiny digits suite that runner, executor, cache and lock tests vary: one seed, a narrow small
CNN for 2 epochs, BadNet, spectral, EU, no clean model. Each test names only what it changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["tiny_suite"]


def tiny_suite(folder: Path, **changes: Any) -> dict[str, Any]:
    """The suite as a dict, writing its CSV to ``folder/out`` and its cache to ``folder/cache``;
    ``changes`` replace whole top-level keys."""
    suite: dict[str, Any] = {
        "name": "tiny",
        "seeds": [0],
        "device": "cpu",
        "output": str(folder / "out"),
        "cache": str(folder / "cache"),
        "datasets": ["digits"],
        "models": [{"name": "small-cnn", "params": {"width": 8, "hidden": 32}}],
        "training": {"epochs": 2, "translate": 0, "hflip": False},
        "attacks": [{"name": "badnet", "params": {"budget": 0.5}}],
        "detectors": ["spectral"],
        "unlearners": ["eu"],
        "clean_model": False,
    }
    return suite | changes
