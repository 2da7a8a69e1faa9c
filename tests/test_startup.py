"""Start-up: loading the registry (what `plugins` and `validate` do) imports no heavy dependency."""

from __future__ import annotations

import json
import subprocess
import sys

from tiny_suite import tiny_suite

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


def test_a_cached_rerun_keeps_its_report_and_imports_neither_scipy_nor_a_heavy_dependency(tmp_path):
    """A rerun that computes nothing leaves leaderboard.md as it is: rendering it again is most of
    a cached rerun's time (pandas' reports, scipy's intervals) and would write the same file."""
    import yaml

    suite = tiny_suite(
        tmp_path,
        name="cached",
        models=[{"name": "small-cnn", "params": {"width": 4, "hidden": 8}}],
        training={"epochs": 1, "translate": 0, "hflip": False},
        unlearners=["none"],
        references=False,
    )
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    subprocess.run([sys.executable, "-m", "deltabench", "run", str(path)], check=True, capture_output=True)
    report = tmp_path / "out" / "leaderboard.md"
    written = report.stat().st_mtime_ns
    manifest_file = tmp_path / "out" / "manifest.json"  # no stamp: the full path decides (test_uptodate)
    manifest = json.loads(manifest_file.read_text())
    manifest["runs"][-1]["stamp"] = None
    manifest_file.write_text(json.dumps(manifest))
    code = (
        "import json, sys\n"
        "from deltabench.cli import app\n"
        f"try:\n    app([{'run'!r}, {str(path)!r}])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {(*HEAVY, 'scipy.stats')!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert "0 computed, 1 reused" in out.stdout
    assert report.stat().st_mtime_ns == written
