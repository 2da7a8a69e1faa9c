"""Provenance next to every results CSV: what ran, on what, from which code, and the CSV's hash.

A CSV says what came out; its manifest says how to trust and redo it: the suite as resolved (every
component with its full parameters, so it re-parses to the same cells), the suite file's SHA-256,
and per run (a resumed run adds one) the code revision, package versions, machine and times. The
CSV's SHA-256 is rewritten after every run, so a CSV edited by hand no longer matches its manifest.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .components import KINDS
from .config import ParsedSuite
from .file_digest import sha256_file
from .outputs import MANIFEST_FILE, MANIFEST_FORMAT, manifest_path, read_manifest, versions
from .rows import code_revision

__all__ = [
    "MANIFEST_FILE",
    "manifest_path",
    "read_manifest",
    "resolved_suite",
    "write_manifest",
]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resolved_suite(parsed: ParsedSuite) -> dict[str, Any]:
    """The suite with every component spelled out: parsing it again gives the same cells."""
    data = parsed.suite.model_dump(mode="json") | {"references": False}
    for kind in KINDS.values():
        specs = [
            {"name": s.name, "params": s.params} | ({"label": s.display} if s.display else {})
            for s in parsed.components[kind.name]
        ]
        data[kind.suite_key] = specs if kind.many else specs[0]
    return data


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU model and count, GPU if any, OS: what float results can depend on."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpus or None,
        "platform": platform.platform(),
    }


def write_manifest(
    csv: Path,
    parsed: ParsedSuite,
    *,
    started: str,
    completed: bool,
    fresh: bool = False,
    victims: dict[str, Any] | None = None,
    stamp: str | None = None,
) -> Path:
    """Write (or, on a resumed run, extend) the manifest of ``csv`` after a run that began at
    ``started``; ``fresh`` starts its run list anew, as the CSV was. ``stamp``: the run's
    :func:`~deltabench.uptodate.run_stamp`, taken when it started, which lets a later rerun of a
    completed run be skipped without loading the registry."""
    path = manifest_path(csv)
    before = None if fresh else read_manifest(path)
    source = Path(parsed.source)
    run = {
        "started": started,
        "ended": now(),
        "completed": completed,
        "code_revision": code_revision(),
        "packages": json.loads(versions()),
        "machine": machine(),
        "victims_pack": victims,
        "stamp": stamp,
    }
    manifest = {
        "format": MANIFEST_FORMAT,
        "csv": csv.name,
        "csv_sha256": sha256_file(csv) if csv.is_file() else None,
        "suite_file": str(source) if source.is_file() else None,
        "suite_sha256": sha256_file(source) if source.is_file() else None,
        "suite": resolved_suite(parsed),
        "runs": [*(before or {}).get("runs", []), run],
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
