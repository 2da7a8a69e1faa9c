"""The core digest in every cache key: it follows code, not prose, and covers modules that exist."""

from __future__ import annotations

from pathlib import Path

import deltabench
from deltabench.stages import CORE_MODULES, _code, core_digest

MODULE = '''"""A module docstring."""

def train(x):
    """How it trains."""
    # a comment
    return x * 2
'''


def test_the_digest_follows_code_not_docstrings_comments_or_layout(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(MODULE)
    base = _code(path)
    path.write_text(MODULE.replace("How it trains.", "Why it trains so.").replace("a comment", "another"))
    assert _code(path) == base
    path.write_text(MODULE.replace("return x * 2", "return  x*2"))
    assert _code(path) == base
    path.write_text(MODULE.replace("x * 2", "x * 3"))
    assert _code(path) != base


def test_every_core_module_exists_so_none_drops_out_of_the_digest():
    root = Path(deltabench.__file__).parent
    for entry in CORE_MODULES:
        target = root / entry
        assert target.is_dir() and any(target.glob("*.py")) if entry.endswith("/") else target.is_file(), (
            entry
        )
    assert len(core_digest()) == 16
