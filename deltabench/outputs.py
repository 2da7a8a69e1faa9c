"""The files of a leaderboard folder and where they are, with nothing heavier than the stdlib.

Both the runner and the rerun check (:mod:`deltabench.uptodate`, which must not import torch or
pandas) need to know where a suite's results, shards, submissions and manifest live; this module is
that one place.
"""

from __future__ import annotations

import json
import platform
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_FILE",
    "SHARD_PATTERN",
    "SUBMISSION_PATTERNS",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "REPORT_FILE",
    "REUSABLE_STATUSES",
    "default_output",
    "shard_file",
    "results_files",
    "report_is_current",
    "manifest_path",
    "read_manifest",
    "package_version",
    "versions",
]

RESULTS_FILE = "results.csv"
SHARD_PATTERN = "results.shard-*-of-*.csv"
#: rows others added to a leaderboard folder (e.g. a plugin author's run on the published victims)
SUBMISSION_PATTERNS = ("results-*.csv", "submissions/*.csv")
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "leaderboard.md"
#: the statuses of rows a run keeps; it recomputes a cell whose row has any other (``failed``)
REUSABLE_STATUSES = ("ok", "skipped")
MANIFEST_FORMAT = "deltabench-manifest-1"


def default_output(name: str, output: str | None) -> Path:
    """A suite's leaderboard folder: its ``output``, else ``leaderboards/<name>``."""
    return Path(output) if output else Path("leaderboards") / name


def shard_file(index: int, count: int) -> str:
    """CSV name of one shard's rows (``deltabench run --shard I/N``)."""
    return f"results.shard-{index}-of-{count}.csv"


def results_files(folder: Path) -> list[Path]:
    """Every results CSV of a leaderboard folder, the one rule all readers share: the run's own
    rows (``results.csv``, else its shard CSVs) first, then the submissions, each in name order."""
    own = folder / RESULTS_FILE
    files = [own] if own.is_file() else sorted(folder.glob(SHARD_PATTERN))
    return files + sorted(f for pattern in SUBMISSION_PATTERNS for f in folder.glob(pattern))


def report_is_current(folder: Path) -> bool:
    """Whether the folder's ``leaderboard.md`` was written after every results CSV of it
    (submissions too): rendering it again from unchanged CSVs would write the same file."""
    report = folder / REPORT_FILE
    if not report.is_file():
        return False
    written = report.stat().st_mtime_ns
    return all(written >= f.stat().st_mtime_ns for f in results_files(folder))


def manifest_path(csv: Path) -> Path:
    """``manifest.json`` beside ``results.csv``; ``<name>.manifest.json`` beside any other CSV."""
    return csv.with_name(MANIFEST_FILE if csv.name == RESULTS_FILE else f"{csv.stem}.{MANIFEST_FILE}")


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path``, or None when there is none or it does not parse."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None


def package_version(dist: str) -> str:
    """The installed version of ``dist``, or ``n/a``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "n/a"


@cache
def versions() -> str:
    """The versions of the packages a row's numbers depend on, as sorted JSON (the ``versions``
    column and the manifest's ``packages``)."""
    names = ["deltabench", "torch", "torchvision", "numpy", "scikit-learn", "kronfluence", "traker"]
    found = {n: package_version(n) for n in names}
    found["python"] = platform.python_version()
    return json.dumps(found, sort_keys=True)
