"""Start-up: loading the registry (what `plugins` and `validate` do) imports no heavy dependency."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torchvision", "sklearn", "kronfluence", "trak", "ray", "submitit", "matplotlib")


def test_loading_the_registry_imports_no_heavy_dependency():
    code = (
        "import json, sys\n"
        "from deltabench.registry import default_registry\n"
        "registry = default_registry()\n"
        "assert registry.names('detector') and registry.names('executor')\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_lazy_module_imports_on_first_use():
    code = (
        "import sys\n"
        "from deltabench.lazy import lazy_module\n"
        "colorsys = lazy_module('colorsys')\n"
        "before = 'colorsys' in sys.modules\n"
        "value = colorsys.rgb_to_hsv(1.0, 0.0, 0.0)\n"
        "print(before, 'colorsys' in sys.modules, value)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "(0.0,", "1.0,", "1.0)"]
