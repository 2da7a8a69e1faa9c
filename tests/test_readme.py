"""The README's plugin example is real code: it registers and detects on a real victim."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

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
    # it detects what it says: the points the victim fits worst (losses computed here)
    with torch.no_grad():
        loss = F.cross_entropy(v.model(v.poisoned.train.x), v.poisoned.train.y, reduction="none").numpy()
    rest = np.setdiff1d(np.arange(len(loss)), flagged)
    assert loss[flagged].min() >= loss[rest].max() - 1e-4 * loss.max()
