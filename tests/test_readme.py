"""The README's plugin example is real code: it registers and detects on a real victim."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np

from deltabench.components import DetectionContext
from deltabench.registry import load_registry

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert "deltabench run suites/quick.yaml" in block[0]
    assert "pytest" in block[1] and "pytest" in (README.parent / ".ci" / "run").read_text()


def test_readme_plugin_example_registers_and_detects(badnet_victim):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    plugin = types.SimpleNamespace(register_detectors=namespace["register_detectors"])
    registry = load_registry(entry_points=False, extra_plugins=(plugin,))
    detector = registry.get("detector", "high-loss")(fraction=0.1)
    v = badnet_victim
    ctx = DetectionContext(
        model=v.model, train=v.poisoned.train, affected=v.affected, num_classes=10,
        rng=np.random.default_rng(0), trainer=v.trainer,
    )  # fmt: skip
    flagged = detector.detect(ctx).flagged
    assert len(flagged) == int(0.1 * len(v.poisoned.train))
    assert flagged.min() >= 0 and flagged.max() < len(v.poisoned.train)
